"""G: SPADE decoder — the warped 256×64×64 feature to a 3×512×512 image (PixelShuffle ×2 at the end)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from enliven.engines.keypoint.networks.blocks import SPADEResnetBlock


class SPADEDecoder(nn.Module):
    def __init__(
        self, upscale: int = 2, max_features: int = 512, block_expansion: int = 64, out_channels: int = 64,
        num_down_blocks: int = 2,
    ):
        super().__init__()
        label_nc = min(max_features, block_expansion * 2**num_down_blocks)
        self.fc = nn.Conv2d(label_nc, 2 * label_nc, kernel_size=3, padding=1)
        for i in range(6):
            setattr(self, f"G_middle_{i}", SPADEResnetBlock(2 * label_nc, 2 * label_nc, label_nc))
        self.up_0 = SPADEResnetBlock(2 * label_nc, label_nc, label_nc)
        self.up_1 = SPADEResnetBlock(label_nc, out_channels, label_nc)
        self.up = nn.Upsample(scale_factor=2)
        if upscale and upscale > 1:
            self.conv_img = nn.Sequential(
                nn.Conv2d(out_channels, 3 * upscale**2, kernel_size=3, padding=1), nn.PixelShuffle(upscale)
            )
        else:
            self.conv_img = nn.Conv2d(out_channels, 3, kernel_size=3, padding=1)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        seg = feature
        x = self.fc(feature)
        for i in range(6):
            x = getattr(self, f"G_middle_{i}")(x, seg)
        x = self.up_0(self.up(x), seg)
        x = self.up_1(self.up(x), seg)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 2e-1)))
