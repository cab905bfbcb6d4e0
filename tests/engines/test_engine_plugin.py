"""Adding an engine is one folder plus one registry line: a toy engine in a temporary package, registered through
the ``enliven.engines`` entry-point group as an installed package would be, shows up in the command line's help
and ``enliven engines``, the web page's list, the readiness check, and renders through ``enliven animate`` with its
own option, without any file of enliven touched."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from enliven import engines
from enliven.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import read_frames

DESCRIPTORS = '''
from enliven.engines.descriptor import EngineDescriptor, EngineOption

DESCRIPTOR = EngineDescriptor(
    name="toy",
    system="a test's toy",
    factory="toy_engine_pkg.engine:ToyEngine",
    needs="nothing",
    options=(EngineOption("tint", parse=float, metavar="T", help="how much the toy lightens the face"),),
)
NEEDY = EngineDescriptor(
    name="needy-toy",
    system="a toy that needs an extra",
    factory="toy_engine_pkg.engine:ToyEngine",
    needs="the toy extra (pip install toy-extra-that-is-not-there)",
    extra_module="toy_extra_that_is_not_there",
)
'''

ENGINE = '''
import numpy as np
from enliven.engines.base import SourceState
from enliven.face.paste import feathered_mask


class ToyEngine:
    name = "toy"
    driving_crop = None
    pose_limits = (30.0, 30.0, 30.0)

    def __init__(self, tint: float = 0.0, align=None):
        self.tint = tint

    def prepare(self, crop_image, landmarks, session=None):
        size = crop_image.shape[0]
        ring = np.array([[0.3, 0.3], [0.7, 0.3], [0.7, 0.7], [0.3, 0.7]]) * size
        return SourceState(crop_image, landmarks, feathered_mask(ring, size, feather=4.0), {}, session or {})

    def render(self, state, target, frame=None):
        return np.clip(state.crop_image.astype(np.float32) + self.tint, 0, 255).astype(np.uint8)
'''


@pytest.fixture
def toy_package(tmp_path, monkeypatch):
    """A package ``toy_engine_pkg`` with its dist-info declaring both toys under ``enliven.engines``."""
    package = tmp_path / "toy_engine_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "descriptor.py").write_text(textwrap.dedent(DESCRIPTORS))
    (package / "engine.py").write_text(textwrap.dedent(ENGINE))
    info = tmp_path / "toy_engine_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-engine-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[enliven.engines]\ntoy = toy_engine_pkg.descriptor:DESCRIPTOR\nneedy-toy = toy_engine_pkg.descriptor:NEEDY\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    engines.forget_plugins()
    yield
    engines.forget_plugins()
    for name in [m for m in sys.modules if m.startswith("toy_engine_pkg")]:
        del sys.modules[name]


def test_a_toy_engine_from_another_package_is_everywhere(toy_package, capsys, tmp_path, portrait_path):
    assert main(["engines"]) == 0
    listed = capsys.readouterr().out
    assert "toy" in listed and "a test's toy" in listed
    assert "needy-toy" in listed
    with pytest.raises(SystemExit):
        main(["animate", "--help"])
    assert "--tint T" in capsys.readouterr().out
    assert engines.readiness("toy") is None
    assert "toy-extra-that-is-not-there" in engines.readiness("needy-toy")
    page = pytest.importorskip("enliven.app.page")
    status = page.engine_status()
    assert status["toy"] is None and status["needy-toy"]
    means = []
    for tint in ("0", "60"):
        out = tmp_path / f"toy{tint}.mp4"
        assert main(["-q", "animate", str(portrait_path), "preset:blink", "--engine", "toy", "--tint", tint,
                     "--fps", "5", "-o", str(out)]) == 0
        means.append(read_frames(out)[0].astype(np.float64).mean())
    assert means[1] > means[0] + 0.5, means  # the toy's own option reached it: the face is lighter


def test_an_option_of_another_engine_is_one_clear_error(capsys, portrait_path, tmp_path):
    assert main(["-q", "animate", str(portrait_path), "preset:blink", "--steps", "3", "-o",
                 str(tmp_path / "x.mp4")]) == 2
    assert "engine 'mesh' has no option --steps" in capsys.readouterr().err


def test_motion_extract_with_an_engine_that_cannot_is_refused_before_loading(capsys, tmp_path, driving_video):
    assert main(["-q", "motion", "extract", str(driving_video), "-o", str(tmp_path / "m.npz"), "--engine",
                 "implicit-diffusion"]) == 2
    err = capsys.readouterr().err
    assert "implicit-diffusion" in err and "cannot store its own motion" in err


def test_every_built_in_engine_has_a_descriptor():
    described = engines.descriptors()
    assert {"mesh", "keypoint", "landmark-diffusion", "implicit-diffusion"} <= set(described)
    for name, descriptor in described.items():
        assert descriptor.name == name and descriptor.system and descriptor.needs
