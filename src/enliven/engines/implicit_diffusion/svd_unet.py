"""HunyuanPortrait's denoiser: the SVD spatio-temporal UNet plus decoupled (IP-Adapter-style) motion attention.

Built on diffusers' ``UNetSpatioTemporalConditionModel`` (no copy of its code); what the release changes is added
through diffusers' extension points:

* every cross-attention (``attn2``) of the spatial *and* the temporal transformer blocks gets a
  ``MotionCrossAttnProcessor``: ``attention(q, image tokens) + scale · attention(q, motion tokens)``, the second
  with its own key/value projections ``to_k_ip.0`` / ``to_v_ip.0``. The processor is a module, so its weights sit
  at ``<block>.attn2.processor.to_k_ip.0.weight``, exactly the release's ``unet.pth`` keys; they start as copies
  of the block's ``to_k`` / ``to_v`` as the release initialises them (the checkpoint then overwrites them).
* the temporal blocks attend to the tokens *averaged over the window's frames* (stock SVD takes the first frame's
  CLIP token); the spatial blocks attend to each frame's own tokens.
* ``pose_cond_fea`` (the pose guider's features, one map per frame) is added to ``conv_in``'s output by a hook.

The tokens do not travel through diffusers' forward (it repeats a ``[B, 1, D]`` CLIP embedding per frame and
copies it to every pixel of the temporal blocks): ``forward`` puts them in a ``TokenContext`` that the processors
read, and hands diffusers a 1-wide placeholder. So the temporal blocks' keys are computed once per video, not
once per pixel, and no ``B·h·w × 64 × D`` copy is made.

Call it as the release calls its ``UNet3DConditionSVDModel``::

    unet(sample [B, F, 8, h, w], timestep, encoder_hidden_states=(image_tokens [B·F, n, D], [motion_tokens
         [B·F, m, D]]), pose_cond_fea=[B, F, C0, h, w], added_time_ids=[B, 3], return_dict=False)[0]  # [B, F, 4, h, w]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

# The release's ``ip_motion_scale``: how strongly the motion tokens' attention is added.
MOTION_SCALE = 1.0


@dataclass
class TokenContext:
    """What one forward of the UNet hands its processors and hooks (set by ``forward``, cleared after)."""

    frames: int = 1
    image_tokens: torch.Tensor | None = None  # (B·F, n, D)
    motion_tokens: list[torch.Tensor] = field(default_factory=list)  # each (B·F, m, D)
    pose: torch.Tensor | None = None  # (B·F, C0, h, w), added to conv_in's output
    _means: dict[int, torch.Tensor] = field(default_factory=dict)

    def frame_mean(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens`` (B·F, n, D) averaged over each video's frames: (B, n, D), computed once per forward."""
        key = id(tokens)
        if key not in self._means:
            self._means[key] = tokens.reshape(-1, self.frames, *tokens.shape[1:]).mean(dim=1)
        return self._means[key]

    def clear(self) -> None:
        self.image_tokens, self.motion_tokens, self.pose = None, [], None
        self._means = {}


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(N, L, heads·d) → (N, heads, L, d)."""
    return x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """(N, heads, L, d) → (N, L, heads·d)."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)


class MotionCrossAttnProcessor(nn.Module):
    """Cross-attention to the image tokens plus a decoupled attention to the motion tokens (IP-Adapter style).

    ``temporal``: the processor of a temporal block, whose queries are (B·h·w, F, C) — one short sequence per
    pixel — and whose context is the same for every pixel of a video (tokens averaged over frames). Its
    attention runs as one sequence of h·w·F queries per video against that video's keys: the same numbers as
    attending pixel by pixel, without copying the keys to every pixel.
    """

    def __init__(self, attn, context: TokenContext, temporal: bool, adapters: int = 1, scale: float = MOTION_SCALE):
        super().__init__()
        hidden, cross = attn.to_k.out_features, attn.to_k.in_features
        self.to_k_ip = nn.ModuleList(nn.Linear(cross, hidden, bias=False) for _ in range(adapters))
        self.to_v_ip = nn.ModuleList(nn.Linear(cross, hidden, bias=False) for _ in range(adapters))
        with torch.no_grad():  # the release's initialisation, before the checkpoint overwrites them
            for k, v in zip(self.to_k_ip, self.to_v_ip):
                k.weight.copy_(attn.to_k.weight)
                v.weight.copy_(attn.to_v.weight)
        self.temporal = temporal
        self.scale = scale
        object.__setattr__(self, "context", context)  # shared, not a sub-module: kept out of state_dict

    def _attend(self, heads: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """query (N, L, C) against key/value (V, n, C), V = N (spatial) or the number of videos (temporal)."""
        if not self.temporal:
            return _merge(
                F.scaled_dot_product_attention(_heads(query, heads), _heads(key, heads), _heads(value, heads))
            )
        videos = key.shape[0]
        positions, frames, channels = query.shape[0] // videos, query.shape[1], query.shape[2]
        q = query.reshape(videos, positions * frames, channels)
        out = _merge(F.scaled_dot_product_attention(_heads(q, heads), _heads(key, heads), _heads(value, heads)))
        return out.reshape(videos * positions, frames, channels)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **_):
        ctx = self.context
        if ctx.image_tokens is None:
            raise RuntimeError("the motion attention runs only inside ImplicitUNet.forward (tokens not set)")
        if hidden_states.ndim != 3 or attention_mask is not None:
            raise ValueError("motion cross-attention expects (batch, tokens, channels) and no mask")
        tokens = ctx.frame_mean if self.temporal else (lambda t: t)
        image = tokens(ctx.image_tokens).to(hidden_states.dtype)
        query = attn.to_q(hidden_states)
        out = self._attend(attn.heads, query, attn.to_k(image), attn.to_v(image))
        for motion, to_k, to_v in zip(ctx.motion_tokens, self.to_k_ip, self.to_v_ip):
            if self.scale != 0:
                motion = tokens(motion).to(hidden_states.dtype)
                out = out + self.scale * self._attend(attn.heads, query, to_k(motion), to_v(motion))
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def _unet_class():
    from diffusers import UNetSpatioTemporalConditionModel

    class ImplicitUNet(UNetSpatioTemporalConditionModel):
        """SVD's UNet with the release's motion attention and pose features (see the module docstring)."""

        def forward(
            self,
            sample,
            timestep,
            encoder_hidden_states,
            added_time_ids=None,
            pose_cond_fea=None,
            return_dict: bool = True,
            **_unused,
        ):
            image_tokens, motion_tokens = encoder_hidden_states
            videos, frames = sample.shape[:2]
            if image_tokens.shape[0] != videos * frames:
                raise ValueError(f"image tokens for {image_tokens.shape[0]} frames, the sample has {videos}×{frames}")
            for motion in motion_tokens:
                if motion.shape[0] != videos * frames:
                    raise ValueError(f"motion tokens for {motion.shape[0]} frames, the sample has {videos}×{frames}")
            if len(motion_tokens) != len(self._motion_processors[0].to_k_ip):
                raise ValueError(
                    f"{len(motion_tokens)} motion token sets for {len(self._motion_processors[0].to_k_ip)} adapters"
                )
            ctx = self.token_context
            ctx.frames, ctx.image_tokens, ctx.motion_tokens = frames, image_tokens, list(motion_tokens)
            ctx.pose = None if pose_cond_fea is None else pose_cond_fea.flatten(0, 1)
            # diffusers' forward repeats this per frame and per pixel; the processors never read it
            placeholder = sample.new_zeros(videos, 1, 1)
            try:
                return super().forward(sample, timestep, placeholder, added_time_ids, return_dict=return_dict)
            finally:
                ctx.clear()

    return ImplicitUNet


def _add_pose(context: TokenContext):
    def hook(_module, _inputs, output):
        return output if context.pose is None else output + context.pose.to(output.dtype)

    return hook


def set_motion_scale(unet: nn.Module, scale: float) -> None:
    """The release's ``ip_motion_scale`` (what ``init_ip_adapters`` takes): the weight of the motion tokens'
    attention in every cross-attention of a UNet ``build_unet`` made."""
    for processor in unet._motion_processors:
        processor.scale = float(scale)


def motion_scale_of(unet: nn.Module) -> float:
    scales = {processor.scale for processor in unet._motion_processors}
    if len(scales) != 1:
        raise ValueError(f"the UNet's cross-attentions have different motion scales: {sorted(scales)}")
    return scales.pop()


def build_unet(config: dict, adapters: int = 1, motion_scale: float = MOTION_SCALE) -> nn.Module:
    """HunyuanPortrait's UNet from a diffusers UNet config (the release reads SVD-xt's ``unet/config.json``),
    random weights; its ``state_dict`` has the keys of the release's ``unet.pth``."""
    cls = _unet_class()
    unet = cls.from_config({k: v for k, v in config.items() if not k.startswith("_")})
    context = TokenContext()
    object.__setattr__(unet, "token_context", context)
    processors = []
    for name, module in unet.named_modules():
        if name.endswith(".attn2") and hasattr(module, "set_processor"):
            temporal = ".temporal_transformer_blocks." in name
            processor = MotionCrossAttnProcessor(module, context, temporal, adapters, motion_scale)
            module.set_processor(processor)
            processors.append(processor)
    object.__setattr__(unet, "_motion_processors", processors)
    unet.conv_in.register_forward_hook(_add_pose(context))
    return unet
