"""Follow-Your-Emoji's landmark guider: a small per-frame conv net from landmark pictures to the denoiser's
first feature map (its output is added right after ``conv_in``).

Layout (parameter names are the release's ``lmk_guider.pth``): ``conv_in`` 3 → c0; for each step to the next
width a 3×3 conv at the same width and a stride-2 3×3 conv to the next (``blocks.0``, ``blocks.1``, …); SiLU
after every conv but the last; ``conv_out`` (zero-initialised in training) to the UNet's first width.
Released sizes: widths (16, 32, 96, 256), three stride-2 convs (÷8, the VAE's factor), 320 out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LandmarkGuider(nn.Module):
    def __init__(self, out_channels: int = 320, widths: tuple[int, ...] = (16, 32, 96, 256), in_channels: int = 3):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        for narrow, wide in zip(widths, widths[1:]):
            self.blocks.append(nn.Conv2d(narrow, narrow, 3, padding=1))
            self.blocks.append(nn.Conv2d(narrow, wide, 3, padding=1, stride=2))
        self.conv_out = nn.Conv2d(widths[-1], out_channels, 3, padding=1)

    @classmethod
    def sizes_from_state(cls, state: dict[str, torch.Tensor]) -> dict:
        """The constructor's sizes, read from a state dict's tensor shapes (the release ships no config)."""
        widths = [state["conv_in.weight"].shape[0]]
        widths += [state[f"blocks.{i}.weight"].shape[0] for i in range(1, 2 * 64, 2) if f"blocks.{i}.weight" in state]
        return dict(out_channels=state["conv_out.weight"].shape[0], widths=tuple(widths),
                    in_channels=state["conv_in.weight"].shape[1])

    def forward(self, conditioning: torch.Tensor) -> torch.Tensor:
        """(B, 3, F, H, W) landmark pictures in [0, 1] → (B, out, F, H/8, W/8), each frame on its own."""
        videos, channels, frames, height, width = conditioning.shape
        x = conditioning.permute(0, 2, 1, 3, 4).reshape(videos * frames, channels, height, width)
        x = F.silu(self.conv_in(x))
        for block in self.blocks:
            x = F.silu(block(x))
        x = self.conv_out(x)
        return x.view(videos, frames, *x.shape[1:]).permute(0, 2, 1, 3, 4)
