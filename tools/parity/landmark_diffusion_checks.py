"""``landmark-diffusion`` against Follow-Your-Emoji's own outputs
(``tests/engines/data/landmark_diffusion_release.npz``, written by ``follow_your_emoji.py``): our modules built at
the fixture's sizes, filled by key as the release's were, run on the fixture's inputs. Each check returns
``max |ours - release| / max |release|``; the tests assert them (modules 1e-4, runs 1e-3) and
``compare.py landmark-diffusion`` prints them.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from fill import fill_module
from measure import MODULE_TOLERANCE, RUN_TOLERANCE, relative  # noqa: F401  (the tests read them here)

FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "engines" / "data" / "landmark_diffusion_release.npz"


class Fixture:
    """The release's fixture and our modules at its sizes (built on first use)."""

    def __init__(self, path: str | Path = FIXTURE):
        with np.load(path) as data:
            self.data = {key: data[key] for key in data.files}
        self.sizes = json.loads(str(self.data["sizes"]))
        self.meta = json.loads(str(self.data["meta"]))

    def __getitem__(self, key: str) -> np.ndarray:
        return self.data[key]

    @cached_property
    def models(self) -> dict:
        from diffusers import AutoencoderKL
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        from enliven.engines.diffusion.unet import build_denoiser, build_reference_net
        from enliven.engines.landmark_diffusion.guider import LandmarkGuider

        sizes, temporal = self.sizes, self.sizes["temporal"]
        width = sizes["clip"]["hidden_size"]
        unet = {k: v for k, v in sizes["unet"].items() if not k.startswith("_")}
        models = {
            "vae": AutoencoderKL(**sizes["vae"]),
            "image_encoder": CLIPVisionModelWithProjection(CLIPVisionConfig(**sizes["clip"])),
            "reference_net": build_reference_net(unet, width),
            "denoiser": build_denoiser(unet, width, heads=temporal["num_attention_heads"],
                                       layers=temporal["num_transformer_block"],
                                       attention_blocks=len(temporal["attention_block_types"]),
                                       max_frames=temporal["temporal_position_encoding_max_len"]),
            "guider": LandmarkGuider(out_channels=unet["block_out_channels"][0], widths=tuple(sizes["guider_widths"])),
        }
        for name, module in models.items():
            if name == "guider":
                fill_module(module, gain=sizes.get("guider_gain", 1.0))
            else:
                fill_module(module, skip=lambda key: key.endswith("pos_encoder.pe"))
            module.eval()
            module.requires_grad_(False)  # not torch.set_grad_enabled: that would reach every later test
        return models


def _tensor(array):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))


def clip_input(fx: Fixture) -> float:
    """Our CLIP preprocessing of the reference against the release's ``CLIPImageProcessor`` (every 7th pixel, and
    the sum and absolute sum of all)."""
    from enliven.engines.landmark_diffusion.pipeline import clip_input as ours

    pixels = ours(fx["reference"]).double()
    every_7 = relative(pixels[:, ::7, ::7].numpy(), fx["clip_pixels_every_7"])
    sums = relative([pixels.sum().item(), pixels.abs().sum().item()], fx["clip_pixels_sum"])
    return max(every_7, sums)


def vae_encode(fx: Fixture) -> float:
    """The reference's VAE latent: pixels to [−1, 1], the posterior's mean, times the scaling factor."""
    from enliven.engines.landmark_diffusion.pipeline import encode_reference

    return relative(encode_reference(fx.models, fx["reference"]).numpy(), fx["vae_latent"])


def guider(fx: Fixture) -> float:
    """The landmark guider's features of the landmark pictures (uint8 to [0, 1], per frame)."""
    from enliven.engines.landmark_diffusion.pipeline import landmark_features

    return relative(landmark_features(fx.models, fx["landmarks"]).numpy(), fx["guider"])


def reference_net(fx: Fixture) -> float:
    """The reference net's tokens (each transformer block's norm1 output at t = 0), all 16 blocks: the worst."""
    from enliven.engines.landmark_diffusion.pipeline import condition

    tokens = condition(fx.models, fx["reference"], fx.sizes["guidance"]).reference
    worst = 0.0
    for key in (k for k in fx.data if k.startswith("reference/")):
        block = key.split("/", 1)[1]
        (ours,) = [v for name, v in tokens.items() if name.startswith(block + ".")]
        worst = max(worst, relative(ours[-1:].numpy(), fx[key]))
    return worst


def denoiser_step(fx: Fixture) -> float:
    """One guided denoiser call (unconditional and conditional rows) on the release's first call's inputs: its
    latents and timestep, its guider features and reference tokens, CLIP's states of the reference."""
    import torch

    from enliven.engines.diffusion.attention import transformer_blocks
    from enliven.engines.diffusion.unet import denoise
    from enliven.engines.landmark_diffusion.pipeline import clip_input as ours

    models = fx.models
    encoder = models["image_encoder"]
    states = encoder(ours(fx["reference"])[None]).last_hidden_state
    names = list(transformer_blocks(models["denoiser"]))
    reference = {}
    for key in (k for k in fx.data if k.startswith("reference/")):
        block = key.split("/", 1)[1]
        reference[next(n for n in names if n.startswith(block + "."))] = _tensor(fx[key]).repeat(2, 1, 1)
    out = denoise(models["denoiser"], _tensor(fx["step_input"]), _tensor(fx["step_timestep"])[0].long(),
                  torch.cat([torch.zeros_like(states), states]),
                  input_residual=_tensor(fx["guider"]).repeat(2, 1, 1, 1, 1), reference=reference,
                  use_reference=torch.tensor([False, True]))
    return relative(out.numpy(), fx["step_output"])


def decode(fx: Fixture) -> float:
    """The release's final latents decoded our way (one frame at a time, ÷ scaling factor, to [0, 1])."""
    from enliven.engines.landmark_diffusion.pipeline import decode as ours

    return relative(ours(fx.models, _tensor(fx["latents"])), fx["frames"])


def sampling_run(fx: Fixture) -> float:
    """A whole run through ``generate``: same weights, pictures, seed, steps and guidance as the release's."""
    from enliven.engines.landmark_diffusion.pipeline import generate

    frames = generate(fx.models, fx["reference"], fx["landmarks"], steps=fx.sizes["steps"],
                      guidance=fx.sizes["guidance"], seed=fx.sizes["seed"])
    return relative(frames, fx["frames"])


def initial_noise(fx: Fixture) -> float:
    """``generate``'s noise for the release's seed (the release draws it with ``randn_tensor`` on the CPU)."""
    import torch

    shape = fx["noise"].shape
    generator = torch.Generator("cpu").manual_seed(fx.sizes["seed"])
    return relative(torch.randn(shape, generator=generator).numpy(), fx["noise"])


CHECKS = {  # name: (function, tolerance, what the README calls it)
    "clip_input": (clip_input, MODULE_TOLERANCE, "CLIP's input (transformers' CLIPImageProcessor)"),
    "vae_encode": (vae_encode, MODULE_TOLERANCE, "VAE encoding and scaling of the reference"),
    "guider": (guider, MODULE_TOLERANCE, "landmark guider"),
    "reference_net": (reference_net, MODULE_TOLERANCE, "ReferenceNet tokens (16 blocks)"),
    "denoiser_step": (denoiser_step, MODULE_TOLERANCE, "denoiser step (guided batch, 4 frames)"),
    "decode": (decode, MODULE_TOLERANCE, "decoding, frame by frame"),
    "initial_noise": (initial_noise, 0.0, "initial noise from the seed"),
    "sampling_run": (sampling_run, RUN_TOLERANCE, "whole run: 4 frames, 3 steps, guidance 3.5, seed 12580"),
}
