"""Hostile and damaged pictures, and stopping a render: one line, the documented exit code, no file left behind."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import pytest
from PIL import Image

from enliven.cli import main
from enliven.errors import EnlivenError
from enliven.io import images


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header that claims ``width`` × ``height`` RGB pixels, followed by almost no picture data:
    the few hundred bytes a decompression bomb needs to ask a decoder for gigabytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + (
        _png_chunk(b"IEND", b"")
    )


def _one_error_line(code: int, err: str, expect: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("enliven: error:") and expect in lines[0], err
    return lines[0]


def test_a_png_claiming_60000_by_60000_pixels_is_refused_in_one_line(tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_claiming(60000, 60000))
    out = tmp_path / "out"
    out.mkdir()
    code = main(["-q", "animate", str(bomb), "preset:blink", "-o", str(out / "o.mp4")])
    line = _one_error_line(code, capsys.readouterr().err, "60000×60000")
    assert "--max-pixels" in line  # says how to read a genuine picture that large
    assert list(out.iterdir()) == []


def test_max_pixels_lowers_the_limit_from_the_command_line(tmp_path, portrait_path, capsys):
    out = tmp_path / "o.mp4"
    code = main(["animate", str(portrait_path), "preset:blink", "-o", str(out), "--max-pixels", "100000"])
    _one_error_line(code, capsys.readouterr().err, "512×512 = 262,144 pixels, over the limit of 100,000")
    assert list(tmp_path.iterdir()) == []


def test_a_raised_limit_also_raises_pillows_own_guard(portrait_path, monkeypatch):
    # Pillow refuses pictures over its own process-wide limit whatever ours says; stand in a Pillow whose limit is
    # below the portrait's 262,144 pixels, as its default (89 megapixels) is below a --max-pixels of 200 million.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)
    with images.pixel_limit(300_000):
        assert images.read_image(portrait_path).shape == (512, 512, 3)
    assert Image.MAX_IMAGE_PIXELS == 50_000  # Pillow's setting is left as it was
    with pytest.raises(EnlivenError, match="over the limit of 120,000,000"):
        images.check_pixel_count(12_000, 10_001, "frame")


def _raising(exc: BaseException):
    def fake_open(*args, **kwargs):
        raise exc

    return fake_open


def _warning_then_open(*args, **kwargs):
    """What Pillow does with a picture between its limit and twice its limit: a warning, then the picture."""
    warnings.warn("Image size (100000000 pixels) exceeds limit", Image.DecompressionBombWarning, stacklevel=2)
    return Image.new("RGB", (8, 8))


@pytest.mark.parametrize(
    "fake_open,expect",
    [
        (_raising(OSError("image file is truncated (19 bytes not processed)")), "cannot read image"),
        (_raising(SyntaxError("broken PNG file (chunk b'IDAT')")), "cannot read image"),
        (_raising(ValueError("tile cannot extend outside image")), "cannot read image"),
        (_raising(EOFError("no more images in GIF file")), "cannot read image"),
        (_raising(Image.DecompressionBombError("Image size (3600000000 pixels) exceeds limit")), "over the limit"),
        (_warning_then_open, "over the limit"),
    ],
    ids=["OSError", "SyntaxError", "ValueError", "EOFError", "DecompressionBombError", "DecompressionBombWarning"],
)
def test_every_pillow_failure_is_one_line_and_exit_2(tmp_path, portrait_path, monkeypatch, capsys, fake_open, expect):
    monkeypatch.setattr(Image, "open", fake_open)
    code = main(["-q", "animate", str(portrait_path), "preset:blink", "-o", str(tmp_path / "o.mp4")])
    _one_error_line(code, capsys.readouterr().err, expect)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("keep", [0.5, 0.02], ids=["half", "header-only"])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_one_error(tmp_path, portrait, fmt, keep):
    path = tmp_path / f"cut.{fmt.lower()}"
    Image.fromarray(portrait).save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: max(32, int(len(data) * keep))])
    with pytest.raises(EnlivenError, match="cannot read image"):
        images.read_image(path)


def _tiff_with_a_tag_too_many(path: Path) -> Path:
    """An 8×8 TIFF that decodes, whose ResolutionUnit tag (296) says it holds two values where one is allowed: what
    a bit flip in a camera's header does. Pillow reads it and warns ("Metadata Warning")."""
    Image.new("RGB", (8, 8), (100, 100, 100)).save(path, format="TIFF", dpi=(72, 72))
    data = bytearray(path.read_bytes())
    assert data[:2] == b"II"  # little-endian, as Pillow writes it
    ifd = struct.unpack_from("<I", data, 4)[0]
    for entry in range(struct.unpack_from("<H", data, ifd)[0]):
        at = ifd + 2 + 12 * entry
        if struct.unpack_from("<H", data, at)[0] == 296:
            struct.pack_into("<I", data, at + 4, 2)
            path.write_bytes(data)
            return path
    raise AssertionError("no ResolutionUnit tag written")


def test_pillows_warnings_on_a_picture_that_reads_are_held_as_the_librarys(tmp_path, caplog):
    """Printed by Python, a Pillow warning is a line before the result or before the one error line (the fuzz
    suite's damaged TIFF headers); held as the library's, the CLI prints it only after a run that worked."""
    path = _tiff_with_a_tag_too_many(tmp_path / "tagged.tif")
    with warnings.catch_warnings(record=True) as printed:
        warnings.simplefilter("always")
        picture = images.read_image(path)
    assert picture.shape == (8, 8, 3) and (picture == 100).all()
    assert [str(w.message) for w in printed] == []
    assert [r.getMessage() for r in caplog.records if r.name == "enliven.io.images"] == [
        f"enliven: image {path}: Metadata Warning, tag 296 had too many entries: 2, expected 1"]


# Stopping a render. A real process: a signal handler only matters where the signal really arrives.
MESSAGE = {130: "enliven: interrupted", 143: "enliven: terminated"}


def _wait_for_part_file(folder: Path, process: subprocess.Popen, timeout: float = 180.0) -> None:
    """Until the render has begun (its temporary file exists); a slow shared machine may take a while to start."""
    deadline = time.monotonic() + timeout
    while not any(".part" in p.name for p in folder.iterdir()):
        if process.poll() is not None:
            pytest.fail(f"enliven ended (exit {process.returncode}) before rendering: {process.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no temporary file in {folder} after {timeout:.0f} s")
        time.sleep(0.05)


@pytest.mark.parametrize(
    "signals,exit_code",
    [([signal.SIGINT], 130), ([signal.SIGTERM], 143), ([signal.SIGINT, signal.SIGTERM], 130)],
    # The last: Ctrl-C, then `kill` (or a second Ctrl-C) while the first is still cleaning up must not cut it short.
    ids=["SIGINT", "SIGTERM", "SIGINT-then-SIGTERM"],
)
def test_a_stopped_render_exits_cleanly_and_leaves_no_file(tmp_path, portrait_path, signals, exit_code):
    out = tmp_path / "out"
    out.mkdir()
    # --fps 120 makes the demo motion 600 frames: well over a minute here, so the render is still running.
    command = [sys.executable, "-m", "enliven", "-q", "animate", str(portrait_path), "preset:demo", "-o",
               str(out / "out.mp4"), "--fps", "120"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_part_file(out, process)
        time.sleep(1.0)  # a few frames into the encoder, whose thread must stop writing before the file is removed
        assert process.poll() is None, "the render finished before it could be stopped: make it longer"
        for signum in signals:
            process.send_signal(signum)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == exit_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(MESSAGE[exit_code]), err  # one line, no traceback
    assert sorted(os.listdir(out)) == []  # neither the output nor its .part file
