"""LivePortrait's motion math against independent constructions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from enliven.engines.keypoint import kinematics as k
from enliven.engines.keypoint.networks import StitchingRetargetingNetwork
from enliven.face.geometry import rotation_from_angles


def test_bins_to_degrees_spans_plus_minus_97_5():
    logits = torch.full((3, 66), -1e4)
    logits[0, 0] = 0
    logits[1, 65] = 0
    logits[2] = 0  # uniform: the mean bin 32.5 → 0°
    np.testing.assert_allclose(k.bins_to_degrees(logits).numpy(), [-97.5, 97.5, 0.0], atol=1e-4)
    rand = k.bins_to_degrees(torch.randn(100, 66) * 5)
    assert rand.min() >= -97.5 and rand.max() <= 97.5


def test_rotation_matches_numpy_construction_and_is_orthonormal():
    rng = np.random.default_rng(0)
    angles = rng.uniform(-60, 60, (16, 3))  # pitch, yaw, roll
    rot = k.rotation_matrix(*(torch.tensor(angles[:, i]) for i in range(3))).numpy()
    for r, (pitch, yaw, roll) in zip(rot, angles):
        np.testing.assert_allclose(r, rotation_from_angles(yaw, pitch, roll).T, atol=1e-12)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)


def _motion(seed: int) -> k.KeypointMotion:
    g = torch.Generator().manual_seed(seed)
    raw = {
        "kp": torch.randn(1, 63, generator=g) * 0.3,
        "exp": torch.randn(1, 63, generator=g) * 0.02,
        "pitch": torch.randn(1, 66, generator=g),
        "yaw": torch.randn(1, 66, generator=g),
        "roll": torch.randn(1, 66, generator=g),
        "t": torch.randn(1, 3, generator=g) * 0.05,
        "scale": 1 + 0.1 * torch.rand(1, 1, generator=g),
    }
    return k.decode_motion(raw)


def test_transform_applies_scale_rotation_expression_and_xy_shift():
    m = _motion(0)
    x = m.keypoints()[0].numpy()
    r = m.rotation[0].numpy()
    expect = m.scale.item() * (m.kp[0].numpy() @ r + m.exp[0].numpy())
    expect[:, :2] += m.t[0, :2].numpy()
    np.testing.assert_allclose(x, expect, atol=1e-6)


@pytest.mark.parametrize("region", k.REGIONS)
def test_relative_motion_is_identity_when_driver_equals_its_first_frame(region):
    source, driver = _motion(1), _motion(2)
    moved = k.relative_motion(source, driver, driver, region)
    expected = source.t.clone()
    expected[:, 2] = 0
    torch.testing.assert_close(
        moved.keypoints(), k.transform_keypoints(source.kp, source.rotation, source.exp, source.scale, expected)
    )


def test_relative_motion_regions_touch_only_their_keypoints():
    source, ref, driver = _motion(1), _motion(2), _motion(3)
    lip = k.relative_motion(source, driver, ref, "lip")
    changed = (lip.exp - source.exp).abs().sum(-1)[0] > 0
    assert set(np.nonzero(changed.numpy())[0]) == set(k.LIP_KEYPOINTS)
    assert torch.equal(lip.rotation, source.rotation) and torch.equal(lip.scale, source.scale)
    pose = k.relative_motion(source, driver, ref, "pose")
    assert torch.equal(pose.exp, source.exp) and not torch.equal(pose.rotation, source.rotation)
    full = k.relative_motion(source, driver, ref, "all")
    torch.testing.assert_close(full.scale, source.scale * driver.scale / ref.scale)


def test_relative_rotation_composes_like_liveportrait():
    source, ref, driver = _motion(1), _motion(2), _motion(3)
    moved = k.relative_motion(source, driver, ref)

    def r(m):
        return m.rotation[0].numpy()

    np.testing.assert_allclose(moved.rotation[0].numpy(), r(driver) @ r(ref).T @ r(source), atol=1e-6)


def test_stitching_only_shifts_keypoints():
    net = StitchingRetargetingNetwork(126, [128, 128, 64], 65)
    x_s, x_d = _motion(5).keypoints(), _motion(6).keypoints()
    with torch.no_grad():
        last = net.mlp[-1]
        last.weight.zero_()
        last.bias.zero_()
        torch.testing.assert_close(k.stitch(net, x_s, x_d), x_d)
        last.bias[63:65] = torch.tensor([0.05, -0.02])
        shifted = k.stitch(net, x_s, x_d)
    diff = (shifted - x_d)[0]
    torch.testing.assert_close(diff, torch.tensor([0.05, -0.02, 0.0]).expand(21, 3))


def test_absolute_motion_copies_the_expression_subset():
    source, driver = _motion(7), _motion(8)
    moved = k.absolute_motion(source, driver)
    assert torch.equal(moved.rotation, driver.rotation) and torch.equal(moved.scale, source.scale)
    assert torch.equal(moved.exp[:, 0], source.exp[:, 0]) and torch.equal(moved.exp[:, 20], driver.exp[:, 20])
    assert moved.exp[0, 3, 1] == driver.exp[0, 3, 1] and moved.exp[0, 3, 0] == source.exp[0, 3, 0]
