"""Sampling loops shared by the diffusion engines: per-frame initial noise, classifier-free guidance, windows.

The loops take a sampler from ``samplers`` (diffusers' scheduler interface, each call a function of its timestep):
Follow-Your-Emoji's is ``samplers.ddim()`` (zero-terminal-SNR DDIM, eta 0; with 3 steps the timesteps are 999,
666, 332 and each step goes to ``t − 1000 // steps``).

Windows: the model sees at most a window of frames at a time. ``sample_sliding`` denoises every window at every
step and blends overlapping predictions with ``windows.blend_weights``; ``sample_job`` runs one job of the
progressive schedule, holding its known frames on their already generated values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from enliven.engines.diffusion.windows import blend_weights, sliding_windows

# predict(latents of a window (B, C, f, h, w), timestep, the window's clip frame indices) → guided prediction
Predictor = Callable[[torch.Tensor, torch.Tensor, Sequence[int]], torch.Tensor]


def frame_noise(seed: int, index: int, latent_size: tuple[int, int], device, dtype, channels: int = 4) -> torch.Tensor:
    """The initial noise (1, channels, h, w) of clip frame ``index``: its own generator, seeded from (seed, index),
    so a frame's noise does not depend on the clip's length or on how it is cut into windows; both diffusion
    engines draw their noise here."""
    import numpy as np

    mixed = int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0])
    generator = torch.Generator(device)
    generator.manual_seed(mixed)
    return torch.randn((1, channels, *latent_size), generator=generator, device=device, dtype=dtype)


def guide(unconditional: torch.Tensor, conditional: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: move from the unconditional prediction towards the conditional one by ``scale``."""
    return unconditional + scale * (conditional - unconditional)


def uses_guidance(scale: float) -> bool:
    """The releases run the unconditional branch only when the scale is above 1."""
    return scale > 1.0


@torch.no_grad()
def sample_sliding(predict: Predictor, latents: torch.Tensor, scheduler, steps: int, window: int,
                   overlap: int) -> torch.Tensor:
    """Denoise ``latents`` (B, C, F, h, w) over ``steps``, each step predicting window by window and blending."""
    frames = latents.shape[2]
    windows = sliding_windows(frames, window, overlap)
    weights = [torch.as_tensor(w, dtype=latents.dtype, device=latents.device) for w in blend_weights(windows, frames)]
    scheduler.set_timesteps(steps, device=latents.device)
    latents = latents * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(latents, t)
        if len(windows) == 1:  # the common case, and bit-exact with the releases: no weighting at all
            prediction = predict(model_input, t, windows[0])
        else:
            prediction = torch.zeros_like(latents)
            for frames_of, weight in zip(windows, weights):
                part = predict(model_input[:, :, frames_of], t, frames_of)
                prediction[:, :, frames_of] += part * weight.view(1, 1, -1, 1, 1)
        latents = scheduler.step(prediction, t, latents, eta=0.0).prev_sample
    return latents


@torch.no_grad()
def sample_job(
    predict: Predictor,
    noise: torch.Tensor,
    frames: Sequence[int],
    known: dict[int, torch.Tensor],
    scheduler,
    steps: int,
) -> torch.Tensor:
    """Denoise one window whose ``known`` frames (clip index → clean latent (B, C, h, w)) are conditions.

    Before every model call, the known frames are set to their clean latent noised to the current timestep
    with their own fixed noise (the replacement method of RePaint), so the new frames are denoised next to
    what the known ones will be; at the end the known frames are their clean latents exactly.
    """
    scheduler.set_timesteps(steps, device=noise.device)
    latents = noise * scheduler.init_noise_sigma
    slots = [i for i, f in enumerate(frames) if f in known]
    clean = torch.stack([known[frames[i]] for i in slots], dim=2) if slots else None
    for t in scheduler.timesteps:
        if slots:
            latents[:, :, slots] = scheduler.add_noise(clean, noise[:, :, slots], t.reshape(1))
        prediction = predict(scheduler.scale_model_input(latents, t), t, frames)
        latents = scheduler.step(prediction, t, latents, eta=0.0).prev_sample
    if slots:
        latents[:, :, slots] = clean
    return latents
