"""Motion transfer rules, smoothing and the template format."""

from __future__ import annotations

import os

import numpy as np
import pytest

from enliven.errors import EnlivenError
from enliven.face import geometry
from enliven.face import landmarks as lm
from enliven.motion import edits
from enliven.motion.align import AlignOptions, MotionAligner
from enliven.motion.frame import MotionFrame, MotionSequence
from enliven.motion.smooth import OneEuroFilter
from enliven.motion.template import load_template, save_template


def _frame(shape, yaw=0.0, scale=100.0, t=(200.0, 200.0, 0.0)):
    pose = geometry.Pose(geometry.rotation_from_angles(yaw, 0, 0), scale, np.array(t))
    return MotionFrame.from_landmarks(geometry.from_canonical(shape, pose))


@pytest.fixture(scope="module")
def faces():
    canon = geometry.face_model().canonical
    other = canon * np.array([1.15, 0.9, 1.0])  # a differently shaped driver (wider, shorter)
    return canon, other


def test_relative_identity_when_the_driver_is_still(faces):
    canon, other = faces
    source = geometry.from_canonical(canon, geometry.Pose(np.eye(3), 150.0, np.array([256.0, 250.0, 0.0])))
    aligner = MotionAligner(source, 25, AlignOptions(smooth=False))
    driver = _frame(other, yaw=10)
    for _ in range(3):
        np.testing.assert_allclose(aligner(driver), source, atol=1e-3)


def test_relative_transfer_applies_pose_changes(faces):
    canon, _ = faces
    source = geometry.from_canonical(canon, geometry.Pose(np.eye(3), 150.0, np.array([256.0, 250.0, 0.0])))
    aligner = MotionAligner(source, 25, AlignOptions(smooth=False, follow_camera=True))
    aligner(_frame(canon))
    pose = geometry.fit_pose(aligner(_frame(canon, yaw=15, scale=120, t=(230.0, 200.0, 0.0))))
    assert pose.angles()[0] == pytest.approx(15, abs=0.5)  # R_d,i R_d,0^T R_s with R_s = I
    assert pose.scale == pytest.approx(150 * 1.2, rel=0.01)
    assert pose.translation[0] - 256 == pytest.approx(30 * 150 / 100, abs=1.0)  # in face-size units
    assert pose.translation[1] - 250 == pytest.approx(0, abs=1.0)


def test_relative_transfer_moves_expression_not_face_shape(faces):
    canon, other = faces
    source = geometry.from_canonical(canon, geometry.Pose(np.eye(3), 150.0, np.array([256.0, 250.0, 0.0])))
    aligner = MotionAligner(source, 25, AlignOptions(smooth=False))
    aligner(_frame(other))
    target = aligner(_frame(edits.set_lip_open(other, 0.4)))
    shape = geometry.to_canonical(target, geometry.fit_pose(target))
    # the source's own proportions survive; the driver's wider, shorter face does not leak in
    rigid = list(lm.RIGID)
    np.testing.assert_allclose(np.ptp(shape[rigid, :2], axis=0), np.ptp(canon[rigid, :2], axis=0), rtol=0.01)
    assert geometry.lip_open_ratio(target) > geometry.lip_open_ratio(source) + 0.1


def test_absolute_copies_expression_and_rotation_keeps_place(faces):
    canon, other = faces
    source = geometry.from_canonical(canon, geometry.Pose(np.eye(3), 150.0, np.array([256.0, 250.0, 0.0])))
    aligner = MotionAligner(source, 25, AlignOptions(relative=False, smooth=False))
    driver = _frame(edits.set_lip_open(other, 0.35), yaw=20, scale=50, t=(10.0, 10.0, 0.0))
    target = aligner(driver)
    pose = geometry.fit_pose(target)
    assert pose.angles()[0] == pytest.approx(20, abs=1.0)
    assert np.linalg.norm(pose.translation[:2] - (256, 250)) < 0.05 * 150  # stays where the source is
    assert geometry.lip_open_ratio(target) == pytest.approx(geometry.lip_open_ratio(driver.landmarks()), abs=1e-4)


def test_multiplier_scales_the_motion(faces):
    canon, _ = faces
    source = geometry.from_canonical(canon, geometry.Pose(np.eye(3), 150.0, np.array([256.0, 250.0, 0.0])))
    moved = _frame(edits.set_lip_open(canon, 0.4), scale=150.0, t=(256.0, 250.0, 0.0))
    ref = _frame(canon, scale=150.0, t=(256.0, 250.0, 0.0))
    full = MotionAligner(source, 25, AlignOptions(smooth=False), reference=ref)(moved)
    half = MotionAligner(source, 25, AlignOptions(multiplier=0.5, smooth=False), reference=ref)(moved)
    np.testing.assert_allclose(half - source, (full - source) * 0.5, atol=1e-6)


def test_one_euro_removes_jitter_but_follows_motion():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(fps=30)
    still = np.ones((10, 2)) * 100
    out = np.array([f(still + rng.normal(0, 1.0, still.shape)) for _ in range(90)])
    assert out[30:].std(0).mean() < 0.4  # raw jitter std is 1.0
    f = OneEuroFilter(fps=30)
    ramp = [f(np.full((1, 2), 10.0 * i)) for i in range(60)]  # 300 px/s
    assert abs(ramp[-1][0, 0] - 590) < 15  # little lag once moving


def test_template_round_trip_is_exact(tmp_path, faces):
    canon, other = faces
    frames = [_frame(edits.set_lip_open(canon, r), yaw=y) for r, y in [(0.1, 0), (0.2, 5), (0.3, -5)]]
    frames[1] = frames[0].lost()
    path = tmp_path / "m.npz"
    assert save_template(path, MotionSequence(frames, fps=30.0)) == 3
    seq = load_template(path)
    loaded = list(seq)
    assert seq.fps == 30.0 and seq.length == 3 and seq.lost == 1
    for a, b in zip(frames, loaded):
        assert np.array_equal(a.shape, b.shape) and np.array_equal(a.rotation, b.rotation)
        assert a.scale == b.scale and np.array_equal(a.translation, b.translation) and a.valid == b.valid
    assert np.array_equal(seq.reference.shape, frames[0].shape)


def test_template_rejects_foreign_files(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(EnlivenError, match="not an enliven motion template"):
        load_template(tmp_path / "other.npz")
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(EnlivenError, match="not a motion template"):
        load_template(tmp_path / "bad.npz")
    obj = np.empty(1, dtype=object)
    np.savez(tmp_path / "pickled.npz", format=np.array("enliven-motion"), shape=obj)
    with pytest.raises(EnlivenError):
        load_template(tmp_path / "pickled.npz")  # object arrays would need pickle: refused


def test_smoothing_keeps_fast_speech(faces):
    """Syllables at 4.2 per second (lips opening and shutting every 6 frames at 25 fps): the smoothed target's lip
    opening follows the asked one in step (correlation >= 0.95; one filter for the whole face, as before, lagged
    behind: 0.78), so fast speech keeps its rhythm."""
    canon, _ = faces
    source = geometry.from_canonical(canon, geometry.Pose(np.eye(3), 150.0, np.array([256.0, 250.0, 0.0])))
    aligner = MotionAligner(source, 25, AlignOptions())
    asked, seen = [], []
    for k in range(60):
        ratio = 0.3 * max(np.sin(2 * np.pi * k / 6), 0.0)
        target = aligner(_frame(edits.set_lip_open(canon.astype(np.float64), ratio), scale=150.0,
                                t=(256.0, 250.0, 0.0)))
        asked.append(ratio)
        seen.append(float(geometry.lip_open_ratio(target)))
    correlation = np.corrcoef(asked[12:], seen[12:])[0, 1]
    assert correlation >= 0.95, correlation


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc")
def test_a_damaged_template_leaves_no_file_open(tmp_path):
    """A file that starts like a zip but is not one: one clear error, and its handle closed when the error is
    raised, not when the error is freed (np.load keeps the file it opened alive in the error's traceback)."""
    import gc

    from enliven.errors import EnlivenError
    from enliven.motion.template import load_template

    path = tmp_path / "in.npz"
    path.write_bytes(b"PK\x03\x04" + b"not a zip file" * 10)
    gc.disable()
    try:
        before = len(os.listdir("/proc/self/fd"))
        kept = []  # the errors stay alive, as a caller (the CLI, a thread handing it on) may keep them a while
        for _ in range(3):
            with pytest.raises(EnlivenError, match="not a motion template") as caught:
                load_template(path)
            kept.append(caught.value)
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        gc.enable()
