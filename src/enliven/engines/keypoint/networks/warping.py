"""W: warping module — dense 3D motion from keypoints (hourglass + occlusion), applied to the feature volume."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from enliven.engines.keypoint.networks.blocks import Hourglass, SameBlock2d, coordinate_grid_3d, keypoint_gaussians

KP_VARIANCE = 0.01


class DenseMotionNetwork(nn.Module):
    def __init__(
        self,
        block_expansion: int = 32,
        num_blocks: int = 5,
        max_features: int = 1024,
        num_kp: int = 21,
        feature_channel: int = 32,
        reshape_depth: int = 16,
        compress: int = 4,
        estimate_occlusion_map: bool = True,
    ):
        super().__init__()
        self.num_kp = num_kp
        self.hourglass = Hourglass(block_expansion, (num_kp + 1) * (compress + 1), num_blocks, max_features)
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress, affine=True)
        self.occlusion = (
            nn.Conv2d(self.hourglass.out_filters * reshape_depth, 1, kernel_size=7, padding=3)
            if estimate_occlusion_map
            else None
        )

    def sparse_motions(self, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> torch.Tensor:
        """(B, K+1, D, H, W, 3): identity, then for each keypoint the shift taking it from driving to source."""
        b, _, d, h, w = feature.shape
        identity = coordinate_grid_3d(d, h, w, like=feature)[None, None]
        shifted = identity - kp_driving[:, :, None, None, None, :] + kp_source[:, :, None, None, None, :]
        return torch.cat([identity.expand(b, 1, d, h, w, 3), shifted], dim=1)

    def prepare_source(self, feature: torch.Tensor, kp_source: torch.Tensor) -> dict[str, torch.Tensor]:
        """The per-frame work that depends on the source only: its compressed feature and keypoint Gaussians."""
        compressed = F.relu(self.norm(self.compress(feature)))
        return {"compressed": compressed, "gaussians": keypoint_gaussians(kp_source, feature.shape[2:], KP_VARIANCE)}

    def forward(
        self,
        feature: torch.Tensor,
        kp_driving: torch.Tensor,
        kp_source: torch.Tensor,
        source: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """``source``: ``prepare_source(feature, kp_source)``, computed once and reused for every frame."""
        b, _, d, h, w = feature.shape
        k = self.num_kp + 1
        source = source or self.prepare_source(feature, kp_source)
        feature = source["compressed"]
        motions = self.sparse_motions(feature, kp_driving, kp_source)
        repeated = feature.unsqueeze(1).expand(b, k, *feature.shape[1:]).reshape(b * k, -1, d, h, w)
        deformed = F.grid_sample(repeated, motions.reshape(b * k, d, h, w, 3), align_corners=False)
        deformed = deformed.view(b, k, -1, d, h, w)
        heat = keypoint_gaussians(kp_driving, (d, h, w), KP_VARIANCE) - source["gaussians"]
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1).unsqueeze(2)
        prediction = self.hourglass(torch.cat([heat, deformed], dim=2).view(b, -1, d, h, w))
        mask = F.softmax(self.mask(prediction), dim=1).unsqueeze(2)  # (B, K+1, 1, D, H, W)
        deformation = (motions.permute(0, 1, 5, 2, 3, 4) * mask).sum(dim=1).permute(0, 2, 3, 4, 1)
        out = {"mask": mask, "deformation": deformation}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction.reshape(b, -1, h, w)))
        return out


class WarpingNetwork(nn.Module):
    def __init__(
        self,
        num_kp: int = 21,
        block_expansion: int = 64,
        max_features: int = 512,
        num_down_blocks: int = 2,
        reshape_channel: int = 32,
        estimate_occlusion_map: bool = True,
        dense_motion_params: dict | None = None,
    ):
        super().__init__()
        self.dense_motion_network = DenseMotionNetwork(
            num_kp=num_kp, feature_channel=reshape_channel, estimate_occlusion_map=estimate_occlusion_map,
            **(dense_motion_params or {}),
        )
        out = block_expansion * 2**num_down_blocks
        self.third = SameBlock2d(max_features, out, kernel_size=3, padding=1, lrelu=True)
        self.fourth = nn.Conv2d(out, out, kernel_size=1)
        self.estimate_occlusion_map = estimate_occlusion_map

    def prepare_source(self, feature_3d: torch.Tensor, kp_source: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.dense_motion_network.prepare_source(feature_3d, kp_source)

    def forward(
        self,
        feature_3d: torch.Tensor,
        kp_driving: torch.Tensor,
        kp_source: torch.Tensor,
        source: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """As LivePortrait's; ``source`` (``prepare_source``) skips the source-only work on every frame."""
        dense = self.dense_motion_network(feature_3d, kp_driving, kp_source, source)
        warped = F.grid_sample(feature_3d, dense["deformation"], align_corners=False)
        b, c, d, h, w = warped.shape
        out = self.fourth(self.third(warped.reshape(b, c * d, h, w)))
        occlusion = dense.get("occlusion_map")
        if occlusion is not None:
            out = out * occlusion
        return {"occlusion_map": occlusion, "deformation": dense["deformation"], "out": out}
