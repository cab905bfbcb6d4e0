"""The trained networks as one module (what DistributedDataParallel wraps), the noise schedule and the loss.

One forward is one training prediction, as Hallo's ``Net.forward`` in scripts/train_stage1.py and train_stage2.py:
the face embedding through the image projection is the cross-attention context; the face-region picture through
the face locator is added after ``conv_in``; the reference net runs at t = 0 on the reference latent and the motion
frames' latents (each row with the context), its tokens feed the denoiser's self-attention (reference) and its
motion modules (motion frames); the projected audio feeds the audio modules with the region masks.
Unlike inference (``reference_features``, no gradients), the reference pass here keeps its graph: the image stage
trains the reference net through it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from enliven.engines.audio_diffusion.model import denoise
from enliven.engines.diffusion.attention import capture_reference_tokens

PARTS = ("reference_net", "denoiser", "face_locator", "image_proj", "audio_proj")
TEMPORAL = (".audio_modules.", ".motion_modules.")


@dataclass
class Drops:
    """What a step leaves out (classifier-free guidance's unconditional cases, Hallo's ratios)."""

    reference: bool = False  # no reference pass: neither the reference picture's nor the motion frames' tokens
    audio: bool = False  # audio tokens replaced by zeros
    motion: bool = False  # motion frames replaced by a blank picture's latent (a video's first clip)


class TrainingNet(nn.Module):
    def __init__(self, modules: dict[str, nn.Module]):
        super().__init__()
        for name in PARTS:
            setattr(self, name, modules[name])

    def forward(self, batch, noisy: torch.Tensor, timesteps: torch.Tensor, drops: Drops, video: bool,
                blank: torch.Tensor | None = None, speed: bool = False) -> torch.Tensor:
        videos, frames = noisy.shape[0], noisy.shape[2]
        context = self.image_proj(batch.embedding)
        face = self.face_locator(batch.region)
        if video and not drops.audio:
            audio = self.audio_proj(batch.audio)
        else:  # the image stage has no audio (EMO's stage 1); the audio modules see zeros, as the unconditional case
            shape = (videos, frames, self.audio_proj.tokens, self.audio_proj.dim)
            audio = torch.zeros(shape, device=noisy.device, dtype=context.dtype)
        reference, motion_features = {}, {}
        if not drops.reference:
            motion = batch.motion if video else batch.motion[:, :0]
            if drops.motion and blank is not None and motion.shape[1]:
                motion = blank.to(motion.dtype).expand_as(motion)
            per_video = 1 + motion.shape[1]
            rows = torch.cat([batch.reference[:, None], motion], dim=1).flatten(0, 1)
            net = self.reference_net
            zero = torch.zeros(rows.shape[0], dtype=torch.long, device=rows.device)
            tokens = capture_reference_tokens(
                net, lambda: net(rows, zero, encoder_hidden_states=context.repeat_interleave(per_video, dim=0)),
                stop_after=net.reference_last_block)
            for name, value in tokens.items():
                value = value.view(videos, per_video, *value.shape[1:])
                reference[name] = value[:, 0]
                if per_video > 1:
                    motion_features[name] = value[:, 1:]
        use_reference = torch.full((videos,), not drops.reference, device=noisy.device)
        masks = [tuple(m.repeat_interleave(frames, dim=0) for m in level) for level in batch.masks]
        timesteps = timesteps.reshape(-1).repeat_interleave(frames) if timesteps.numel() == videos else timesteps
        return denoise(self.denoiser, noisy, timesteps, context, audio, masks=masks, face_features=face,
                       reference=reference or None, use_reference=use_reference,
                       motion_features=motion_features or None, speed=batch.speed if speed else None)


def trainable(modules: dict[str, nn.Module], stage: str) -> list[tuple[str, nn.Parameter]]:
    """The (name, parameter) pairs a stage trains; every other parameter is frozen.

    image: the reference net, the denoiser's spatial layers, the face locator and the image projection (Hallo's
    stage 1); video: the audio and motion modules and the audio projection (Hallo's stage 2 ``trainable_para``
    and ``audioproj``); speed: the speed layers with the motion modules (EMO's last stage trains the temporal
    modules and the speed layers; the audio layers stay as the video stage left them)."""
    chosen = []
    for part in PARTS:
        for name, parameter in modules[part].named_parameters():
            full = f"{part}.{name}"
            temporal = part == "denoiser" and any(t in f".{name}" for t in TEMPORAL)
            speed = part == "denoiser" and name.startswith("speed_layers.")
            if stage == "image":
                take = part in ("reference_net", "face_locator", "image_proj") or (
                    part == "denoiser" and not temporal and not speed)
            elif stage == "video":
                take = part == "audio_proj" or temporal
            else:
                take = speed or (part == "denoiser" and ".motion_modules." in f".{name}")
            parameter.requires_grad_(take)
            if take:
                chosen.append((full, parameter))
    return chosen


def noise_scheduler(noise: dict):
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=noise["train_timesteps"], beta_start=noise["beta_start"], beta_end=noise["beta_end"],
        beta_schedule=noise["beta_schedule"], rescale_betas_zero_snr=noise["zero_terminal_snr"],
        prediction_type=noise["prediction"], steps_offset=1, clip_sample=False)


def target_of(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    if scheduler.config.prediction_type == "epsilon":
        return noise
    return scheduler.get_velocity(latents, noise, timesteps)


def snr_weights(scheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-γ weights per sample (Hang et al. 2023, as Hallo's ``compute_snr``): min(SNR, γ)/SNR, with SNR + 1
    for v-prediction; SNR 0 (the zero-terminal-SNR last step) weighs 1 for ε-prediction."""
    alphas = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
    snr = alphas / (1 - alphas).clamp_min(1e-12)
    if scheduler.config.prediction_type == "v_prediction":
        snr = snr + 1
    weight = torch.minimum(snr, torch.full_like(snr, gamma)) / snr.clamp_min(1e-12)
    return torch.where(snr > 0, weight, torch.ones_like(weight))


def loss_of(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error per sample, weighted, averaged. (Hallo averages over the batch before weighting, so its
    weight is the batch's mean weight; per sample is the min-SNR paper's definition.)"""
    per_sample = (prediction.float() - target.float()).pow(2).flatten(1).mean(1)
    return (per_sample if weights is None else per_sample * weights).mean()
