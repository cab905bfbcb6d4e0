"""Follow-Your-Emoji's sampling: reference picture + landmark pictures → frames (before paste-back).

Matches the release's ``VideoPipeline.__call__`` for a clip that fits in one window (same weights and initial
latents → the same frames), and goes beyond it for longer clips: real overlapping windows with blended seams,
or the paper's progressive keyframes-first schedule (the default past one window), see ``diffusion.windows``.

Per clip: the reference picture goes through the VAE (its latent mean × the scaling factor) and, at timestep 0,
through the reference net, whose tokens the denoiser's self-attention sees; CLIP's last hidden state (before
its final layer norm) of the reference, through ``clip_fc``, is the cross-attention context, zeros for the
unconditional branch (which also skips the reference tokens); the landmark guider's features of each frame
are added after ``conv_in``. DDIM (zero terminal SNR, trailing, v-prediction), 30 steps, guidance 3.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from enliven.engines.diffusion import sampling
from enliven.engines.diffusion.unet import denoise, reference_tokens
from enliven.engines.diffusion.windows import progressive_jobs

DEFAULT_STEPS = 30
DEFAULT_GUIDANCE = 3.5
CLIP_SIZE = 224


@dataclass(frozen=True)
class Context:
    """How frames are grouped for the denoiser. ``window``: frames per denoiser call (the release trained on
    16); ``overlap``: frames shared by neighbouring sliding windows; ``progressive``: keyframes first (None:
    when the clip is longer than a window); ``stride``: frames between keyframes (None: window − 1)."""

    window: int = 16
    overlap: int = 4
    progressive: bool | None = None
    stride: int | None = None


def clip_input(image: np.ndarray) -> torch.Tensor:
    """CLIP's preprocessing of an H×W×3 uint8 picture (transformers' ``CLIPImageProcessor`` defaults: shortest
    side to 224, centre crop 224, CLIP's mean and std), 3×224×224 float32."""
    from PIL import Image

    try:  # transformers 5 without torchvision: the PIL implementation, named so it does not warn
        from transformers import CLIPImageProcessorPil as processor_class
    except ImportError:
        from transformers import CLIPImageProcessor as processor_class
    processor = processor_class()
    return processor(images=Image.fromarray(image), return_tensors="pt").pixel_values[0]


def _device_dtype(models) -> tuple[torch.device, torch.dtype]:
    weight = models["denoiser"].conv_in.weight
    return weight.device, weight.dtype


@torch.no_grad()
def encode_reference(models, reference_image: np.ndarray) -> torch.Tensor:
    """The VAE latent of an H×W×3 uint8 picture: mean of the posterior × scaling factor, (1, 4, H/8, W/8)."""
    device, dtype = _device_dtype(models)
    vae = models["vae"]
    pixels = torch.from_numpy(np.ascontiguousarray(reference_image)).to(device).permute(2, 0, 1)[None].float() / 255.0
    pixels = (pixels * 2.0 - 1.0).to(vae.dtype)
    return vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor


@torch.no_grad()
def decode(models, latents: torch.Tensor) -> np.ndarray:
    """(1, 4, F, h, w) latents → F×H×W×3 float32 in [0, 1], one frame at a time (VAE slicing)."""
    vae = models["vae"]
    frames = []
    for i in range(latents.shape[2]):
        picture = vae.decode(latents[:, :, i].to(vae.dtype) / vae.config.scaling_factor).sample
        frames.append((picture / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 0).float().cpu().numpy())
    return np.stack(frames)


@torch.no_grad()
def generate(
    models: dict,
    reference_image: np.ndarray,
    landmark_images: np.ndarray,
    *,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    seed: int | None = None,
    latents: torch.Tensor | None = None,
    clip_image: torch.Tensor | None = None,
    context: Context | None = None,
) -> np.ndarray:
    """Frames F×H×W×3 float32 in [0, 1] for landmark pictures F×H×W×3 uint8 and a reference H×W×3 uint8.

    ``latents`` (1, 4, F, H/8, W/8) replaces the initial noise (else drawn from ``seed`` on the models' device
    as the release does); ``clip_image`` (3×224×224) replaces CLIP's preprocessing of the reference.
    """
    device, dtype = _device_dtype(models)
    context = context or Context()
    landmark_images = np.asarray(landmark_images)
    if landmark_images.ndim != 4 or landmark_images.shape[1:] != reference_image.shape:
        raise ValueError(f"landmark pictures {landmark_images.shape} must be F × {reference_image.shape}")
    frames, height, width = landmark_images.shape[:3]
    shape = (1, 4, frames, height // 8, width // 8)
    if latents is None:
        generator = torch.Generator(device)
        generator.manual_seed(int(seed) if seed is not None else int(torch.seed()))
        latents = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    elif tuple(latents.shape) != shape:
        raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
    latents = latents.to(device=device, dtype=dtype)

    clip_pixels = clip_input(reference_image) if clip_image is None else clip_image
    encoder = models["image_encoder"]
    clip_states = encoder(clip_pixels[None].to(device=device, dtype=encoder.dtype)).last_hidden_state
    reference = reference_tokens(models["reference_net"], encode_reference(models, reference_image), clip_states)

    pictures = torch.from_numpy(np.ascontiguousarray(landmark_images)).to(device).permute(3, 0, 1, 2)[None]
    guide_features = models["guider"]((pictures.float() / 255.0).to(dtype))  # (1, C0, F, h, w)

    with_guidance = sampling.uses_guidance(guidance)
    if with_guidance:  # batch rows: unconditional (zero CLIP states, no reference tokens), conditional
        states = torch.cat([torch.zeros_like(clip_states), clip_states])
        reference = {k: v.repeat(2, 1, 1) for k, v in reference.items()}
        use_reference = torch.tensor([False, True], device=device)
    else:
        states, use_reference = clip_states, None

    def predict(x: torch.Tensor, t: torch.Tensor, frame_indices) -> torch.Tensor:
        residual = guide_features[:, :, list(frame_indices)]
        if with_guidance:
            x, residual = torch.cat([x, x]), torch.cat([residual, residual])
        out = denoise(models["denoiser"], x, t, states, input_residual=residual, reference=reference,
                      use_reference=use_reference)
        if with_guidance:
            unconditional, conditional = out.chunk(2)
            return sampling.guide(unconditional, conditional, guidance)
        return out

    scheduler = sampling.make_scheduler()
    progressive = context.progressive if context.progressive is not None else frames > context.window
    if not progressive or frames <= context.window:
        final = sampling.sample_sliding(predict, latents, scheduler, steps, context.window, context.overlap)
    else:
        done: dict[int, torch.Tensor] = {}
        for job in progressive_jobs(frames, context.window, context.stride):
            known = {f: done[f] for f in job.known}
            result = sampling.sample_job(predict, latents[:, :, list(job.frames)].clone(), job.frames, known,
                                         scheduler, steps)
            for i, f in enumerate(job.frames):
                if f not in known:
                    done[f] = result[:, :, i]
        final = torch.stack([done[f] for f in range(frames)], dim=2)
    return decode(models, final)
