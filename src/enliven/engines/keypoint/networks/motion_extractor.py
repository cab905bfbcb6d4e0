"""M: motion extractor — ConvNeXt-V2-tiny backbone with heads for keypoints, pose, expression, scale, shift."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from enliven.engines.keypoint.networks.blocks import GRN, ChannelsFirstLayerNorm


class ConvNeXtV2Block(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.grn = GRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dwconv(x).permute(0, 2, 3, 1)  # channels last for the norm and the linears
        out = self.pwconv2(self.grn(F.gelu(self.pwconv1(self.norm(out)))))
        return x + out.permute(0, 3, 1, 2)


HEADS = {"kp": None, "scale": 1, "pitch": "bins", "yaw": "bins", "roll": "bins", "t": 3, "exp": None}


class ConvNeXtV2(nn.Module):
    def __init__(
        self,
        in_chans: int = 3,
        depths: tuple[int, ...] = (3, 3, 9, 3),
        dims: tuple[int, ...] = (96, 192, 384, 768),
        num_kp: int = 21,
        num_bins: int = 66,
    ):
        super().__init__()
        stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], kernel_size=4, stride=4), ChannelsFirstLayerNorm(dims[0]))
        downs = [stem] + [
            nn.Sequential(ChannelsFirstLayerNorm(dims[i - 1]), nn.Conv2d(dims[i - 1], dims[i], kernel_size=2, stride=2))
            for i in range(1, len(dims))
        ]
        self.downsample_layers = nn.ModuleList(downs)
        self.stages = nn.ModuleList(
            nn.Sequential(*(ConvNeXtV2Block(d) for _ in range(n))) for d, n in zip(dims, depths)
        )
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        width = dims[-1]
        self.fc_kp = nn.Linear(width, 3 * num_kp)
        self.fc_scale = nn.Linear(width, 1)
        self.fc_pitch = nn.Linear(width, num_bins)
        self.fc_yaw = nn.Linear(width, num_bins)
        self.fc_roll = nn.Linear(width, num_bins)
        self.fc_t = nn.Linear(width, 3)
        self.fc_exp = nn.Linear(width, 3 * num_kp)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        x = self.norm(x.mean([-2, -1]))
        return {name: getattr(self, f"fc_{name}")(x) for name in HEADS}


class MotionExtractor(nn.Module):
    """Returns raw head outputs: ``kp`` and ``exp`` (B, 63), ``pitch``/``yaw``/``roll`` bin logits (B, 66),
    ``t`` (B, 3), ``scale`` (B, 1). ``kinematics.decode_motion`` turns them into degrees and (B, 21, 3)."""

    def __init__(self, num_kp: int = 21, backbone: str = "convnextv2_tiny", num_bins: int = 66, **backbone_options):
        super().__init__()
        if backbone != "convnextv2_tiny":
            raise ValueError(f"unsupported motion extractor backbone {backbone!r}")
        self.detector = ConvNeXtV2(num_kp=num_kp, num_bins=num_bins, **backbone_options)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.detector(x)
