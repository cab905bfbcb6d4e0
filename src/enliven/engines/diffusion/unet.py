"""The two UNets of the ReferenceNet family (Animate Anyone, Follow-Your-Emoji, EMO), built on diffusers'
``UNet2DConditionModel`` with our additions attached through its extension points.

* **Reference net**: a 2-D UNet run once on the reference latent at t = 0; we keep each transformer block's
  ``norm1`` output (``attention.capture_reference_tokens``). The releases' reference nets stop there: they
  have no layers after the last block's ``norm1`` (no output norm and convolution, and the last transformer
  block of the last up block keeps only its ``norm1``; its transformer's ``proj_in`` and ``proj_out`` stay,
  ``proj_out`` unused), so we remove those layers and cut the forward short; the weights then load with no
  missing or unexpected keys.
* **Denoiser**: the same 2-D UNet inflated to video (``temporal.inflate``), with reference attention in every
  spatial self-attention and an optional residual added after ``conv_in``.

Both take the image encoder's hidden states through a trained linear map (``clip_fc``, e.g. CLIP's 1024 →
the UNet's 768) applied at the start of their forward, as Follow-Your-Emoji does; it is a sub-module of the
UNet so its parameters sit where the releases saved them.
"""

from __future__ import annotations

import torch
from torch import nn

from enliven.engines.diffusion.attention import (
    FrameContext,
    capture_reference_tokens,
    install_input_residual,
    install_reference_attention,
    transformer_blocks,
)
from enliven.engines.diffusion.temporal import inflate


def _unet_from_config(config: dict):
    from diffusers import UNet2DConditionModel

    fields = {k: v for k, v in config.items() if not k.startswith("_")}
    return UNet2DConditionModel.from_config(fields)


def build_reference_net(config: dict, encoder_dim: int) -> nn.Module:
    """A 2-D UNet from ``config`` (diffusers' UNet config.json), trimmed to what the reference pass reaches."""
    net = _unet_from_config(config)
    net.clip_fc = nn.Linear(encoder_dim, net.config.cross_attention_dim)
    net.conv_norm_out = None
    net.conv_out = None
    blocks = transformer_blocks(net)
    last = list(blocks)[-1]
    block = blocks[last]
    for unused in ("attn1", "norm2", "attn2", "norm3", "ff"):
        setattr(block, unused, None)
    net.reference_last_block = last
    return net


@torch.no_grad()
def reference_tokens(net: nn.Module, latents: torch.Tensor, encoder_states: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each transformer block's self-attention input for ``latents`` (B, C, h, w) at timestep 0."""
    context = net.clip_fc(encoder_states.to(net.clip_fc.weight.dtype))
    timestep = torch.zeros((), dtype=torch.long, device=latents.device)
    return capture_reference_tokens(
        net, lambda: net(latents, timestep, encoder_hidden_states=context), stop_after=net.reference_last_block
    )


def build_denoiser(config: dict, encoder_dim: int, **temporal_options) -> nn.Module:
    """A 2-D UNet from ``config`` inflated to video, with reference attention and a ``conv_in`` residual.

    ``temporal_options``: the temporal modules' ``heads``, ``layers``, ``attention_blocks``, ``max_frames``.
    The returned module carries its ``frame_context`` (what ``denoise`` fills in for each call).
    """
    net = _unet_from_config(config)
    net.clip_fc = nn.Linear(encoder_dim, net.config.cross_attention_dim)
    context = FrameContext()
    inflate(net, context, **temporal_options)
    install_reference_attention(net, context)
    install_input_residual(net, context)
    net.frame_context = context
    return net


@torch.no_grad()
def denoise(
    net: nn.Module,
    latents: torch.Tensor,
    timestep: torch.Tensor,
    encoder_states: torch.Tensor,
    *,
    input_residual: torch.Tensor | None = None,
    reference: dict[str, torch.Tensor] | None = None,
    use_reference: torch.Tensor | None = None,
) -> torch.Tensor:
    """The denoiser's prediction for ``latents`` (B, C, F, h, w) at ``timestep``.

    ``encoder_states``: (B, tokens, D) before ``clip_fc``; ``input_residual``: (B, C0, F, h, w) added after
    ``conv_in``; ``reference``: tokens per transformer block (one row per video) and ``use_reference`` (B,) which
    videos attend to them.
    """
    videos, channels, frames, height, width = latents.shape
    dtype = net.conv_in.weight.dtype
    pictures = latents.to(dtype).permute(0, 2, 1, 3, 4).reshape(videos * frames, channels, height, width)
    context_states = net.clip_fc(encoder_states.to(dtype)).repeat_interleave(frames, dim=0)
    ctx = net.frame_context
    ctx.frames = frames
    ctx.reference = reference or {}
    ctx.use_reference = use_reference
    if input_residual is not None:
        r = input_residual
        ctx.input_residual = r.permute(0, 2, 1, 3, 4).reshape(videos * frames, *r.shape[1:2], *r.shape[3:])
    try:
        out = net(pictures, timestep, encoder_hidden_states=context_states).sample
    finally:
        ctx.reference, ctx.use_reference, ctx.input_residual = {}, None, None
    return out.view(videos, frames, *out.shape[1:]).permute(0, 2, 1, 3, 4)


def sd_unet_config(cross_attention_dim: int = 32, widths: tuple[int, ...] = (32, 64, 128, 128)) -> dict:
    """A diffusers UNet config shaped like SD-1.5's (and sd-image-variations', the same shape) at any widths, for
    tiny test models of the engines built on it (widths multiples of 32: the temporal modules normalise in 32
    groups; doubling, doubling, equal, as in SD, so the same ResNets get shortcut convolutions and the key counts
    are the releases')."""
    return dict(
        _class_name="UNet2DConditionModel", sample_size=8, in_channels=4, out_channels=4,
        center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
        down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
        up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
        block_out_channels=list(widths), layers_per_block=2, downsample_padding=1, mid_block_scale_factor=1,
        act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=cross_attention_dim,
        attention_head_dim=8, use_linear_projection=False,
    )
