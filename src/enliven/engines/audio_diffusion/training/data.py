"""Training samples from the preprocessed cache: pictures for the image stage, clips for the video stages.

Every draw is a function of (seed, step, process, index) only, so a run resumed from a checkpoint draws exactly
what the uninterrupted run would have (no sampler state to save), and each process draws its own samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from enliven.engines.audio_diffusion.audio import RADIUS
from enliven.errors import EnlivenError


@dataclass
class Batch:
    """``target`` (B, 4, F, h, w) latents; ``reference`` (B, 4, h, w); ``motion`` (B, M, 4, h, w) (M may be 0);
    ``region`` (B, 3, H, W) in [0, 1]; ``masks`` per level (full, face, lip) each (B, h_l·w_l); ``embedding``
    (B, E); ``audio`` (B, F, 5, layers, C); ``speed`` (B,) bucket indices."""

    target: torch.Tensor
    reference: torch.Tensor
    motion: torch.Tensor
    region: torch.Tensor
    masks: list
    embedding: torch.Tensor
    audio: torch.Tensor
    speed: torch.Tensor

    def to(self, device) -> Batch:
        return Batch(*(getattr(self, f).to(device) for f in ("target", "reference", "motion", "region")),
                     [tuple(m.to(device) for m in level) for level in self.masks],
                     self.embedding.to(device), self.audio.to(device), self.speed.to(device))


class Clips:
    """The cache files of a run, read lazily (memory-mapped safetensors)."""

    def __init__(self, paths: list[Path], config: dict):
        from safetensors import safe_open

        self.config = config
        self.files = [safe_open(str(p), "pt") for p in paths if Path(p).is_file()]
        if not self.files:
            raise EnlivenError(f"no preprocessed videos in {config['data']['cache']}")
        self.lengths = [int(f.metadata()["frames"]) for f in self.files]
        self.edges = torch.tensor(config["data"]["speed_edges"])
        self.levels = sorted({int(k.split(".")[1]) for k in self.files[0].keys() if k.startswith("mask.")})

    def _latents(self, f, frames: list[int], generator: torch.Generator) -> torch.Tensor:
        index = torch.tensor(frames)
        mean = f.get_tensor("latent_mean")[index].float()
        std = f.get_tensor("latent_std")[index].float()
        return mean + std * torch.randn(mean.shape, generator=generator)

    def _windows(self, audio: torch.Tensor, frames: list[int]) -> torch.Tensor:
        count = audio.shape[0]
        index = torch.tensor(frames)[:, None] + torch.arange(-RADIUS, RADIUS + 1)[None]
        return audio[index.clamp(0, count - 1)].float()

    def batch(self, seed: int, step: int, rank: int, size: int, video: bool, speed_layers: bool = False) -> Batch:
        data = self.config["data"]
        frames = data["clip_frames"] if video else 1
        motion = data["motion_frames"] if video else 0
        rng = np.random.default_rng([seed, step, rank])
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        rows = []
        for _ in range(size):
            which = int(rng.integers(len(self.files)))
            f, length = self.files[which], self.lengths[which]
            first = int(rng.integers(motion, length - frames + 1))
            clip = list(range(first, first + frames))
            if video:
                reference = int(rng.integers(length))
            else:  # Hallo's stage 1: a reference within sample_margin frames of the target
                low, high = max(0, first - data["sample_margin"]), min(length, first + data["sample_margin"] + 1)
                reference = int(rng.integers(low, high))
            latents = self._latents(f, [reference, *range(first - motion, first), *clip], generator)
            audio = f.get_tensor("audio")
            speeds = f.get_tensor("speed")[torch.tensor(clip)]
            rows.append({
                "reference": latents[0], "motion": latents[1:1 + motion], "target": latents[1 + motion:],
                "region": f.get_tensor("region").float() / 255,
                "masks": [tuple(f.get_tensor(f"mask.{lv}.{n}") for n in ("full", "face", "lip")) for lv in self.levels],
                "embedding": f.get_tensor("embedding").float(),
                "audio": self._windows(audio, clip),
                "speed": torch.bucketize(speeds.mean(), self.edges),
            })
        return Batch(
            target=torch.stack([r["target"] for r in rows]).permute(0, 2, 1, 3, 4),
            reference=torch.stack([r["reference"] for r in rows]),
            motion=torch.stack([r["motion"] for r in rows]),
            region=torch.stack([r["region"] for r in rows])[:, None].repeat(1, 3, 1, 1),
            masks=[tuple(torch.stack([r["masks"][lv][k] for r in rows]) for k in range(3))
                   for lv in range(len(self.levels))],
            embedding=torch.stack([r["embedding"] for r in rows]),
            audio=torch.stack([r["audio"] for r in rows]),
            speed=torch.stack([r["speed"] for r in rows]),
        )
