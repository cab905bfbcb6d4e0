"""LivePortrait's motion math: head-pose bins, rotations, implicit keypoints, driving rules, stitching.

Shapes: keypoints (B, 21, 3) in the warping grid's units (x right, y down); angles in degrees (B,).
Keypoints are row vectors: ``x = scale · (x_c · R + exp) + t`` with ``R = (Rz(roll)·Ry(yaw)·Rx(pitch))ᵀ``
and only t's x and y applied.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

NUM_BINS = 66
BIN_DEGREES = 3.0
BIN_OFFSET = 97.5  # 66 bins of 3° centred on 0: ±97.5°

# Which keypoints carry what (LivePortrait's animation regions and absolute-driving subset).
LIP_KEYPOINTS = (6, 12, 14, 17, 19, 20)
EYE_KEYPOINTS = (11, 13, 15, 16, 18)
REGIONS = ("all", "exp", "pose", "lip", "eyes")


def bins_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """Expected angle under the softmax over 66 bins: Σ p_i·i·3 − 97.5."""
    idx = torch.arange(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    return (F.softmax(logits, dim=-1) * idx).sum(-1) * BIN_DEGREES - BIN_OFFSET


def rotation_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) = (Rz(roll) · Ry(yaw) · Rx(pitch))ᵀ, for right-multiplying row-vector keypoints."""
    p, y, r = (torch.deg2rad(a.reshape(-1)) for a in (pitch, yaw, roll))
    one, zero = torch.ones_like(p), torch.zeros_like(p)
    rx = torch.stack([one, zero, zero, zero, p.cos(), -p.sin(), zero, p.sin(), p.cos()], 1).view(-1, 3, 3)
    ry = torch.stack([y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], 1).view(-1, 3, 3)
    rz = torch.stack([r.cos(), -r.sin(), zero, r.sin(), r.cos(), zero, zero, zero, one], 1).view(-1, 3, 3)
    return (rz @ ry @ rx).transpose(1, 2)


@dataclass(frozen=True)
class KeypointMotion:
    """Decoded output of the motion extractor for a batch of faces."""

    kp: torch.Tensor  # (B, 21, 3) canonical keypoints x_c
    exp: torch.Tensor  # (B, 21, 3) expression deformation
    rotation: torch.Tensor  # (B, 3, 3), for row vectors
    scale: torch.Tensor  # (B, 1)
    t: torch.Tensor  # (B, 3)
    angles: torch.Tensor  # (B, 3) pitch, yaw, roll in degrees

    def keypoints(self) -> torch.Tensor:
        """Posed keypoints x = s·(x_c·R + exp) + t (t's z ignored)."""
        return transform_keypoints(self.kp, self.rotation, self.exp, self.scale, self.t)

    def to_numpy(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k).detach().cpu().numpy() for k in ("kp", "exp", "rotation", "scale", "t", "angles")}

    @classmethod
    def from_numpy(cls, arrays: dict[str, np.ndarray]) -> KeypointMotion:
        names = ("kp", "exp", "rotation", "scale", "t", "angles")
        return cls(**{k: torch.as_tensor(np.asarray(arrays[k])) for k in names})


def decode_motion(raw: dict[str, torch.Tensor]) -> KeypointMotion:
    b = raw["kp"].shape[0]
    pitch, yaw, roll = (bins_to_degrees(raw[k]) for k in ("pitch", "yaw", "roll"))
    return KeypointMotion(
        kp=raw["kp"].reshape(b, -1, 3),
        exp=raw["exp"].reshape(b, -1, 3),
        rotation=rotation_matrix(pitch, yaw, roll),
        scale=raw["scale"].reshape(b, 1),
        t=raw["t"].reshape(b, 3),
        angles=torch.stack([pitch, yaw, roll], 1),
    )


def transform_keypoints(
    kp: torch.Tensor, rotation: torch.Tensor, exp: torch.Tensor, scale: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    out = (kp @ rotation + exp) * scale[:, :, None]
    shift = torch.zeros_like(t)
    shift[:, :2] = t[:, :2]
    return out + shift[:, None, :]


def relative_motion(
    source: KeypointMotion, driving: KeypointMotion, reference: KeypointMotion, region: str = "all"
) -> KeypointMotion:
    """The source moved by the driver's change since ``reference`` (eq. 7), limited to ``region``."""
    if region not in REGIONS:
        raise ValueError(f"animation region must be one of {REGIONS}, got {region!r}")
    moved_exp = source.exp + (driving.exp - reference.exp)
    if region in ("all", "exp"):
        exp = moved_exp
    elif region in ("lip", "eyes"):
        idx = list(LIP_KEYPOINTS if region == "lip" else EYE_KEYPOINTS)
        exp = source.exp.clone()
        exp[:, idx] = moved_exp[:, idx]
    else:
        exp = source.exp
    posed = region in ("all", "pose")
    # R_new = R_d,i · R_d,0ᵀ · R_s, on the row-vector matrices exactly as LivePortrait composes them.
    rotation = driving.rotation @ reference.rotation.transpose(1, 2) @ source.rotation if posed else source.rotation
    scale = source.scale * driving.scale / reference.scale if region == "all" else source.scale
    t = source.t + (driving.t - reference.t) if posed else source.t
    t = t.clone()
    t[:, 2] = 0
    return replace(source, exp=exp, rotation=rotation, scale=scale, t=t)


def absolute_motion(source: KeypointMotion, driving: KeypointMotion) -> KeypointMotion:
    """Driver's rotation and shift with the source's scale; expression copied at the keypoints that carry it."""
    exp = source.exp.clone()
    idx = [1, 2, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    exp[:, idx] = driving.exp[:, idx]
    exp[:, 3:5, 1] = driving.exp[:, 3:5, 1]
    exp[:, 5, 2] = driving.exp[:, 5, 2]
    exp[:, 8, 2] = driving.exp[:, 8, 2]
    exp[:, 9, 1:] = driving.exp[:, 9, 1:]
    t = driving.t.clone()
    t[:, 2] = 0
    return replace(source, exp=exp, rotation=driving.rotation, t=t)


def stitch(stitching: torch.nn.Module, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
    """x_d plus the stitching MLP's correction: 63 per-keypoint offsets and one (tx, ty) for all."""
    b, k = x_s.shape[:2]
    delta = stitching(torch.cat([x_s.reshape(b, -1), x_d.reshape(b, -1)], dim=1))
    out = x_d + delta[:, : 3 * k].reshape(b, k, 3)
    out[..., :2] = out[..., :2] + delta[:, 3 * k : 3 * k + 2].reshape(b, 1, 2)
    return out


def retarget_eyes(module: torch.nn.Module, x_s: torch.Tensor, source_eyes: torch.Tensor,
                  target: torch.Tensor) -> torch.Tensor:
    """Keypoint offsets that bring the eyes to ``target`` open ratio; inputs [x_s, c_s,L, c_s,R, c_d]."""
    b = x_s.shape[0]
    feat = torch.cat([x_s.reshape(b, -1), source_eyes.reshape(b, 2), target.reshape(b, 1)], dim=1)
    return module(feat).reshape(b, -1, 3)


def retarget_lip(module: torch.nn.Module, x_s: torch.Tensor, source_lip: torch.Tensor,
                 target: torch.Tensor) -> torch.Tensor:
    """Keypoint offsets that bring the lips to ``target`` open ratio; inputs [x_s, c_s,lip, c_d,lip]."""
    b = x_s.shape[0]
    feat = torch.cat([x_s.reshape(b, -1), source_lip.reshape(b, 1), target.reshape(b, 1)], dim=1)
    return module(feat).reshape(b, -1, 3)
