"""Streamed video I/O and atomic outputs."""

from __future__ import annotations

import av
import numpy as np
import pytest

from enliven.errors import EnlivenError
from enliven.io.files import atomic_output, check_writable
from enliven.io.images import read_image
from enliven.io.video import VideoReader, VideoWriter


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


def test_reader_stops_early_without_hanging(tmp_path):
    path = tmp_path / "v.mp4"
    with VideoWriter(path, fps=25) as writer:
        for f in _frames(40, 64, 64):
            writer.write(f)
    for i, _ in enumerate(VideoReader(path, prefetch=2)):
        if i == 3:
            break


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
