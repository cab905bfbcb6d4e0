"""AnimateDiff-style temporal modules, and inflating a diffusers 2-D UNet with them.

A video of F frames runs through the 2-D UNet as F pictures (every 2-D layer of the inflated UNets of
AnimateDiff, Follow-Your-Emoji and EMO works on each frame alone: per-frame convolutions and group norms).
What makes it a video model is a temporal module after each spatial transformer (or after each ResNet in
blocks without attention) at every resolution, and after the mid block's transformer: self-attention along
the frames at each pixel, with a sinusoidal position encoding of the frame index.

The modules keep the original AnimateDiff ("Vanilla" motion module) parameter names, so ``mm_sd_v15_v2.ckpt``
and the fine-tuned denoisers that contain it load without renaming:
``<block>.motion_modules.<j>.temporal_transformer.{norm, proj_in, transformer_blocks.<k>.{attention_blocks.<a>.{to_q,
to_k, to_v, to_out.0, pos_encoder.pe}, norms.<a>, ff.net.{0.proj, 2}, ff_norm}, proj_out}``.

They are inserted with forward hooks on the diffusers blocks' own sub-modules (no copy of diffusers' block
code): the hook runs the temporal module on the sub-module's output, regrouping the B·F pictures by video.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from enliven.engines.diffusion.attention import FrameContext

# AnimateDiff's temporal transformer normalises with 32 groups whatever the UNet's own setting
# (channel counts must be multiples of 32).
TEMPORAL_NORM_GROUPS = 32


class PositionalEncoding(nn.Module):
    """Sinusoidal encoding of the frame index, added to the tokens (the buffer ``pe`` is saved in checkpoints)."""

    def __init__(self, dim: int, max_frames: int):
        super().__init__()
        position = torch.arange(max_frames, dtype=torch.float32)[:, None]
        frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_frames, dim)
        pe[0, :, 0::2] = torch.sin(position * frequency)
        pe[0, :, 1::2] = torch.cos(position * frequency)
        self.register_buffer("pe", pe)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        frames = tokens.shape[1]
        if frames > self.pe.shape[1]:
            raise ValueError(f"{frames} frames in a window, but the temporal modules know {self.pe.shape[1]} positions")
        return tokens + self.pe[:, :frames].to(tokens.dtype)


def _attention_class():
    from diffusers.models.attention_processor import Attention

    class TemporalSelfAttention(Attention):
        """diffusers ``Attention`` over the frame axis, with the frame-position encoding added to its input."""

        def __init__(self, dim: int, heads: int, max_frames: int):
            super().__init__(query_dim=dim, heads=heads, dim_head=dim // heads, bias=False)
            self.pos_encoder = PositionalEncoding(dim, max_frames)

        def forward(self, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
            return super().forward(self.pos_encoder(hidden_states), None, attention_mask, **kwargs)

    return TemporalSelfAttention


class TemporalTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, attention_blocks: int, max_frames: int):
        from diffusers.models.attention import FeedForward

        super().__init__()
        attention = _attention_class()
        self.attention_blocks = nn.ModuleList(attention(dim, heads, max_frames) for _ in range(attention_blocks))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(attention_blocks))
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms):
            tokens = attention(norm(tokens)) + tokens
        return self.ff(self.ff_norm(tokens)) + tokens


class TemporalTransformer(nn.Module):
    def __init__(self, channels: int, heads: int, layers: int, attention_blocks: int, max_frames: int):
        super().__init__()
        self.norm = nn.GroupNorm(TEMPORAL_NORM_GROUPS, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList(
            TemporalTransformerBlock(channels, heads, attention_blocks, max_frames) for _ in range(layers)
        )
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, pictures: torch.Tensor, frames: int) -> torch.Tensor:
        """``pictures``: (B·F, C, h, w), video-major; attention runs along F at each pixel of each video."""
        count, channels, height, width = pictures.shape
        videos = count // frames
        tokens = self.norm(pictures).permute(0, 2, 3, 1).reshape(count, height * width, channels)
        tokens = self.proj_in(tokens)
        # (B·F, hw, C) → (B·hw, F, C): one sequence of frames per pixel
        tokens = tokens.view(videos, frames, height * width, channels).transpose(1, 2)
        tokens = tokens.reshape(videos * height * width, frames, channels)
        for block in self.transformer_blocks:
            tokens = block(tokens)
        tokens = tokens.view(videos, height * width, frames, channels).transpose(1, 2)
        tokens = self.proj_out(tokens.reshape(count, height * width, channels))
        return tokens.view(count, height, width, channels).permute(0, 3, 1, 2) + pictures


class TemporalModule(nn.Module):
    """AnimateDiff's "Vanilla" motion module (the parameter names are the checkpoints')."""

    def __init__(self, channels: int, heads: int = 8, layers: int = 1, attention_blocks: int = 2, max_frames: int = 32):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, heads, layers, attention_blocks, max_frames)

    def forward(self, pictures: torch.Tensor, frames: int) -> torch.Tensor:
        return self.temporal_transformer(pictures, frames)


def _blocks(unet: nn.Module):
    yield from unet.down_blocks
    yield unet.mid_block
    yield from unet.up_blocks


def inflate(unet: nn.Module, context: FrameContext, **module_options) -> None:
    """Add a ``motion_modules`` list to every down, mid and up block of a diffusers 2-D UNet and hook each one
    in after its spatial transformer (after its ResNet in blocks without attention), as AnimateDiff places
    them. ``context.frames`` tells the hooks how the batch groups into videos."""

    def hook(module: TemporalModule):
        def run(_sub, _inputs, output):
            if isinstance(output, torch.Tensor):
                return module(output, context.frames)
            first = output[0] if isinstance(output, tuple) else output.sample
            moved = module(first, context.frames)
            return (moved, *output[1:]) if isinstance(output, tuple) else type(output)(sample=moved)

        return run

    for block in _blocks(unet):
        attentions = getattr(block, "attentions", None)
        hosts = list(attentions) if attentions is not None and len(attentions) else list(block.resnets)
        if block is unet.mid_block:
            hosts = hosts[:1]  # the mid block: one temporal module, after its transformer
        channels = [_out_channels(host) for host in hosts]
        block.motion_modules = nn.ModuleList(TemporalModule(c, **module_options) for c in channels)
        for host, module in zip(hosts, block.motion_modules):
            host.register_forward_hook(hook(module))


def _out_channels(module: nn.Module) -> int:
    if hasattr(module, "out_channels") and module.out_channels is not None:
        return int(module.out_channels)
    return int(module.proj_out.out_features if isinstance(module.proj_out, nn.Linear) else module.proj_out.out_channels)
