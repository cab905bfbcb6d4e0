"""Head pose, canonical (pose-normalised) face shapes and open ratios.

A face's 478 landmarks L (pixels; see ``landmarks``) are modelled as a similarity transform of a
shape X in the canonical frame: ``L = scale * X @ R.T + t``. The canonical face model (built by
``tools/build_face_model.py``) defines the zero pose: frontal, upright, unit outer eye-corner distance.
Rotation angles: ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` in degrees, axes x right, y down, z away from
the camera.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np

from enliven.face import landmarks as lm


@dataclass(frozen=True)
class FaceModel:
    canonical: np.ndarray  # (478, 3) frontal symmetric face, unit outer eye-corner distance
    triangles: np.ndarray  # (F, 3) face-mesh triangles, counter-clockwise in image space
    mirror: np.ndarray  # (478,) index of each point's left/right mirror partner


@functools.cache
def face_model() -> FaceModel:
    with resources.files("enliven.assets").joinpath("face_model.npz").open("rb") as fh:
        data = np.load(fh)
        return FaceModel(data["canonical"].astype(np.float64), data["triangles"], data["mirror"])


@dataclass(frozen=True)
class Pose:
    rotation: np.ndarray  # (3, 3)
    scale: float  # pixels per canonical unit
    translation: np.ndarray  # (3,) pixels

    def angles(self) -> tuple[float, float, float]:
        """(yaw, pitch, roll) in degrees."""
        return rotation_to_angles(self.rotation)


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = np.radians([yaw, pitch, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def rotation_to_angles(rot: np.ndarray) -> tuple[float, float, float]:
    yaw = np.arcsin(np.clip(-rot[2, 0], -1.0, 1.0))
    pitch = np.arctan2(rot[2, 1], rot[2, 2])
    roll = np.arctan2(rot[1, 0], rot[0, 0])
    return tuple(float(v) for v in np.degrees([yaw, pitch, roll]))


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Least-squares ``dst ≈ s * src @ R.T + t`` (Umeyama), R a proper rotation."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, 1.0, d])
    rot = u @ fix @ vt
    scale = float((sig * np.diag(fix)).sum() / (a**2).sum())
    return rot, scale, mu_d - scale * mu_s @ rot.T


def fit_pose(points: np.ndarray) -> Pose:
    """Pose of a face from its landmarks, fitted on the rigid points to the canonical model."""
    idx = list(lm.RIGID)
    rot, scale, t = fit_similarity(face_model().canonical[idx], np.asarray(points, np.float64)[idx])
    return Pose(rot, scale, t)


def to_canonical(points: np.ndarray, pose: Pose) -> np.ndarray:
    return (np.asarray(points, np.float64) - pose.translation) @ pose.rotation / pose.scale


def from_canonical(shape: np.ndarray, pose: Pose) -> np.ndarray:
    return pose.scale * np.asarray(shape, np.float64) @ pose.rotation.T + pose.translation


def signed_opening(points: np.ndarray, lids: tuple[int, int], corners: tuple[int, int]) -> np.ndarray:
    """How far the ``lids`` (upper, lower) are apart across the line through ``corners``, over the corners' distance.

    In the picture's plane (x, y), as LivePortrait measures its ratios on 2-D landmarks: MediaPipe's depth is an
    estimate (on a shut eye it keeps the lid points ~1.4 px apart in depth), and on a shut eye or mouth the two
    middle points also sit ~1 px apart along the lid line; only the gap across it says how open it is. Negative
    when the lower point is above the upper one. On canonical (frontal) shapes: the ratio seen from the front.
    """
    gap = points[..., lids[1], :2] - points[..., lids[0], :2]
    axis = points[..., corners[1], :2] - points[..., corners[0], :2]
    across = axis[..., 0] * gap[..., 1] - axis[..., 1] * gap[..., 0]
    return across / np.sum(axis * axis, axis=-1)


def eye_open_ratios(points: np.ndarray) -> np.ndarray:
    """(subject's right, subject's left) eyelid gap over eye width — the eyes on the image's left and right in a
    frontal photo; ~0.3 open, < 0.05 closed. Measured in the picture's plane, so a turned or tilted head
    foreshortens it (as LivePortrait's ratios are); in-plane rotation, scale and shift leave it unchanged."""
    right = np.abs(signed_opening(points, lm.RIGHT_EYE_LIDS, lm.RIGHT_EYE_CORNERS))
    left = np.abs(signed_opening(points, lm.LEFT_EYE_LIDS, lm.LEFT_EYE_CORNERS))
    return np.stack([right, left], axis=-1)


def lip_open_ratio(points: np.ndarray) -> np.ndarray:
    """Inner-lip gap over mouth width (outer corners); 0 closed, ~0.3 wide open. In the picture's plane, as the
    eyes'."""
    return np.abs(signed_opening(points, lm.INNER_LIP_MIDDLE, lm.MOUTH_CORNERS))


def similarity_2x3(source, target) -> np.ndarray:
    """The 2×3 similarity (rotation, uniform scale, translation) that best maps the points ``source`` (N, 2) onto
    ``target`` (N, 2) in the least-squares sense: Umeyama's closed form, reflections excluded (how face
    recognisers align their crop to a 5-point template)."""
    src, dst = np.asarray(source, np.float64), np.asarray(target, np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(covariance) < 0:
        sign[-1] = -1
    rotation = u @ np.diag(sign) @ vt
    variance = (src_c**2).sum() / len(src)
    if variance == 0:
        raise ValueError("the points to align coincide")
    scale = (singular * sign).sum() / variance
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix
