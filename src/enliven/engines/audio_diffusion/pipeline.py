"""Hallo's sampling: a reference picture and speech → frames, one clip of 16 at a time, chained by motion frames.

Matches ``scripts/inference.py`` with ``FaceAnimatePipeline.__call__`` of the release (fudan-generative-vision/hallo
at 8fd7c57) for the same inputs:

* **Per run**: the face embedding through the image projection is the cross-attention context; the unconditional
  context is the projection of zeros (not zeros). The face-region picture through the face locator is added
  after ``conv_in`` (zeros for the unconditional branch). DDIM as the release builds it: linear betas
  0.00085 … 0.012 (its stage-2 training used scaled_linear; inference does not), rescaled to zero terminal
  SNR, trailing spacing, v-prediction, ``steps_offset`` 1, no clipping, η = 0; diffusers' ``DDIMScheduler``
  itself. One seeded CPU generator draws every clip's initial noise in turn (the release's
  ``torch.manual_seed(42)``).
* **Per clip**: the reference picture and the motion frames (the last ``motion_frames`` decoded frames of the
  previous clip, as floats in [-1, 1]; the reference picture repeated for the first clip) are encoded by the
  VAE (mean × 0.18215) and run through the reference net at t = 0. The reference picture's tokens feed the
  denoiser's self-attention; the motion frames' tokens are prepended to its motion modules' sequences.
  Both are rounded to fp16 whatever the run's precision (the release's ``ReferenceAttentionControl.update``
  casts them). The projected audio of the clip's frames (zeros, after projection, for the unconditional
  branch) feeds the audio modules with the region masks and pose/face/lip weights.
* **Guidance**: ``uncond + g·(cond − uncond)`` with the unconditional branch first in the batch; that branch
  also skips the reference tokens in self-attention. With guidance on, the release's reference pass gives its
  rows the two contexts alternately (``encoder_hidden_states.repeat``, not ``repeat_interleave``): reference,
  motion frame 1, motion frame 2 of the unconditional video get unconditional, conditional, unconditional
  contexts, and those of the conditional video the opposite; and the denoiser's self-attention tiles the two
  videos' reference tokens over the frames, so the conditional video's even frames see the reference tokens
  made with the unconditional context (``model.TiledReferenceProcessor``). We reproduce both (they change the
  result past the parity tolerances). Guidance ≤ 1 crashes the release (the audio batch is doubled, the
  latents are not); here it runs the conditional branch alone.
* **Decoding**: the VAE one frame at a time, ``(x / 2 + 0.5).clamp(0, 1)``; the last frames, unrounded, are the
  next clip's motion frames. The padded tail past the audio's length is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from enliven.engines.audio_diffusion.model import denoise, reference_features
from enliven.engines.diffusion.setup import device_dtype

DEFAULT_STEPS = 40
DEFAULT_GUIDANCE = 3.5
DEFAULT_SEED = 42
CLIP = 16
MOTION_FRAMES = 2
LATENT_SCALE = 0.18215
# Hallo's configs/inference/default.yaml noise_scheduler_kwargs with enable_zero_snr
SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False, steps_offset=1,
                 prediction_type="v_prediction", rescale_betas_zero_snr=True, timestep_spacing="trailing")


@dataclass
class Conditions:
    """Everything per run that is not audio: ``reference`` (3, H, W) in [-1, 1]; ``face_region`` (3, H, W) in
    [0, 1] (the face locator's input); ``masks``: per level (full, face, lip), each flat (h_l·w_l,) in [0, 1];
    ``face_embedding`` (E,), zeros when no face embedding is available (the release's no-face fallback)."""

    reference: torch.Tensor
    face_region: torch.Tensor
    masks: list
    face_embedding: torch.Tensor


def scheduler():
    from enliven.engines.diffusion import samplers

    return samplers.ddim(SCHEDULER)


@torch.no_grad()
def _vae_latents(vae, pixels: torch.Tensor) -> torch.Tensor:
    return vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mean * LATENT_SCALE


@torch.no_grad()
def decode(vae, latents: torch.Tensor) -> torch.Tensor:
    """(1, 4, F, h, w) → (F, 3, H, W) float32 in [0, 1], a frame at a time as the release does."""
    frames = [vae.decode(latents[:, :, i].to(vae.dtype) / LATENT_SCALE).sample for i in range(latents.shape[2])]
    return (torch.cat(frames).float() / 2 + 0.5).clamp(0, 1)


def reference_rows(latents: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
    """Each reference-pass row's context as the release pairs them: the contexts (uncond, cond) repeated whole
    over the ``videos × (1 + motion frames)`` rows, row r getting ``contexts[r % len(contexts)]``."""
    rows = latents.shape[0] * contexts.shape[0]
    return contexts.repeat(rows // contexts.shape[0], 1, 1)


@torch.no_grad()
def sample_clip(models: dict, conditions: Conditions, audio_windows: torch.Tensor, motion: torch.Tensor,
                noise: torch.Tensor, *, steps: int = DEFAULT_STEPS, guidance: float = DEFAULT_GUIDANCE,
                motion_scale=(1.0, 1.0, 1.0), speed: torch.Tensor | None = None,
                step_callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """One clip's latents (1, 4, F, h, w): ``audio_windows`` (F, 5, layers, C), ``motion`` (M, 3, H, W) in
    [-1, 1], ``noise`` (1, 4, F, h, w)."""
    device, dtype = device_dtype(models["denoiser"])
    guided = guidance > 1.0
    embedding = conditions.face_embedding.reshape(1, -1).to(device, dtype)
    cond = models["image_proj"](embedding)
    uncond = models["image_proj"](torch.zeros_like(embedding))
    contexts = torch.cat([uncond, cond]) if guided else cond

    pictures = torch.cat([conditions.reference[None], motion]).to(device)
    latents_ref = _vae_latents(models["vae"], pictures)  # (1 + M, 4, h, w)
    groups = 2 if guided else 1
    rows = latents_ref.repeat(groups, 1, 1, 1)
    tokens = reference_features(models["reference_net"], rows, reference_rows(latents_ref, contexts))
    per_video = 1 + motion.shape[0]
    reference, motion_tokens = {}, {}
    for name, value in tokens.items():
        value = value.to(torch.float16).view(groups, per_video, *value.shape[1:])  # the release's fp16 bank
        reference[name] = value[:, 0]
        motion_tokens[name] = value[:, 1:]
    use_reference = torch.tensor([False, True] if guided else [True], device=device)

    face = models["face_locator"](conditions.face_region[None].to(device, dtype))
    face = torch.cat([torch.zeros_like(face), face]) if guided else face
    audio = models["audio_proj"](audio_windows[None].to(device, dtype))
    audio = torch.cat([torch.zeros_like(audio), audio]) if guided else audio
    masks = [tuple(m.to(device, dtype) for m in level) for level in conditions.masks]
    context_rows = contexts
    speeds = None if speed is None else speed.reshape(1).repeat(groups).to(device)

    schedule = scheduler()
    schedule.set_timesteps(steps, device=device)
    latents = noise.to(device, dtype) * schedule.init_noise_sigma
    for i, t in enumerate(schedule.timesteps):
        model_input = torch.cat([latents] * groups)
        model_input = schedule.scale_model_input(model_input, t)
        prediction = denoise(models["denoiser"], model_input, t, context_rows, audio, masks=masks,
                             motion_scale=motion_scale, face_features=face, reference=reference,
                             use_reference=use_reference, motion_features=motion_tokens, speed=speeds)
        if guided:
            unconditional, conditional = prediction.chunk(2)
            prediction = unconditional + guidance * (conditional - unconditional)
        latents = schedule.step(prediction, t, latents, eta=0.0, return_dict=False)[0]
        if step_callback is not None:
            step_callback(i + 1, len(schedule.timesteps))
    return latents


def generate(models: dict, conditions: Conditions, audio_windows: torch.Tensor, length: int | None = None, *,
             steps: int = DEFAULT_STEPS, guidance: float = DEFAULT_GUIDANCE, seed: int = DEFAULT_SEED,
             clip: int = CLIP, motion_frames: int = MOTION_FRAMES, motion_scale=(1.0, 1.0, 1.0),
             speed: int | None = None, noise: Callable[[tuple], torch.Tensor] | None = None,
             step_callback: Callable[[int, int], None] | None = None) -> Iterator[torch.Tensor]:
    """Frames (F, 3, H, W) float32 in [0, 1], one clip at a time, for ``audio_windows`` (frames, 5, layers, C)
    padded to whole clips, or the features themselves (frames, layers, C: each clip's windows are then made as it
    is sampled, so long audio never holds five copies); ``length``: frames to give in all (the audio's own length;
    the rest is padding).

    ``noise(shape)``: each clip's initial noise (default: the release's, from one generator seeded ``seed``)."""
    vae = models["vae"]
    height, width = conditions.reference.shape[1:]
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    shape = (1, vae.config.latent_channels, clip, height // factor, width // factor)
    if noise is None:
        generator = torch.Generator().manual_seed(seed)

        def noise(shape):
            return torch.randn(shape, generator=generator, dtype=torch.float32)

    total = audio_windows.shape[0]
    if total % clip:
        raise ValueError(f"{total} audio frames: pad them to whole clips of {clip}")
    length = total if length is None else min(length, total)
    given = 0
    motion = conditions.reference[None].repeat(motion_frames, 1, 1, 1)
    speed_tensor = None if speed is None else torch.tensor(speed)
    for start in range(0, total, clip):
        if given >= length:
            return
        if audio_windows.dim() == 3:
            from enliven.engines.audio_diffusion.audio import windows

            clip_windows = windows(audio_windows, start=start, stop=start + clip)
        else:
            clip_windows = audio_windows[start:start + clip]
        latents = sample_clip(models, conditions, clip_windows, motion, noise(shape),
                              steps=steps, guidance=guidance, motion_scale=motion_scale, speed=speed_tensor,
                              step_callback=step_callback)
        frames = decode(vae, latents)
        if motion_frames:
            motion = (frames[-motion_frames:] * 2 - 1).to(conditions.reference.dtype).cpu()
        keep = frames[: length - given]
        given += keep.shape[0]
        yield keep.cpu()


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(F, 3, H, W) in [0, 1] → (F, H, W, 3) uint8, rounded as the release's ``tensor_to_video`` (× 255, then
    clipped and cast: truncation)."""
    return (frames.permute(0, 2, 3, 1).numpy() * 255).clip(0, 255).astype(np.uint8)
