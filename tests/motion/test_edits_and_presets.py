"""Expression edits hit their targets and leave what they should alone."""

from __future__ import annotations

import numpy as np
import pytest

from enliven.face import geometry
from enliven.face import landmarks as lm
from enliven.motion import edits
from enliven.motion.presets import PRESETS, get_preset, preset_motion


@pytest.fixture(scope="module")
def shape():
    return geometry.face_model().canonical


@pytest.mark.parametrize("ratio", [0.05, 0.15, 0.3, 0.5])
def test_lip_open_hits_the_ratio_and_keeps_the_rigid_face(shape, ratio):
    out = edits.set_lip_open(shape, ratio)
    assert geometry.lip_open_ratio(out) == pytest.approx(ratio, abs=1e-4)
    np.testing.assert_allclose(out[list(lm.RIGID)], shape[list(lm.RIGID)], atol=1e-9)
    np.testing.assert_allclose(out[list(edits._UPPER_LIP)], shape[list(edits._UPPER_LIP)], atol=1e-9)
    assert out[lm.CHIN, 1] - shape[lm.CHIN, 1] == pytest.approx(
        out[14, 1] - shape[14, 1], rel=0.6
    )  # the chin drops with the lower lip


def test_closing_the_mouth_nearly_closes_it(shape):
    assert geometry.lip_open_ratio(edits.set_lip_open(shape, 0.0)) < 0.03


@pytest.mark.parametrize("side", [0, 1])
def test_eye_open_targets_one_eye(shape, side):
    closed = edits.set_eye_open(shape, side, 0.0)
    ratios = geometry.eye_open_ratios(closed)
    assert ratios[side] == pytest.approx(0.0, abs=1e-9)
    assert ratios[1 - side] == pytest.approx(geometry.eye_open_ratios(shape)[1 - side])
    wide = edits.set_eye_open(shape, side, 0.6)
    assert geometry.eye_open_ratios(wide)[side] == pytest.approx(0.6)


def test_smile_lifts_and_widens_the_mouth_corners(shape):
    out = edits.smile(shape, 1.0)
    right, left = lm.MOUTH_CORNERS
    assert out[right, 0] < shape[right, 0] and out[left, 0] > shape[left, 0]
    assert out[right, 1] < shape[right, 1] and out[left, 1] < shape[left, 1]
    np.testing.assert_allclose(out[list(lm.RIGID)], shape[list(lm.RIGID)], atol=1e-9)
    # symmetric edit on a symmetric face stays symmetric
    mirrored = out[geometry.face_model().mirror] * np.array([-1, 1, 1])
    assert np.abs(out - mirrored).max() < 1e-3  # the mesh topology itself is symmetric to about this


def test_preset_interpolation_and_reference():
    preset = get_preset("mouth")
    assert preset.value("lip_open", 0.0) == 0.0
    assert preset.value("lip_open", 1.0) == pytest.approx(0.3)
    assert 0 < preset.value("lip_open", 0.5) < 0.3
    seq = preset_motion("mouth", fps=10)
    frames = list(seq)
    assert len(frames) == seq.length == 20
    ratios = [geometry.lip_open_ratio(f.shape.astype(float)) for f in frames]
    assert max(ratios) == pytest.approx(0.3, abs=0.02)
    assert np.array_equal(seq.reference.rotation, np.eye(3, dtype=np.float32))


def test_every_preset_builds_and_moves():
    shape = geometry.face_model().canonical
    for name, preset in PRESETS.items():
        frames = list(preset_motion(name, shape, fps=5))
        assert len(frames) == round(preset.duration * 5)
        motion = max(np.abs(f.shape - shape).max() + np.abs(f.rotation - np.eye(3)).max() for f in frames)
        assert motion > 0.01, f"preset {name} does not move"
