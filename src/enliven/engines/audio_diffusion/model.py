"""EMO's architecture with Hallo's parameter names: the networks of the ``audio-diffusion`` engine.

Built on diffusers' ``UNet2DConditionModel`` and the shared diffusion core (``engines.diffusion``): no UNet is
written out here. What this module adds, as plain ``nn.Module``s that train like any other:

* **Reference net** (``build_reference_net``): a 2-D UNet run at timestep 0 on the reference latent and on the
  motion frames' latents; each spatial transformer block's ``norm1`` output is kept
  (``attention.capture_reference_tokens``). Hallo's ``net.pth`` has no ``conv_norm_out`` nor ``conv_out`` for
  it; nothing after the last block's ``norm1`` changes the tokens, so the pass is cut short there (the last
  block's other layers stay: they are in the file).
* **Denoiser** (``build_denoiser``): the same UNet inflated to video. In every block with attention, after each
  spatial transformer comes an **audio module** (``audio_modules.<j>``: a transformer whose cross-attention
  reads the projected wav2vec2 tokens of each frame; Hallo's variant splits it in three, for the full
  picture, the face and the lips, each weighted by a blurred region mask and a zero-initialised 1×1
  convolution), then an AnimateDiff **motion module** (``motion_modules.<j>``, ``diffusion.temporal``) whose
  sequence starts with the motion frames' reference tokens of that block: the frames of the previous clip
  that chain clips to any length. Every spatial self-attention also sees the reference picture's tokens
  (``TiledReferenceProcessor``, paired with the frames as the release pairs them); the face locator's features
  are added after ``conv_in``.
* **Face locator** (``FaceLocator``): the face-region mask (a picture) through light convolutions to the
  UNet's first width, added to the noisy latent's first features.
* **Projections**: ``ImageProjection`` (a face-recognition embedding → 4 cross-attention tokens) and
  ``AudioProjection`` (a ±2-frame window of every wav2vec2 layer → 32 tokens per frame).
* **Speed layers** (``SpeedLayers``, EMO's head-speed buckets; off for Hallo's weights, which have none): a
  learned embedding per speed bucket, projected by a zero-initialised linear map per motion module and added to
  that module's input, so a new model starts as the model without them.

What Hallo's inference actually runs, and this module reproduces (its denoiser is never put in eval mode and has
gradient checkpointing on, which selects a different branch of its blocks' code):

* the motion frames' tokens are prepended before every motion module of the attention blocks (and the mid
  block), and cut off after;
* the motion modules of the two blocks without attention (the lowest resolution's down and up blocks) are
  skipped (``resnet_motion=False``); their weights are in the file and loaded, unused;
* the audio modules get the pose/face/lip weights (``motion_scale``; the release's plain branch would drop them
  in the down and up blocks);
* masks are applied at the level of the block's depth (0 at the latent's size, halving per level).

Sizes follow the release's construction, including one of its quirks: an audio module's width is its block's
*input* width (the first layer of a down block, every layer of an up block), with ``proj_in``/``proj_out``
converting to and from the block's width (``audio_widths``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from enliven.engines.diffusion.attention import (
    FrameContext,
    ReferenceAttnProcessor,
    capture_reference_tokens,
    install_input_residual,
    transformer_blocks,
)
from enliven.engines.diffusion.temporal import TemporalModule

# Hallo's configs/inference/default.yaml (motion_module_kwargs, audio and projection sizes): the release writes
# them nowhere in its weights folder.
TEMPORAL_HEADS, TEMPORAL_LAYERS, TEMPORAL_ATTENTION_BLOCKS, TEMPORAL_MAX_FRAMES = 8, 1, 2, 32
AUDIO_WINDOW = 5  # frames of wav2vec2 features per video frame: ±2
AUDIO_TOKENS = 32
AUDIO_INTERMEDIATE = 512
FACE_TOKENS = 4
FACE_EMBEDDING = 512  # InsightFace's recognition embedding (glintr100)
LOCATOR_WIDTHS = (16, 32, 64, 128)
MASK_LEVELS = 4


@dataclass
class AudioFrameContext(FrameContext):
    """What one denoiser call needs beyond the latents, read by the hooks and processors.

    ``audio``: (B·F, tokens, D) projected audio; ``masks``: per level, (full, face, lip) each (1 or B·F, h·w);
    ``motion_scale``: the pose, face and lip weights; ``motion_features``: block path → (B, M, h·w, C), the motion
    frames' reference tokens; ``speed``: (B, D) speed-bucket embeddings or None."""

    audio: torch.Tensor | None = None
    masks: list | None = None
    motion_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    motion_features: dict[str, torch.Tensor] = field(default_factory=dict)
    speed: torch.Tensor | None = None
    checkpointing: bool = False


def _attention(dim: int, heads: int, head_dim: int, cross_dim: int | None = None):
    from diffusers.models.attention_processor import Attention

    return Attention(query_dim=dim, cross_attention_dim=cross_dim, heads=heads, dim_head=head_dim, bias=False)


class AudioBlock(nn.Module):
    """Self-attention, audio cross-attention (one, or three masked ones with ``regions``), feed-forward.

    Parameter names are Hallo's ``AudioTemporalBasicTransformerBlock``'s (its three zero convolutions exist in
    both variants, as in the release)."""

    def __init__(self, dim: int, heads: int, head_dim: int, audio_dim: int, regions: bool = True):
        from diffusers.models.attention import FeedForward

        super().__init__()
        self.regions = regions
        self.zero_conv_full = nn.Conv2d(dim, dim, 1)
        self.zero_conv_face = nn.Conv2d(dim, dim, 1)
        self.zero_conv_lip = nn.Conv2d(dim, dim, 1)
        for conv in (self.zero_conv_full, self.zero_conv_face, self.zero_conv_lip):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.attn1 = _attention(dim, heads, head_dim)
        self.norm1 = nn.LayerNorm(dim)
        if regions:
            self.attn2_0 = _attention(dim, heads, head_dim, audio_dim)
            self.attn2_1 = _attention(dim, heads, head_dim, audio_dim)
            self.attn2_2 = _attention(dim, heads, head_dim, audio_dim)
        else:
            self.attn2 = _attention(dim, heads, head_dim, audio_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, tokens, audio, masks, motion_scale, height: int, width: int):
        normed = self.norm1(tokens)
        tokens = self.attn1(normed) + tokens
        normed = self.norm2(tokens)
        if not self.regions:
            tokens = self.attn2(normed, encoder_hidden_states=audio) + tokens
        else:
            total = tokens
            for attn, conv, mask, scale in zip((self.attn2_0, self.attn2_1, self.attn2_2),
                                               (self.zero_conv_full, self.zero_conv_face, self.zero_conv_lip),
                                               masks, motion_scale):
                out = attn(normed, encoder_hidden_states=audio) * mask.to(tokens.dtype)[:, :, None]
                rows, _, channels = out.shape
                out = conv(out.transpose(1, 2).reshape(rows, channels, height, width))
                total = total + scale * out.reshape(rows, channels, height * width).transpose(1, 2)
            tokens = total
        return self.ff(self.norm3(tokens)) + tokens


class AudioModule(nn.Module):
    """Hallo's audio ``Transformer3DModel``: group norm, 1×1 in, one ``AudioBlock``, 1×1 out, residual."""

    def __init__(self, channels: int, width: int, heads: int, audio_dim: int, groups: int, regions: bool = True):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Conv2d(channels, width, 1)
        self.transformer_blocks = nn.ModuleList([AudioBlock(width, heads, width // heads, audio_dim, regions)])
        self.proj_out = nn.Conv2d(width, channels, 1)

    def forward(self, pictures, audio, masks, motion_scale):
        rows, _, height, width = pictures.shape
        tokens = self.proj_in(self.norm(pictures))
        inner = tokens.shape[1]
        tokens = tokens.permute(0, 2, 3, 1).reshape(rows, height * width, inner)
        for block in self.transformer_blocks:
            tokens = block(tokens, audio, masks, motion_scale, height, width)
        tokens = tokens.reshape(rows, height, width, inner).permute(0, 3, 1, 2)
        return self.proj_out(tokens) + pictures


class FaceLocator(nn.Module):
    """Face-region picture (3 channels in [0, 1]) → features at the latent's size, added after ``conv_in``.

    Hallo's ``FaceLocator``: a convolution, then per width a convolution and a stride-2 convolution, SiLU after
    each, and a zero-initialised output convolution (so a new locator starts by adding nothing)."""

    def __init__(self, out_channels: int = 320, in_channels: int = 3, widths: tuple[int, ...] = LOCATOR_WIDTHS):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        for a, b in zip(widths, widths[1:]):
            self.blocks.append(nn.Conv2d(a, a, 3, padding=1))
            self.blocks.append(nn.Conv2d(a, b, 3, padding=1, stride=2))
        self.conv_out = nn.Conv2d(widths[-1], out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.conv_in(mask))
        for conv in self.blocks:
            x = F.silu(conv(x))
        return self.conv_out(x)


class ImageProjection(nn.Module):
    """A face embedding (B, E) → (B, tokens, D) cross-attention tokens (Hallo's ``ImageProjModel``)."""

    def __init__(self, dim: int = 768, embedding: int = FACE_EMBEDDING, tokens: int = FACE_TOKENS):
        super().__init__()
        self.tokens, self.dim = tokens, dim
        self.proj = nn.Linear(embedding, tokens * dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(embedding).reshape(-1, self.tokens, self.dim))


class AudioProjection(nn.Module):
    """Windows of wav2vec2 features (B, F, window, layers, C) → (B, F, tokens, D) (Hallo's ``AudioProjModel``)."""

    def __init__(self, window: int = AUDIO_WINDOW, layers: int = 12, channels: int = 768,
                 intermediate: int = AUDIO_INTERMEDIATE, dim: int = 768, tokens: int = AUDIO_TOKENS):
        super().__init__()
        self.tokens, self.dim = tokens, dim
        self.proj1 = nn.Linear(window * layers * channels, intermediate)
        self.proj2 = nn.Linear(intermediate, intermediate)
        self.proj3 = nn.Linear(intermediate, tokens * dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        videos, frames = windows.shape[:2]
        x = windows.reshape(videos * frames, -1)
        x = torch.relu(self.proj2(torch.relu(self.proj1(x))))
        tokens = self.norm(self.proj3(x).reshape(videos * frames, self.tokens, self.dim))
        return tokens.reshape(videos, frames, self.tokens, self.dim)


class SpeedLayers(nn.Module):
    """EMO's speed buckets: bucket index → embedding → a per-channel bias for each motion module (zero at start)."""

    def __init__(self, buckets: int, dim: int, widths: dict[str, int]):
        super().__init__()
        self.embedding = nn.Embedding(buckets, dim)
        self.keys = sorted(widths)
        self.proj = nn.ModuleDict({k.replace(".", "_"): nn.Linear(dim, widths[k]) for k in self.keys})
        for layer in self.proj.values():
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def bias(self, key: str, speed: torch.Tensor) -> torch.Tensor:
        return self.proj[key.replace(".", "_")](speed)


def _unet_from_config(config: dict):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_config({k: v for k, v in config.items() if not k.startswith("_")})


def build_reference_net(config: dict) -> nn.Module:
    """Hallo's reference UNet: diffusers' 2-D UNet from ``config`` without ``conv_norm_out``."""
    net = _unet_from_config(config)
    net.conv_norm_out = None
    net.conv_out = None
    net.reference_last_block = list(transformer_blocks(net))[-1]
    return net


def reference_features(net: nn.Module, latents: torch.Tensor, context: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each transformer block's ``norm1`` output (R, tokens, C) for ``latents`` (R, 4, h, w) at timestep 0, with
    ``context`` (R, n, D) as each row's cross-attention context. Differentiable (the image stage trains the
    reference net through these tokens); sampling calls it under ``torch.no_grad``."""
    dtype = net.conv_in.weight.dtype
    timestep = torch.zeros((), dtype=torch.long, device=latents.device)
    return capture_reference_tokens(
        net, lambda: net(latents.to(dtype), timestep, encoder_hidden_states=context.to(dtype)),
        stop_after=net.reference_last_block,
    )


def set_gradient_checkpointing(net: nn.Module, enabled: bool = True) -> None:
    """Recompute activations in the backward pass: diffusers' own checkpointing of the UNet's ResNets and
    transformers, and ours of the audio and motion modules (``build_denoiser``'s nets) run by the hooks."""
    if enabled:
        net.enable_gradient_checkpointing()
    else:
        net.disable_gradient_checkpointing()
    context = getattr(net, "frame_context", None)
    if isinstance(context, AudioFrameContext):
        context.checkpointing = enabled


def _heads(config: dict) -> list[int]:
    heads = config.get("attention_head_dim", 8)
    count = len(config["block_out_channels"])
    return list(heads) if isinstance(heads, (list, tuple)) else [heads] * count


def audio_widths(config: dict) -> dict[str, int]:
    """Width of each audio module, by path, as the release builds them (see the module's text)."""
    widths = list(config["block_out_channels"])
    heads = _heads(config)
    layers = config.get("layers_per_block", 2)
    found: dict[str, int] = {}
    out = widths[0]
    for i, kind in enumerate(config["down_block_types"]):
        block_in, out = out, widths[i]
        if "CrossAttn" in kind:
            for j in range(layers):
                source = block_in if j == 0 else out
                found[f"down_blocks.{i}.audio_modules.{j}"] = heads[i] * (source // heads[i])
    found["mid_block.audio_modules.0"] = heads[-1] * (widths[-1] // heads[-1])
    reversed_widths, reversed_heads = widths[::-1], heads[::-1]
    for i, kind in enumerate(config["up_block_types"]):
        block_in = reversed_widths[min(i + 1, len(widths) - 1)]
        if "CrossAttn" in kind:
            for j in range(layers + 1):
                found[f"up_blocks.{i}.audio_modules.{j}"] = reversed_heads[i] * (block_in // reversed_heads[i])
    return found


def _blocks(unet: nn.Module):
    for i, block in enumerate(unet.down_blocks):
        yield f"down_blocks.{i}", block, i
    yield "mid_block", unet.mid_block, len(unet.down_blocks) - 1
    for i, block in enumerate(unet.up_blocks):
        yield f"up_blocks.{i}", block, len(unet.up_blocks) - 1 - i


def _channels(module: nn.Module) -> int:
    if getattr(module, "out_channels", None) is not None:
        return int(module.out_channels)
    return int(module.proj_out.out_channels if isinstance(module.proj_out, nn.Conv2d) else module.proj_out.out_features)


def _by_video(pictures: torch.Tensor, frames: int) -> torch.Tensor:
    return pictures.view(pictures.shape[0] // frames, frames, *pictures.shape[1:])


def build_denoiser(config: dict, audio_dim: int = 768, regions: bool = True, resnet_motion: bool = False,
                   speed_buckets: int = 0, speed_dim: int = 64, max_frames: int = TEMPORAL_MAX_FRAMES) -> nn.Module:
    """The video denoiser (see the module's text). ``regions``: Hallo's masked three-way audio attention (else
    one cross-attention); ``resnet_motion``: run the motion modules of the blocks without attention (Hallo's
    inference skips them); ``speed_buckets``: add EMO's speed layers with that many buckets."""
    net = _unet_from_config(config)
    context = AudioFrameContext()
    widths = audio_widths(config)
    groups = config.get("norm_num_groups", 32)
    heads = _heads(config)
    motion_widths: dict[str, int] = {}
    for path, block, depth in _blocks(net):
        attentions = getattr(block, "attentions", None)
        has_attention = attentions is not None and len(attentions) > 0
        hosts = list(attentions) if has_attention else list(block.resnets)
        if path == "mid_block":
            hosts = hosts[:1]
        channels = [_channels(h) for h in hosts]
        block.motion_modules = nn.ModuleList(
            TemporalModule(c, heads=TEMPORAL_HEADS, layers=TEMPORAL_LAYERS,
                           attention_blocks=TEMPORAL_ATTENTION_BLOCKS, max_frames=max_frames) for c in channels)
        if has_attention:
            head_count = heads[min(depth, len(heads) - 1)] if path != "mid_block" else heads[-1]
            block.audio_modules = nn.ModuleList(
                AudioModule(c, widths[f"{path}.audio_modules.{j}"], head_count, audio_dim, groups, regions)
                for j, c in enumerate(channels))
        for j, c in enumerate(channels):
            if has_attention or resnet_motion:
                motion_widths[f"{path}.{j}"] = c
        for j, host in enumerate(hosts):
            if has_attention:
                host.register_forward_hook(_after_attention(net, context, path, j, depth))
            elif resnet_motion:
                host.register_forward_hook(_after_resnet(net, context, path, j))
    if speed_buckets:
        net.speed_layers = SpeedLayers(speed_buckets, speed_dim, motion_widths)
    for name, block in transformer_blocks(net).items():
        block.attn1.set_processor(TiledReferenceProcessor(name, context))
    install_input_residual(net, context)
    net.frame_context = context
    return net


class TiledReferenceProcessor(ReferenceAttnProcessor):
    """Self-attention whose keys and values also hold the reference tokens, paired with the frames as Hallo's
    ``ReferenceAttentionControl`` pairs them: it tiles the B videos' tokens over the B·F rows
    (``repeat(1, F, 1, 1)``), so row r sees video ``r mod B``'s tokens. With one video that is every frame its
    own reference; with guidance's two (unconditional first) the conditional video's even frames see the
    tokens the reference net made with the *unconditional* context (they differ after the first
    cross-attention). Rows of videos not in ``use_reference`` attend to themselves only."""

    release_tiling = True  # False: each video's own tokens on each of its frames (what the design means)

    def reference_rows(self, reference: torch.Tensor, hidden_states: torch.Tensor) -> torch.Tensor:
        rows_count, frames = hidden_states.shape[0], self.context.frames
        videos = reference.shape[0]
        if rows_count != videos * frames:
            raise ValueError(f"{rows_count // frames} videos in the batch but reference tokens for {videos}")
        index = torch.arange(rows_count, device=reference.device)
        return reference.to(hidden_states.dtype)[index % videos if self.release_tiling else index // frames]


def _output_tensor(output):
    return output if isinstance(output, torch.Tensor) else output[0] if isinstance(output, tuple) else output.sample


def _replace_output(output, tensor):
    if isinstance(output, torch.Tensor):
        return tensor
    if isinstance(output, tuple):
        return (tensor, *output[1:])
    return type(output)(sample=tensor)


def _maybe_checkpoint(context: AudioFrameContext, function, *args):
    if context.checkpointing and torch.is_grad_enabled():
        from torch.utils.checkpoint import checkpoint

        return checkpoint(function, *args, use_reentrant=False)
    return function(*args)


def _motion(net, context: AudioFrameContext, path: str, j: int, pictures: torch.Tensor,
            features: torch.Tensor | None) -> torch.Tensor:
    """The block's ``j``-th motion module on ``pictures`` (B·F, C, h, w), after the motion frames' tokens."""
    block = net.get_submodule(path)
    module = block.motion_modules[j]
    frames = context.frames
    if context.speed is not None and hasattr(net, "speed_layers"):
        bias = net.speed_layers.bias(f"{path}.{j}", context.speed.to(pictures.dtype))  # (B, C)
        pictures = pictures + bias.repeat_interleave(frames, dim=0)[:, :, None, None]
    if features is None:
        return _maybe_checkpoint(context, module, pictures, frames)
    videos, count, channels, height, width = _by_video(pictures, frames).shape[0], *features.shape[1:2], \
        *pictures.shape[1:]
    prefix = features.to(pictures.dtype).reshape(videos, count, height, width, channels).permute(0, 1, 4, 2, 3)
    sequence = torch.cat([prefix, _by_video(pictures, frames)], dim=1)
    moved = _maybe_checkpoint(context, module, sequence.reshape(-1, channels, height, width), count + frames)
    return _by_video(moved, count + frames)[:, count:].reshape(pictures.shape)


def _after_attention(net, context: AudioFrameContext, path: str, j: int, level: int):
    def run(_module, _inputs, output):
        pictures = _output_tensor(output)
        block = net.get_submodule(path)
        if context.audio is not None:
            masks = context.masks[level] if context.masks is not None else None
            if masks is None:
                ones = torch.ones(1, pictures.shape[2] * pictures.shape[3], device=pictures.device)
                masks = (ones, ones, ones)
            pictures = _maybe_checkpoint(context, block.audio_modules[j], pictures, context.audio.to(pictures.dtype),
                                         masks, context.motion_scale)
        features = context.motion_features.get(f"{path}.attentions.{j}.transformer_blocks.0")
        return _replace_output(output, _motion(net, context, path, j, pictures, features))

    return run


def _after_resnet(net, context: AudioFrameContext, path: str, j: int):
    def run(_module, _inputs, output):
        return _motion(net, context, path, j, output, None)

    return run


def denoise(
    net: nn.Module,
    latents: torch.Tensor,
    timestep: torch.Tensor,
    context: torch.Tensor,
    audio: torch.Tensor,
    *,
    masks: list | None = None,
    motion_scale=(1.0, 1.0, 1.0),
    face_features: torch.Tensor | None = None,
    reference: dict[str, torch.Tensor] | None = None,
    use_reference: torch.Tensor | None = None,
    motion_features: dict[str, torch.Tensor] | None = None,
    speed: torch.Tensor | None = None,
) -> torch.Tensor:
    """The denoiser's prediction for ``latents`` (B, C, F, h, w) at ``timestep``.

    ``context``: (B, n, D) cross-attention tokens (the projected face embedding); ``audio``: (B, F, tokens, D)
    projected audio; ``masks``: per level (full, face, lip), each (h_l·w_l,) or (B·F, h_l·w_l); ``face_features``:
    (B, C0, h, w) the face locator's output (added to every frame); ``reference``: block path → (B, n, C) and
    ``use_reference`` (B,) which videos attend to them; ``motion_features``: block path → (B, M, n, C);
    ``speed``: (B,) speed buckets (with speed layers).
    """
    videos, channels, frames, height, width = latents.shape
    dtype = net.conv_in.weight.dtype
    pictures = latents.to(dtype).permute(0, 2, 1, 3, 4).reshape(videos * frames, channels, height, width)
    ctx: AudioFrameContext = net.frame_context
    ctx.frames = frames
    ctx.reference = reference or {}
    ctx.use_reference = use_reference
    ctx.audio = audio.to(dtype).reshape(videos * frames, *audio.shape[2:])
    ctx.masks = None if masks is None else [
        tuple(m.to(device=latents.device, dtype=dtype).reshape(-1, m.shape[-1]) for m in level) for level in masks]
    ctx.motion_scale = tuple(float(s) for s in motion_scale)
    ctx.motion_features = motion_features or {}
    ctx.speed = None
    if speed is not None:
        ctx.speed = net.speed_layers.embedding(speed.to(latents.device).long())
    ctx.input_residual = None if face_features is None else face_features.to(dtype).repeat_interleave(frames, dim=0)
    states = context.to(dtype).repeat_interleave(frames, dim=0)
    try:
        out = net(pictures, timestep, encoder_hidden_states=states).sample
    finally:
        # With gradients, checkpointed blocks run again in the backward pass and read the context then: it is
        # kept until the next call replaces it (one forward, then its backward, as training does).
        if not torch.is_grad_enabled():
            ctx.reference, ctx.use_reference, ctx.input_residual = {}, None, None
            ctx.audio, ctx.masks, ctx.motion_features, ctx.speed = None, None, {}, None
    return out.view(videos, frames, *out.shape[1:]).permute(0, 2, 1, 3, 4)
