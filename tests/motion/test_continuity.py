"""Lost faces, cuts and soft limits: the output's motion never jumps and stays within what a portrait takes."""

from __future__ import annotations

import numpy as np
import pytest

from enliven.face import geometry
from enliven.motion.align import AlignOptions, MotionAligner
from enliven.motion.continuity import SHIFT_LIMIT, ZOOM_LIMIT, Continuity, ContinuityOptions, soft_clip
from enliven.motion.frame import MotionFrame

FPS = 25.0


def test_soft_clip_keeps_small_values_and_never_passes_the_limit():
    x = np.linspace(-10, 10, 20001)
    y = soft_clip(x, 2.0)
    small = np.abs(x) <= 1.0
    np.testing.assert_array_equal(y[small], x[small])  # untouched up to half the limit
    assert np.abs(y).max() < 2.0
    assert np.all(np.diff(y) > 0)  # still monotonic: more demand is never less motion
    slope = np.diff(y) / np.diff(x)
    assert np.abs(np.diff(slope)).max() < 1e-2  # the slope bends, it never steps (no visible kick)
    assert soft_clip(3.0, 5.0, start=4.0) == 3.0
    assert 4.0 < soft_clip(8.0, 5.0, start=4.0) < 5.0


def test_a_lost_face_is_held_then_eased_to_rest():
    continuity = Continuity(3, FPS)
    motion = np.array([1.0, -2.0, 0.5])
    for _ in range(10):
        continuity(motion)
    out = np.array([continuity(None) for _ in range(40)])
    hold = int(ContinuityOptions().hold * FPS)
    np.testing.assert_array_equal(out[: hold - 1], np.tile(motion, (hold - 1, 1)))  # held as it was
    np.testing.assert_allclose(out[-1], 0.0, atol=1e-12)  # at rest a second after it was lost
    steps = np.linalg.norm(np.diff(out, axis=0), axis=1)
    assert steps.max() < 0.2 * np.linalg.norm(motion)  # eased over many frames, never snapped


def test_motion_that_comes_back_is_blended_into_without_a_jump():
    continuity = Continuity(2, FPS)
    for _ in range(5):
        continuity(np.array([0.0, 0.0]))
    for _ in range(30):
        continuity(None)  # gone long enough to be at rest
    live = np.array([3.0, -3.0])
    out = np.array([continuity(live) for _ in range(20)])
    assert np.linalg.norm(out[0]) < 0.1 * np.linalg.norm(live)  # starts where the output was (rest)
    np.testing.assert_allclose(out[-1], live)  # and reaches the live motion after the blend
    assert np.linalg.norm(np.diff(out, axis=0), axis=1).max() < 0.25 * np.linalg.norm(live)


def test_a_cut_continues_from_where_the_output_is():
    continuity = Continuity(1, FPS)
    outputs = [continuity(np.array([2.0]), shot=0) for _ in range(10)]
    outputs += [continuity(np.array([-2.0]), shot=1) for _ in range(20)]
    outputs = np.array(outputs)[:, 0]
    jump_at_cut = abs(outputs[10] - outputs[9])
    assert jump_at_cut < 0.01  # the new shot's motion is 4 away: without blending this would be 4
    assert outputs[-1] == -2.0


def test_a_tracker_settling_after_a_cut_does_not_show():
    continuity = Continuity(1, FPS)
    for _ in range(10):
        continuity(np.array([0.0]), shot=0)
    # the first frames of the new shot swing by ±1 while the face tracker settles, then hold still at 0.5
    settling = [1.0, -1.0, 1.0, -1.0, 0.5, 0.5, 0.5]
    out = [continuity(np.array([v]), shot=1)[0] for v in settling]
    assert max(abs(v) for v in out[:3]) < 0.15  # fading in, it shows a tenth of the swing (an offset: all of it)
    assert abs(continuity(np.array([0.5]), shot=1)[0] - 0.5) < 0.5  # while still heading for the new motion


def test_the_clip_starts_with_its_own_motion_and_a_late_face_blends_in_from_rest():
    continuity = Continuity(1, FPS)
    assert continuity(np.array([1.5]))[0] == 1.5  # nothing before the first frame to continue from
    late = Continuity(1, FPS)
    assert late(None)[0] == 0.0  # no face yet: the source at rest
    assert abs(late(np.array([1.5]))[0]) < 0.1


# --- the aligner's limits for a still portrait ---------------------------------------------------------------------


def _frame(scale=100.0, t=(200.0, 200.0, 0.0), yaw=0.0):
    pose = geometry.Pose(geometry.rotation_from_angles(yaw, 0, 0), scale, np.array(t))
    return MotionFrame.from_landmarks(geometry.from_canonical(geometry.face_model().canonical, pose))


@pytest.fixture()
def source():
    pose = geometry.Pose(np.eye(3), 150.0, np.array([256.0, 250.0, 0.0]))
    return geometry.from_canonical(geometry.face_model().canonical, pose)


def _pose_after(source, frames, **options):
    aligner = MotionAligner(source, FPS, AlignOptions(smooth=False, **options))
    for frame in frames[:-1]:
        aligner(frame)
    return geometry.fit_pose(aligner(frames[-1]))


def test_driver_zoom_and_shift_are_eased_into_natural_limits(source):
    zoomed = _frame(scale=150.0, t=(260.0, 200.0, 0.0))  # the camera zooms 1.5x and the face slides 0.6 eye widths
    limited = _pose_after(source, [_frame()] + [zoomed] * 50)  # long enough to settle
    assert np.exp(0.9 * ZOOM_LIMIT) < limited.scale / 150.0 <= np.exp(ZOOM_LIMIT)
    face_width = 1.506 * 150.0  # the canonical face is 1.506 eye-corner distances wide
    assert 0.8 * SHIFT_LIMIT * face_width < limited.translation[0] - 256.0 <= SHIFT_LIMIT * face_width
    full = _pose_after(source, [_frame(), zoomed], follow_camera=True)
    assert full.scale / 150.0 == pytest.approx(1.5, rel=0.01)
    assert full.translation[0] - 256.0 == pytest.approx(60 * 150 / 100, abs=1.0)


def test_a_sudden_camera_slide_becomes_a_glide(source):
    face_width = 1.506 * 150.0
    aligner = MotionAligner(source, FPS, AlignOptions(smooth=False))
    aligner(_frame())
    # the driver's face slides 12 px a frame (0.12 of its width: a fast pan) for 20 frames, then stops
    slide = [_frame(t=(200.0 + 12 * min(k, 20), 200.0, 0.0)) for k in range(1, 40)]
    xs = [geometry.fit_pose(aligner(frame)).translation[0] for frame in slide]
    steps = np.abs(np.diff([256.0] + xs)) / face_width
    assert steps.max() < 0.025  # unsmoothed (measured), the first frame alone takes 0.077 of the face's width
    assert xs[-1] - 256.0 > 0.8 * SHIFT_LIMIT * face_width  # and it still gets there


def test_head_angles_are_eased_into_the_engines_range(source):
    limits = (25.0, 20.0, 30.0)
    turned = _pose_after(source, [_frame(), _frame(yaw=60)], pose_limits=limits)
    assert 12.5 < turned.angles()[0] < 25.0
    small = _pose_after(source, [_frame(), _frame(yaw=10)], pose_limits=limits)
    assert small.angles()[0] == pytest.approx(10.0, abs=0.3)  # within half the range: untouched


def test_a_source_turned_past_the_range_keeps_its_own_turn():
    turned = geometry.from_canonical(
        geometry.face_model().canonical,
        geometry.Pose(geometry.rotation_from_angles(32, 0, 0), 150.0, np.array([256.0, 250.0, 0.0])),
    )
    still = _pose_after(turned, [_frame(), _frame()], pose_limits=(25.0, 20.0, 30.0))
    assert still.angles()[0] == pytest.approx(32.0, abs=0.3)
