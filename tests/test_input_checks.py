"""What the fuzz suite found, pinned down one by one: each of these failed (a traceback, a white picture, a lost
input, junk on stderr) before its fix. The fuzz suite (tests/fuzz) keeps looking for more."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from enliven import api
from enliven.errors import EnlivenError
from enliven.io.images import read_image
from enliven.motion.align import Controls
from enliven.motion.template import load_template
from enliven.options import AnimateOptions


def test_a_16_bit_png_reads_as_it_looks(tmp_path):
    """Pillow's own RGB conversion clips 16-bit grey at 255: every pixel above 255 of 65535 came out white."""
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0 … 65520
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    picture = read_image(tmp_path / "deep.png")
    expected = np.round(ramp / 257.0)  # 65535 ↦ 255: the 16-bit range onto the 8-bit one
    assert picture.shape == (64, 64, 3)
    assert np.abs(picture[..., 0].astype(float) - expected).max() <= 1
    assert (picture[..., 0] == picture[..., 2]).all()


def test_a_float_tiff_in_0_1_reads_as_8_bit(tmp_path):
    values = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    Image.fromarray(values).save(tmp_path / "float.tiff")
    picture = read_image(tmp_path / "float.tiff")
    assert np.abs(picture[..., 1].astype(float) - values * 255).max() <= 1


@pytest.mark.parametrize("field, value", [("pitch", float("nan")), ("yaw", float("inf")), ("smile", 50.0),
                                          ("gaze", (float("nan"), 0.0)), ("eyes_open", (0.3,)), ("wink", "1")])
def test_controls_refuse_values_that_are_not_finite_numbers_in_range(field, value):
    """pitch=NaN passed every range check (each comparison with NaN is False) and failed later as an SVD that did
    not converge, with a traceback."""
    with pytest.raises(EnlivenError, match=field.replace("_", " ")):
        Controls(**{field: value})


@pytest.mark.parametrize("field, value", [("multiplier", float("nan")), ("crop_scale", float("nan")),
                                          ("fps", float("inf")), ("multiplier", "2"), ("crf", 2.5),
                                          ("crop_scale", 0.0), ("multiplier", 1e6)])
def test_options_refuse_values_that_are_not_finite_numbers_in_range(field, value):
    with pytest.raises(EnlivenError, match=field.replace("_", " ")):
        AnimateOptions(**{field: value})


def test_unknown_controls_are_named():
    with pytest.raises(EnlivenError, match="unknown control.*smirk"):
        AnimateOptions(controls={"smirk": 1.0})


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, portrait_path):
    source = tmp_path / "me.png"
    shutil.copy(portrait_path, source)
    before = source.read_bytes()
    with pytest.raises(EnlivenError, match="is an input too"):
        api.animate(source, tmp_path / "smile.jpg", source, progress=False)
    with pytest.raises(EnlivenError, match="is an input too"):
        api.animate(source, "preset:blink", tmp_path / "." / "me.png", progress=False)
    assert source.read_bytes() == before


def _template_with(tmp_path: Path, change) -> Path:
    """A valid template (a preset's motion, as `enliven motion extract` writes them) with one array changed."""
    from enliven.motion.presets import preset_motion
    from enliven.motion.template import save_template

    save_template(tmp_path / "good.npz", preset_motion("blink", None))
    with np.load(tmp_path / "good.npz") as data:
        arrays = {key: data[key] for key in data.files}
    change(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    return tmp_path / "bad.npz"


@pytest.mark.parametrize("change, words", [
    (lambda a: a["shape"].__setitem__((0, 5, 1), np.nan), "NaN"),
    (lambda a: a.__setitem__("rotation", a["rotation"][:3]), "rows"),
    (lambda a: a.__setitem__("shape", a["shape"].astype(np.complex64)), "not numbers"),
    (lambda a: a.__setitem__("fps", np.float64(0)), "frame rate"),
    (lambda a: a.pop("translation"), "no 'translation'"),
    (lambda a: a.__setitem__("shape", np.swapaxes(a["shape"], 1, 2)), "has shape"),
])
def test_a_damaged_template_is_one_clear_error(tmp_path, change, words):
    """A NaN landmark reached the mesh engine (an OpenCV assertion); short arrays an IndexError."""
    with pytest.raises(EnlivenError, match=words):
        load_template(_template_with(tmp_path, change))


FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # as on a full disk: the write fails, the process lives
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
from enliven.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("limit", [0, 2000])
@pytest.mark.parametrize("kind", ["still", "extract"])
def test_a_full_disk_is_one_line_and_no_file(tmp_path, portrait_path, driving_video, kind, limit):
    """A PNG or the driver's temporary landmark file hitting a full disk ended in an OSError traceback."""
    if kind == "still":
        shutil.copy(portrait_path, tmp_path / "drive.png")
        args = ["animate", str(portrait_path), str(tmp_path / "drive.png"), "-o", str(tmp_path / "out.png")]
    else:
        args = ["motion", "extract", str(driving_video), "-o", str(tmp_path / "out.npz")]
    before = set(tmp_path.iterdir())
    run = subprocess.run([sys.executable, "-c", FULL_DISK, str(limit), "-q", *args], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("enliven: error: "), lines
    assert "File too large" in lines[0] or "temporary" in lines[0], lines
    assert set(tmp_path.iterdir()) == before


def test_text_starting_with_a_dash_is_spoken_not_read_as_an_option(tmp_path):
    """The text went to espeak-ng as an argument: "-h hello" printed espeak's help and no speech."""
    from enliven.motion.audio import speak

    if not shutil.which("espeak-ng") and not os.environ.get("CI"):
        pytest.skip("espeak-ng is not installed")
    wav = speak("-h hello there", tmp_path / "speech.wav")
    with __import__("wave").open(str(wav)) as speech:
        assert speech.getnframes() / speech.getframerate() > 0.5  # "h hello there" takes about a second
