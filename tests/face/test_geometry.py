"""Pose fitting and ratios against independently constructed cases."""

from __future__ import annotations

import numpy as np
import pytest

from enliven.face import geometry
from enliven.face import landmarks as lm


def test_canonical_model_is_frontal_symmetric_and_unit_sized():
    model = geometry.face_model()
    c = model.canonical
    mirrored = c[model.mirror] * np.array([-1, 1, 1])
    assert np.abs(c - mirrored).max() < 1e-6
    assert np.linalg.norm(c[263] - c[33]) == pytest.approx(1.0)
    assert np.all(model.mirror[model.mirror] == np.arange(len(c)))
    assert c[lm.CHIN, 1] > c[10, 1]  # y points down: chin below forehead


@pytest.mark.parametrize("yaw,pitch,roll", [(0, 0, 0), (20, -10, 5), (-25, 12, -15), (40, 0, 0)])
def test_fit_pose_recovers_a_known_pose(yaw, pitch, roll):
    rng = np.random.default_rng(1)
    rot = geometry.rotation_from_angles(yaw, pitch, roll)
    points = 150.0 * geometry.face_model().canonical @ rot.T + np.array([300.0, 200.0, 10.0])
    points[:, :2] += rng.normal(0, 0.3, (len(points), 2))  # pixel noise
    pose = geometry.fit_pose(points)
    np.testing.assert_allclose(pose.angles(), (yaw, pitch, roll), atol=0.5)
    assert pose.scale == pytest.approx(150.0, rel=0.01)


def test_rotation_matrices_are_proper_and_angles_round_trip():
    rng = np.random.default_rng(2)
    for yaw, pitch, roll in rng.uniform(-60, 60, (20, 3)):
        rot = geometry.rotation_from_angles(yaw, pitch, roll)
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rot) == pytest.approx(1.0)
        np.testing.assert_allclose(geometry.rotation_to_angles(rot), (yaw, pitch, roll), atol=1e-9)


def test_canonical_round_trip_and_pose_invariance():
    shape = geometry.face_model().canonical
    pose = geometry.Pose(geometry.rotation_from_angles(10, 5, -3), 80.0, np.array([5.0, 6.0, 7.0]))
    points = geometry.from_canonical(shape, pose)
    np.testing.assert_allclose(geometry.to_canonical(points, pose), shape, atol=1e-9)
    # the open ratios are picture-plane ones: unchanged by roll, scale and shift, foreshortened by a turn
    rolled = geometry.from_canonical(shape, geometry.Pose(geometry.rotation_from_angles(0, 0, -25), 80.0,
                                                          pose.translation))
    np.testing.assert_allclose(geometry.lip_open_ratio(rolled), geometry.lip_open_ratio(shape))
    np.testing.assert_allclose(geometry.eye_open_ratios(rolled), geometry.eye_open_ratios(shape))
    nodded = geometry.from_canonical(shape, geometry.Pose(geometry.rotation_from_angles(0, 30, 0), 80.0,
                                                          pose.translation))
    assert np.all(geometry.eye_open_ratios(nodded) < geometry.eye_open_ratios(shape))


def test_ratios_measure_what_they_name():
    pts = np.zeros((lm.NUM_LANDMARKS, 3))
    pts[33], pts[133], pts[159], pts[145] = (0, 0, 0), (40, 0, 0), (20, -6, 0), (20, 6, 0)
    pts[362], pts[263], pts[386], pts[374] = (60, 0, 0), (100, 0, 0), (80, -2, 0), (80, 2, 0)
    pts[61], pts[291], pts[13], pts[14] = (20, 60, 0), (80, 60, 0), (50, 58, 0), (50, 70, 0)
    np.testing.assert_allclose(geometry.eye_open_ratios(pts), (12 / 40, 4 / 40))
    assert geometry.lip_open_ratio(pts) == pytest.approx(12 / 60)
