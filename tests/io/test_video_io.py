"""Streamed video I/O and atomic outputs."""

from __future__ import annotations

import threading
import time

import av
import numpy as np
import pytest

from enliven.errors import EnlivenError
from enliven.io.files import atomic_output, check_writable
from enliven.io.images import read_image
from enliven.io.video import VideoReader, VideoWriter

from conftest import write_sound


def _frames(n, h, w):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3)).astype(np.uint8)
    big = np.kron(base, np.ones((8, 8, 1), np.uint8))[:h, :w]
    return [np.roll(big, i, axis=1) for i in range(n)]


@pytest.mark.parametrize("size", [(64, 96), (63, 95)])
def test_write_then_read_round_trip(tmp_path, size):
    path = tmp_path / "v.mp4"
    frames = _frames(10, *size)
    with VideoWriter(path, fps=30, crf=0) as writer:
        for f in frames:
            writer.write(f)
    reader = VideoReader(path)
    assert reader.fps == pytest.approx(30)
    assert (reader.height, reader.width) == (size[0] + size[0] % 2, size[1] + size[1] % 2)
    back = list(reader)
    assert len(back) == 10
    luma = np.array([0.299, 0.587, 0.114])
    for a, b in zip(frames, back):
        assert np.abs(b[: size[0], : size[1]] @ luma - a @ luma).mean() < 1.5  # yuv420p keeps full-res luma
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"


def _decoders() -> set[threading.Thread]:
    """The live decoder threads VideoReader starts (it names them enliven-decode)."""
    return {t for t in threading.enumerate() if t.name == "enliven-decode" and t.is_alive()}


def test_reader_stops_early_without_hanging(tmp_path):
    path = tmp_path / "v.mp4"
    with VideoWriter(path, fps=25) as writer:
        for f in _frames(40, 64, 64):
            writer.write(f)
    before = _decoders()  # a worker another test left behind is not this reader's
    ours: set[threading.Thread] = set()

    def read_four() -> None:
        for i, _ in enumerate(VideoReader(path, prefetch=2)):
            ours.update(_decoders() - before)
            if i == 3:
                break  # the loop drops the generator; closing it must stop the decoder blocked on the full queue

    # The caller reads on a thread of its own so that a reader which hangs fails this test within the deadline
    # instead of hanging it. 10 s: a stopped decoder sees the stop within one 0.1 s poll.
    deadline = time.monotonic() + 10.0
    caller = threading.Thread(target=read_four, daemon=True)
    caller.start()
    caller.join(timeout=10.0)
    assert not caller.is_alive(), "reading four frames and stopping took over 10 s"
    assert len(ours) == 1, "the reader decodes on one enliven-decode thread (renamed? update _decoders)"
    while ours & _decoders() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ours & _decoders(), "the decoder thread is still running 10 s after the reader was dropped"


def test_unreadable_inputs_raise_clear_errors(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "junk.mp4").write_bytes(b"junk" * 100)
    with pytest.raises(EnlivenError, match="empty"):
        VideoReader(tmp_path / "empty.mp4")
    with pytest.raises(EnlivenError, match="cannot read video"):
        VideoReader(tmp_path / "junk.mp4")
    with pytest.raises(EnlivenError, match="no such file"):
        read_image(tmp_path / "missing.png")


def test_atomic_output_only_appears_when_complete(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [target]
    with pytest.raises(EnlivenError):
        check_writable(tmp_path / "no" / "such" / "dir.mp4")


def _phone_clip(path, coded: np.ndarray, degrees: float, hflip: bool = False, frames: int = 3) -> None:
    """A clip whose pictures are stored as ``coded`` and shown turned: ``degrees`` counter-clockwise, then
    mirrored left-right if ``hflip`` (the container's display matrix, as phones write it)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = coded.shape[1], coded.shape[0], "yuv420p"
        stream.options = {"crf": "0"}
        stream.set_display_rotation(degrees, hflip=hflip)
        for _ in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(coded, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# Where a mark in the stored picture's top-left corner is seen, by how the clip says to show it.
@pytest.mark.parametrize(
    ("degrees", "hflip", "corner"),
    [(90, False, "bottom-left"), (-90, False, "top-right"), (180, False, "bottom-right"), (0, True, "top-right"),
     (90, True, "bottom-right"), (0, False, "top-left")],
)
def test_phone_clips_are_read_upright(tmp_path, degrees, hflip, corner):
    coded = np.full((48, 64, 3), 40, np.uint8)
    coded[2:12, 2:12] = (250, 40, 40)
    path = tmp_path / "phone.mp4"
    _phone_clip(path, coded, degrees, hflip)
    reader = VideoReader(path)
    frames = list(reader)
    quarter_turn = degrees % 180 == 90
    assert (reader.height, reader.width) == ((64, 48) if quarter_turn else (48, 64))
    assert len(frames) == 3 and all(f.shape == (reader.height, reader.width, 3) for f in frames)
    ys, xs = np.nonzero(frames[0][..., 0] > 150)
    vertical, horizontal = corner.split("-")
    assert (ys.mean() < reader.height / 4) == (vertical == "top")
    assert (ys.mean() > 3 * reader.height / 4) == (vertical == "bottom")
    assert (xs.mean() < reader.width / 4) == (horizontal == "left")
    assert (xs.mean() > 3 * reader.width / 4) == (horizontal == "right")


def test_a_sideways_stored_portrait_reads_back_as_the_portrait(tmp_path, portrait):
    upright = portrait[:, 64:448]  # taller than wide, like a phone held upright
    path = tmp_path / "portrait_phone.mp4"
    _phone_clip(path, np.ascontiguousarray(np.rot90(upright, -1)), 90)  # stored turned a quarter clockwise
    reader = VideoReader(path)
    assert (reader.height, reader.width) == upright.shape[:2]
    frame = next(iter(reader))
    assert np.abs(frame.astype(int) - upright).mean() < 3  # yuv420p's chroma loss only


def test_an_older_ffmpegs_rotate_tag_is_honoured_too():
    """FFmpeg builds before the display matrix reached decoded frames gave a clockwise ``rotate`` tag."""
    from types import SimpleNamespace

    from enliven.io.video import _display_turn, _turned

    picture = np.zeros((4, 6, 3), np.uint8)
    picture[0, 0] = 255
    for clockwise, seen_at in (("90", (0, 3)), ("180", (3, 5)), ("270", (5, 0)), ("0", (0, 0))):
        turn = _display_turn(SimpleNamespace(side_data={}), SimpleNamespace(metadata={"rotate": clockwise}))
        shown = _turned(picture, turn)
        assert tuple(np.argwhere(shown[..., 0] == 255)[0]) == seen_at, clockwise


def test_video_frames_over_the_pixel_limit_are_refused_in_one_line(tmp_path):
    from enliven.io.images import pixel_limit

    from conftest import write_still_video

    clip = tmp_path / "wide.mp4"
    write_still_video(clip, np.zeros((64, 96, 3), np.uint8), frames=2)
    VideoReader(clip)  # 6144 pixels: within the default limit
    with pixel_limit(6000), pytest.raises(EnlivenError, match="96×64 = 6,144 pixels, over the limit of 6,000"):
        VideoReader(clip)


def _tone_clip(path, seconds: float = 3.0, rate: int = 44100, hz: float = 440.0) -> None:
    """A clip whose only stream is a sine tone, in AAC."""
    t = np.arange(int(seconds * rate)) / rate
    write_sound(path, (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32), rate, "aac")


class _Muxed:
    """An output container that keeps what is muxed into it (each packet's bytes and time, in order)."""

    def __init__(self, tmp_path, name):
        self._out = av.open(str(tmp_path / name), "w", format="mp4")
        self.packets: list[tuple[bytes, int]] = []

    def add_stream(self, *args, **kwargs):
        return self._out.add_stream(*args, **kwargs)

    def mux(self, packet) -> None:
        self.packets.append((bytes(packet), packet.pts))

    def seconds(self, rate: int) -> float:
        return len(self.packets) * 1024 / rate  # AAC packets hold 1024 samples each


def test_the_audio_keeps_up_with_the_video_and_ends_with_it(tmp_path):
    """The writer encodes the driver's audio as the video goes (``keep_up`` after each frame), never past the video
    written so far, and cuts it at the video's end: the same packets as the whole copy made at the end."""
    from enliven.io.video import _AudioCopy

    source = tmp_path / "tone.m4a"
    _tone_clip(source)
    at_once = _Muxed(tmp_path, "a.mp4")
    _AudioCopy(at_once, source).run(1.6)
    growing = _Muxed(tmp_path, "b.mp4")
    copy = _AudioCopy(growing, source)
    for frames in range(1, 41):  # 40 frames at 25 frames a second
        copy.keep_up(frames / 25)
        if growing.packets:  # what is out so far ends within the encoder's delay of the video so far
            assert growing.seconds(44100) <= frames / 25 + 1e-9
    assert len(growing.packets) > 0.8 * len(at_once.packets)  # most of the track was out before the last frame
    copy.run(1.6)
    assert growing.packets == at_once.packets
    assert at_once.seconds(44100) == pytest.approx(1.6, abs=2 * 1024 / 44100)


def test_the_driver_s_sound_is_in_the_output_as_long_as_the_video(tmp_path):
    source = tmp_path / "tone.m4a"
    _tone_clip(source, seconds=3.0, hz=440.0)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, fps=25, audio_from=source) as writer:
        for frame in _frames(40, 64, 96):
            writer.write(frame)
    with av.open(str(out)) as c:
        samples = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
        rate = c.streams.audio[0].sample_rate
    assert len(samples) / rate == pytest.approx(1.6, abs=0.05)
    spectrum = np.abs(np.fft.rfft(samples[2048:-2048]))  # the tone, not what the encoder's edges do
    assert np.fft.rfftfreq(len(samples) - 4096, 1 / rate)[spectrum.argmax()] == pytest.approx(440.0, abs=2.0)


def test_what_the_reader_gives_can_be_worked_out_on_its_thread(tmp_path):
    """``read(start, then)``: each frame's index and picture go through ``then`` on the decoder's thread."""
    path = tmp_path / "v.mp4"
    frames = _frames(12, 64, 96)
    with VideoWriter(path, fps=25, crf=0) as writer:
        for f in frames:
            writer.write(f)
    caller = threading.get_ident()
    seen = list(VideoReader(path).read(4, then=lambda i, p: (i, threading.get_ident() != caller, p[:8, :8].copy())))
    assert [i for i, _, _ in seen] == list(range(4, 12))
    assert all(elsewhere for _, elsewhere, _ in seen)
    plain = list(VideoReader(path).read(4))
    assert all(np.array_equal(corner, p[:8, :8]) for (_, _, corner), p in zip(seen, plain))
