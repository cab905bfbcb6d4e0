"""Damaged media never hangs enliven: a damaged packet is skipped, a file damaged throughout is one error line.

The damaged clips are built here: an AVI with an MJPEG picture and an AC3 sound track (as real AVI files often
are), with bytes overwritten where the demuxer says a packet lies. Every wait is bounded by the test itself
(a subprocess timeout, a thread joined with a timeout), so a hang fails the test instead of blocking the run.
"""

from __future__ import annotations

import errno
import itertools
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from enliven import api
from enliven.errors import EnlivenError
from enliven.io import video
from enliven.io.files import atomic_output
from enliven.io.video import VideoReader, VideoWriter

CLIP_FPS = 25
AUDIO_RATE = 48000
HANG_SECONDS = 60  # far above any of these runs (a few seconds each on 2 busy cores): past it, it hung


def _write_avi(path: Path, pictures: list[np.ndarray]) -> None:
    """An AVI with an MJPEG picture track and an AC3 stereo tone as long as the pictures."""
    with av.open(str(path), "w") as container:
        picture = container.add_stream("mjpeg", rate=CLIP_FPS)
        picture.width, picture.height, picture.pix_fmt = pictures[0].shape[1], pictures[0].shape[0], "yuvj420p"
        sound = container.add_stream("ac3", rate=AUDIO_RATE, layout="stereo")
        for image in pictures:
            for packet in picture.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in picture.encode():
            container.mux(packet)
        t = np.arange(int(len(pictures) / CLIP_FPS * AUDIO_RATE)) / AUDIO_RATE
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(tone), 1536):  # AC3's frame size
            both_ears = np.stack([tone[start : start + 1536]] * 2)
            frame = av.AudioFrame.from_ndarray(both_ears, format="fltp", layout="stereo")
            frame.sample_rate = AUDIO_RATE
            for packet in sound.encode(frame):
                container.mux(packet)
        for packet in sound.encode(None):
            container.mux(packet)


def _packet_spans(path: Path, kind: str) -> list[tuple[int, int]]:
    """(byte offset, size) of each non-empty ``kind`` packet's payload in the file."""
    with av.open(str(path)) as container:
        return [(p.pos, p.size) for p in container.demux(getattr(container.streams, kind)[0]) if p.size]


def _damaged_copy(clean: Path, damaged: Path, kind: str, which: list[int] | None = None) -> Path:
    """A copy of ``clean`` where the ``which``-th packets of ``kind`` (all if None) no longer decode: an audio
    packet loses its 16 first bytes (the AC3 sync word and header, as a bad sector would take them), a picture
    all of its bytes (MJPEG decoders mend a partly damaged picture silently)."""
    shutil.copy(clean, damaged)
    spans = _packet_spans(clean, kind)
    with open(damaged, "r+b") as file:
        for index in range(len(spans)) if which is None else which:
            offset, size = spans[index]
            file.seek(offset)
            file.write(b"\xff" * (16 if kind == "audio" else size))
    return damaged


def _frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        assert container.streams.audio, f"{path} has no audio track"
        return sum(frame.samples / frame.sample_rate for frame in container.decode(audio=0))


def _within(seconds: float, action):
    """Run ``action`` on a thread and return what it returns (or raise what it raises); fail if it hangs."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = action()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"still waiting after {seconds} s: it hangs")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _enliven_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("enliven-") and t.is_alive()}


def _no_new_enliven_threads(before: set[threading.Thread], seconds: float = 3.0) -> set[threading.Thread]:
    deadline = time.monotonic() + seconds
    while (left := _enliven_threads() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _animate_cli(driving: Path, output: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "enliven", "animate", str(api.bundled_portrait()), str(driving), "-o", str(output)]
    try:
        return subprocess.run(command + ["-q"], capture_output=True, text=True, timeout=HANG_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"enliven animate still running after {HANG_SECONDS} s: it hangs")


def _error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("enliven: error:")]


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if ".part" in p.name]


@pytest.fixture(scope="module")
def talking_avi(tmp_path_factory) -> Path:
    """40 frames of the bundled portrait nodding (a driving clip with a face in it) as MJPEG + AC3 AVI."""
    folder = tmp_path_factory.mktemp("damaged_media")
    rendered = folder / "nod.mp4"
    api.demo(rendered, preset="nod", progress=False)
    with av.open(str(rendered)) as container:
        pictures = [frame.to_ndarray(format="rgb24") for frame in itertools.islice(container.decode(video=0), 40)]
    _write_avi(folder / "talking.avi", pictures)
    return folder / "talking.avi"


@pytest.fixture(scope="module")
def small_avi(tmp_path_factory) -> Path:
    """25 small frames, each a different grey, with an AC3 tone: for the reader and writer on their own."""
    path = tmp_path_factory.mktemp("small_media") / "small.avi"
    _write_avi(path, [np.full((48, 64, 3), 9 * i, np.uint8) for i in range(25)])
    return path


# --- a damaged packet is skipped, as ffmpeg's own tools do -------------------------------------------------------


def test_the_damaged_clips_really_fail_where_damaged(small_avi, tmp_path):
    """Guards the tests below: each damaged packet must make FFmpeg's decoder fail, and only that one."""
    for kind in ("audio", "video"):
        damaged = _damaged_copy(small_avi, tmp_path / f"{kind}.avi", kind, [10])
        failures = 0
        with av.open(str(damaged)) as container:
            for packet in container.demux(getattr(container.streams, kind)[0]):
                try:
                    packet.decode()
                except av.FFmpegError:
                    failures += 1
        assert failures == 1, kind


def test_a_damaged_audio_packet_is_skipped_and_the_render_finishes(talking_avi, tmp_path):
    """Issue 14: the encoder used to fail on this packet after the last frame and wait forever for a second
    end marker. Now the packet is skipped with a warning and the output has all frames and the sound."""
    middle = len(_packet_spans(talking_avi, "audio")) // 2
    driving = _damaged_copy(talking_avi, tmp_path / "bad_audio.avi", "audio", [middle])
    output = tmp_path / "out.mp4"
    done = _animate_cli(driving, output)
    assert done.returncode == 0, done.stderr
    assert not _error_lines(done.stderr)
    assert "skipped 1 of" in done.stderr and "audio packets" in done.stderr
    assert _frame_count(output) == 40
    assert _audio_seconds(output) == pytest.approx(40 / CLIP_FPS, abs=0.15)  # one AC3 packet is 0.032 s
    assert not _leftovers(tmp_path)


def test_a_damaged_video_packet_drops_its_frame_and_the_render_finishes(talking_avi, tmp_path):
    driving = _damaged_copy(talking_avi, tmp_path / "bad_picture.avi", "video", [20])
    output = tmp_path / "out.mp4"
    done = _animate_cli(driving, output)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("skipped 1 of 40 video packets") == 1  # the clip is read twice, told once
    # Nothing else: MediaPipe's and TensorFlow Lite's native messages (as graphs start, and at their first frame)
    # are kept from the terminal.
    assert [line for line in done.stderr.splitlines() if not line.startswith("enliven: ")] == [], done.stderr
    assert _frame_count(output) == 39
    assert _audio_seconds(output) > 1.4
    assert not _leftovers(tmp_path)


def test_the_reader_skips_a_damaged_packet_and_counts_it(small_avi, tmp_path):
    damaged = _damaged_copy(small_avi, tmp_path / "bad.avi", "video", [0, 12])  # the first one too
    reader = VideoReader(damaged)
    greys = [int(frame[0, 0, 0]) for frame in _within(HANG_SECONDS, lambda: list(reader))]
    assert len(greys) == 23 and reader.damaged_packets == 2
    assert greys == sorted(greys) and (reader.width, reader.height) == (64, 48)


def test_the_writer_skips_a_damaged_audio_packet_and_counts_it(small_avi, tmp_path):
    source = _damaged_copy(small_avi, tmp_path / "bad.avi", "audio", [5])
    output = tmp_path / "out.mp4"

    def write() -> VideoWriter:
        with VideoWriter(output, CLIP_FPS, audio_from=source) as writer:
            for i in range(25):
                writer.write(np.full((48, 64, 3), 9 * i, np.uint8))
        return writer

    assert _within(HANG_SECONDS, write).damaged_audio_packets == 1
    assert _frame_count(output) == 25 and _audio_seconds(output) == pytest.approx(1.0, abs=0.1)


# --- a file damaged throughout is one error line --------------------------------------------------------------


def test_a_sound_track_damaged_throughout_is_one_error_line_and_no_file(talking_avi, tmp_path):
    driving = _damaged_copy(talking_avi, tmp_path / "no_sound.avi", "audio")
    done = _animate_cli(driving, tmp_path / "out.mp4")
    assert done.returncode == 2, done.stderr
    (line,) = _error_lines(done.stderr)
    assert [said for said in done.stderr.splitlines() if said.startswith("enliven:")] == [line]  # no warning too
    assert "the audio of" in line and "damaged throughout" in line and "no_sound.avi" in line
    assert not (tmp_path / "out.mp4").exists() and not _leftovers(tmp_path)


@pytest.mark.parametrize("share", ["all", "two of three"])
def test_a_video_mostly_damaged_is_one_clear_error(small_avi, tmp_path, share):
    which = None if share == "all" else [i for i in range(25) if i % 3]
    damaged = _damaged_copy(small_avi, tmp_path / "bad.avi", "video", which)
    with pytest.raises(EnlivenError, match="damaged throughout") as caught:  # says what is wrong with the file
        _within(HANG_SECONDS, lambda: list(VideoReader(damaged)))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("suffix", [".avi", ".mp4", ".mkv", ".mov"])
def test_random_bytes_named_as_a_video_are_one_error(tmp_path, suffix):
    junk = tmp_path / f"junk{suffix}"
    junk.write_bytes(np.random.default_rng(14).bytes(300_000))
    with pytest.raises(EnlivenError) as caught:
        _within(HANG_SECONDS, lambda: list(VideoReader(junk)))
    assert "\n" not in str(caught.value)


def test_random_bytes_as_the_driving_clip_exit_2_with_one_line(tmp_path):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(np.random.default_rng(14).bytes(300_000))
    done = _animate_cli(junk, tmp_path / "out.mp4")
    assert done.returncode == 2 and len(_error_lines(done.stderr)) == 1, done.stderr
    assert not _leftovers(tmp_path)


# --- no wait lasts forever --------------------------------------------------------------------------------------


def _write_frames_atomically(target: Path, audio_from: Path, frames: int = 30) -> None:
    with atomic_output(target) as tmp, VideoWriter(tmp, CLIP_FPS, audio_from=audio_from, queue_size=2) as writer:
        for i in range(frames):
            writer.write(np.full((48, 64, 3), 5 * i, np.uint8))


def test_the_encoder_failing_after_the_last_frame_is_one_error_and_no_part_file(small_avi, tmp_path, monkeypatch):
    """The hang of issue 14 without a damaged file: the audio copy fails after the end marker was taken."""

    def fail(*args, **kwargs):  # a media failure (a bug would propagate as itself: see the tests further down)
        raise av.error.InvalidDataError(errno.EINVAL, "the audio copy broke")

    monkeypatch.setattr(video._AudioCopy, "run", fail)
    before = _enliven_threads()
    with pytest.raises(EnlivenError, match="the audio copy broke"):
        _within(HANG_SECONDS, lambda: _write_frames_atomically(tmp_path / "out.mp4", small_avi))
    assert list(tmp_path.iterdir()) == []
    assert not _no_new_enliven_threads(before)


def test_the_encoder_failing_before_the_frames_stops_the_writer(small_avi, tmp_path, monkeypatch):
    """The frames' writer hears of it at once, as one EnlivenError, instead of feeding a dead encoder."""

    def fail(*args, **kwargs):
        raise OSError(errno.EIO, "no audio for you")  # the disk's failure, not a bug

    monkeypatch.setattr(video._AudioCopy, "__init__", fail)
    with pytest.raises(EnlivenError, match="no audio for you"):
        _within(HANG_SECONDS, lambda: _write_frames_atomically(tmp_path / "out.mp4", small_avi, frames=200))
    assert list(tmp_path.iterdir()) == []


def test_a_stuck_encoder_is_given_up_on_with_one_error(small_avi, tmp_path, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(video, "_STALL_SECONDS", 0.5, raising=False)
    monkeypatch.setattr(video._AudioCopy, "run", lambda *args, **kwargs: release.wait(HANG_SECONDS))
    try:
        with pytest.raises(EnlivenError, match="no progress"):
            _within(HANG_SECONDS / 2, lambda: _write_frames_atomically(tmp_path / "out.mp4", small_avi))
        assert list(tmp_path.iterdir()) == []
    finally:
        release.set()


def test_a_reader_stopped_early_leaves_no_decoder_thread(small_avi):
    before = _enliven_threads()

    def read_three() -> None:
        for i, _ in enumerate(VideoReader(small_avi, prefetch=2)):
            if i == 2:
                break

    _within(HANG_SECONDS, read_three)
    assert not _no_new_enliven_threads(before)


def test_a_stuck_decoder_neither_hangs_the_reader_nor_its_early_stop(small_avi, monkeypatch):
    """FFmpeg stuck in a read (a hung network mount) is simulated by a decoder that stops after two frames."""
    release = threading.Event()
    turned = video._turned
    handed_out = []

    def stuck_after_two(image, turn):
        handed_out.append(1)
        if len(handed_out) > 2:
            release.wait(HANG_SECONDS)
        return turned(image, turn)

    monkeypatch.setattr(video, "_turned", stuck_after_two)
    monkeypatch.setattr(video, "_STALL_SECONDS", 0.5, raising=False)
    monkeypatch.setattr(video, "_STOP_SECONDS", 0.5, raising=False)
    before = _enliven_threads()
    try:
        with pytest.raises(EnlivenError, match="no progress"):  # waiting for the third frame
            _within(HANG_SECONDS / 2, lambda: list(VideoReader(small_avi)))
        handed_out.clear()

        def stop_after_one() -> None:  # the stop itself must not wait for the stuck decoder
            for _ in VideoReader(small_avi):
                time.sleep(0.2)  # let the decoder get stuck on a later frame
                break

        _within(HANG_SECONDS / 2, stop_after_one)
    finally:
        release.set()
    assert not _no_new_enliven_threads(before)  # once FFmpeg comes back, the stopped decoders end


def test_frames_written_from_another_thread_then_closed_here_are_a_whole_video(tmp_path):
    """The bounded waits must not mistake a writer fed by a thread that has since ended for an abandoned one."""
    output = tmp_path / "out.mp4"

    def write_and_close() -> None:
        with VideoWriter(output, CLIP_FPS) as writer:
            greys = [np.full((48, 64, 3), i, np.uint8) for i in range(5)]
            feeder = threading.Thread(target=lambda: [writer.write(grey) for grey in greys])
            feeder.start()
            feeder.join()
            time.sleep(0.5)  # the encoder polls for frames meanwhile

    _within(HANG_SECONDS, write_and_close)
    assert _frame_count(output) == 5


# --- a bug on a worker thread is not the user's fault -----------------------------------------------------------
# The decode and encode threads' failures reach the caller; only the media's or the disk's become the one
# EnlivenError line (exit 2, "your file"): a bug of ours, reworded so, would read as the user's fault and hide.

BUGS = [IndexError, TypeError, AttributeError, KeyError, ValueError, RuntimeError]  # raised as kind("a bug")


def _media_failure(kind: str) -> Exception:
    """What FFmpeg raises on damaged data, or the system on a failing disk: the user's media's or machine's."""
    if kind == "InvalidDataError":
        return av.error.InvalidDataError(errno.EINVAL, "Invalid data found when processing input")
    return OSError(errno.EIO, "Input/output error")


MEDIA_FAILURES = ["InvalidDataError", "OSError"]


def _raising(exc: BaseException):
    def injected(*args, **kwargs):
        raise exc

    return injected


def _raised_in(caught: pytest.ExceptionInfo, worker: str) -> bool:
    """Whether the traceback the caller got still goes through the worker thread's function ``worker`` down to the
    injected raise: the bug's own traceback, not a new one starting where the caller re-raised it."""
    names = [entry.name for entry in caught.traceback]
    return worker in names and names[-1] == "injected"


@pytest.mark.parametrize("kind", BUGS, ids=lambda kind: kind.__name__)
def test_a_bug_on_the_decode_thread_reaches_the_caller_as_itself(small_avi, monkeypatch, kind):
    bug = kind("a bug")
    monkeypatch.setattr(video, "_turned", _raising(bug))  # runs on the decode thread, once a frame
    before = _enliven_threads()
    with pytest.raises(type(bug)) as caught:
        _within(HANG_SECONDS, lambda: list(VideoReader(small_avi)))
    assert caught.value is bug and not isinstance(caught.value, EnlivenError)  # not reworded, not wrapped
    assert _raised_in(caught, "decode")
    assert not _no_new_enliven_threads(before)


@pytest.mark.parametrize("kind", MEDIA_FAILURES)
def test_a_media_failure_on_the_decode_thread_is_one_error_line(small_avi, monkeypatch, kind):
    failure = _media_failure(kind)
    monkeypatch.setattr(video, "_turned", _raising(failure))
    with pytest.raises(EnlivenError) as caught:
        _within(HANG_SECONDS, lambda: list(VideoReader(small_avi)))
    message = str(caught.value)
    assert message.startswith(f"cannot decode video {small_avi}: ") and "\n" not in message, message
    assert caught.value.__cause__ is failure  # kept for whoever debugs it


@pytest.mark.parametrize("kind", BUGS, ids=lambda kind: kind.__name__)
def test_a_bug_on_the_encode_thread_reaches_the_caller_as_itself(small_avi, tmp_path, monkeypatch, kind):
    bug = kind("a bug")
    monkeypatch.setattr(video._Sink, "check", _raising(bug))  # on the encode thread, after each frame
    with pytest.raises(type(bug)) as caught:
        _within(HANG_SECONDS, lambda: _write_frames_atomically(tmp_path / "out.mp4", small_avi))
    assert caught.value is bug and not isinstance(caught.value, EnlivenError)  # not reworded, not wrapped
    assert _raised_in(caught, "_encode")
    assert list(tmp_path.iterdir()) == []  # no part file: the bug does not skip the clean-up


@pytest.mark.parametrize("kind", MEDIA_FAILURES)
def test_a_media_failure_on_the_encode_thread_is_one_error_line(small_avi, tmp_path, monkeypatch, kind):
    failure = _media_failure(kind)
    monkeypatch.setattr(video._Sink, "check", _raising(failure))
    with pytest.raises(EnlivenError) as caught:
        _within(HANG_SECONDS, lambda: _write_frames_atomically(tmp_path / "out.mp4", small_avi))
    message = str(caught.value)
    assert message.startswith("cannot encode the video: ") and "\n" not in message, message
    assert list(tmp_path.iterdir()) == []


def test_a_bug_in_the_audio_copy_reaches_the_caller_as_itself(small_avi, tmp_path, monkeypatch):
    """The audio copy turns its media's failures into one line itself; a ValueError of ours must get through."""
    bug = ValueError("could not broadcast input array")
    monkeypatch.setattr(video._AudioCopy, "_head", _raising(bug))  # cuts the track at the video's end
    with pytest.raises(ValueError) as caught:
        _within(HANG_SECONDS, lambda: _write_frames_atomically(tmp_path / "out.mp4", small_avi, frames=5))
    assert caught.value is bug and _raised_in(caught, "_copy")


def test_a_track_that_changes_midway_is_one_error_line(small_avi, tmp_path, monkeypatch):
    """PyAV's resampler refuses a frame whose sample format, layout or rate differ from the first ones (a damaged
    packet can decode so) with a plain ValueError: the user's file, so one line, not a traceback."""
    refusal = ValueError("Frame does not match AudioResampler setup.")
    monkeypatch.setattr(av.AudioResampler, "resample", _raising(refusal))
    with pytest.raises(EnlivenError, match=f"cannot copy the audio of {small_avi}: it changes midway") as caught:
        _within(HANG_SECONDS, lambda: _write_frames_atomically(tmp_path / "out.mp4", small_avi))
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_the_command_fails_loudly_on_a_bug_and_in_one_line_on_damaged_media(talking_avi, tmp_path, monkeypatch,
                                                                            capsys):
    """``enliven.cli.main`` answers a user error with one line and exit 2, and lets a bug out: Python prints its
    traceback and the command exits 1 (not the 2 of "your input is wrong")."""
    from enliven import cli

    argv = ["-q", "motion", "extract", str(talking_avi), "-o", str(tmp_path / "out.npz")]
    monkeypatch.setattr(video, "_turned", _raising(IndexError("list index out of range")))
    with pytest.raises(IndexError):
        cli.main(argv)
    assert "enliven: error" not in capsys.readouterr().err
    monkeypatch.setattr(video, "_turned", _raising(_media_failure("InvalidDataError")))
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("enliven: error: cannot decode video"), lines
    assert list(tmp_path.iterdir()) == []


def _open_files() -> set[str]:
    """What this process has open, by path (sockets, pipes and the like by their kernel names)."""
    import os

    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the descriptor listdir itself used, closed by now
            pass
    return found


@pytest.mark.parametrize("driver", ["preset", "video", "speech"])
def test_an_encoder_failing_mid_render_leaves_nothing_of_the_render_behind(tmp_path, monkeypatch, driving_video,
                                                                           driver):
    """A full disk found at the third frame (the fuzz suite's case: a file-size limit, the driver's sound muxed as
    the video goes): the error is one line, and the render is gone with the call: no thread of it left, nothing of
    the driver left open (the video's decoder, the speech file the motion is read from). Not left for the garbage
    collector: the failure refers back to the suspended render, and a quiet process may not collect for a while."""
    import gc

    from conftest import vowels_and_silence

    if driver == "video":
        driving = str(driving_video)
    elif driver == "speech":
        driving = str(tmp_path / "speech.wav")
        vowels_and_silence(Path(driving), seconds=3.0)
    else:
        driving = "preset:talk"
    checks = iter(range(10**6))

    def fill_up(self):
        if next(checks) >= 2:
            raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(video._Sink, "check", fill_up)
    output = tmp_path / "out" / "out.mp4"
    output.parent.mkdir()
    gc.collect()
    threads, files = _enliven_threads(), _open_files()
    gc.disable()
    try:
        with pytest.raises(EnlivenError, match="File too large"):
            _within(HANG_SECONDS, lambda: api.animate(api.bundled_portrait(), driving, output, progress=False))
        assert not _no_new_enliven_threads(threads)
        assert not _open_files() - files
    finally:
        gc.enable()
    assert list(output.parent.iterdir()) == []


def test_a_file_pyav_fails_to_finish_opening_leaves_no_descriptor_open(tmp_path):
    """A WAV whose title is not UTF-8 (PyAV's UnicodeDecodeError halfway through opening it, as the fuzz suite's
    damaged headers made): one error line, and FFmpeg's descriptor of the file closed with it, not whenever the
    garbage collector next runs (the half-made container sits in a reference cycle)."""
    import gc
    import os

    path = tmp_path / "tagged.wav"
    with av.open(str(path), "w") as out:
        out.metadata["title"] = "abcdefgh"
        stream = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.float32), format="flt", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    path.write_bytes(path.read_bytes().replace(b"abcdefgh", b"\xc9bcdefgh"))
    with pytest.raises(UnicodeDecodeError):
        av.open(str(path))  # the damage is the kind meant
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    gc.disable()
    try:
        with pytest.raises(EnlivenError, match="cannot read audio .*codec can't decode"):
            video.open_media(path, "audio")
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        gc.enable()
