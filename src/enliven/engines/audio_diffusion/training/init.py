"""The modules a run starts from: a Hallo release (fine-tuning), or SD-1.5, AnimateDiff and wav2vec2 parts.

From parts, as Hallo's own training starts: both UNets from SD-1.5's UNet (the reference net strictly; the denoiser
gets every SD tensor, its audio and motion modules are new), the motion modules from AnimateDiff's file (its names
are the denoiser's), the VAE and wav2vec2 from their folders; the face locator, the image and audio projections
start fresh (the face locator's output convolution at zero, so it adds nothing at first). All files are read as
tensors only (safetensors, or ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from enliven.engines.tensor_files import read_json, read_tensors
from enliven.errors import EnlivenError


def _speed(denoiser, unet_config: dict, audio_dim: int, regions: bool, buckets: int, dim: int):
    """``denoiser`` rebuilt with speed layers (new, zero-initialised) and its own weights."""
    from enliven.engines.audio_diffusion.model import build_denoiser

    net = build_denoiser(unet_config, audio_dim=audio_dim, regions=regions, speed_buckets=buckets, speed_dim=dim)
    missing, unexpected = net.load_state_dict(denoiser.state_dict(), strict=False)
    if unexpected or any(not k.startswith("speed_layers.") for k in missing):
        raise EnlivenError("cannot add speed layers to this denoiser")
    return net


def from_hallo(folder: str) -> tuple[dict, dict]:
    from enliven.engines.audio_diffusion.checkpoints import BASE, load_official, weights_root

    root = weights_root(folder)
    modules = load_official(root)
    return modules, read_json(root / BASE / "config.json")


def from_parts(init: dict) -> tuple[dict, dict]:
    from diffusers import AutoencoderKL

    from enliven.engines.audio_diffusion.checkpoints import _vae_state, audio_encoder
    from enliven.engines.audio_diffusion.model import (
        AudioProjection,
        FaceLocator,
        ImageProjection,
        build_denoiser,
        build_reference_net,
    )

    base = Path(init["base"])
    unet_dir = base / "unet" if (base / "unet").is_dir() else base
    for needed, what in ((init["motion_module"], "init.motion_module"), (init["vae"], "init.vae"),
                         (init["wav2vec"], "init.wav2vec")):
        if not needed:
            raise EnlivenError(f"starting from SD-1.5 needs {what} too")
    config = read_json(unet_dir / "config.json")
    sd, sd_path = read_tensors(unet_dir / "diffusion_pytorch_model.safetensors",
                               unet_dir / "diffusion_pytorch_model.bin")
    sd = {k: v for k, v in sd.items() if not k.startswith("conv_norm_out.")}  # Hallo's reference net has none
    reference_net = build_reference_net(config)
    reference_net.load_state_dict(sd, strict=True)
    dim = config["cross_attention_dim"]
    denoiser = build_denoiser(config, audio_dim=dim)
    missing, unexpected = denoiser.load_state_dict(
        {k: v for k, v in read_tensors(unet_dir / "diffusion_pytorch_model.safetensors",
                                       unet_dir / "diffusion_pytorch_model.bin")[0].items()}, strict=False)
    new = (".audio_modules.", ".motion_modules.")
    if unexpected or any(not any(n in f".{k}" for n in new) for k in missing):
        raise EnlivenError(f"{sd_path} does not fit the denoiser: {len(unexpected)} unexpected tensors, "
                           f"{len([k for k in missing if not any(n in f'.{k}' for n in new)])} missing")
    motion_path = Path(init["motion_module"])
    motion, _ = read_tensors(motion_path)
    own = denoiser.state_dict()
    wrong = [k for k, v in motion.items() if k not in own or own[k].shape != v.shape]
    if wrong:
        raise EnlivenError(f"{motion_path} does not fit the denoiser's motion modules ({wrong[0]}, …)")
    denoiser.load_state_dict(motion, strict=False)
    vae_dir = Path(init["vae"])
    vae = AutoencoderKL.from_config({k: v for k, v in read_json(vae_dir / "config.json").items()
                                     if not k.startswith("_")})
    vae.load_state_dict(_vae_state(read_tensors(vae_dir / "diffusion_pytorch_model.safetensors",
                                                vae_dir / "diffusion_pytorch_model.bin")[0]), strict=True)
    encoder = audio_encoder(Path(init["wav2vec"]))
    modules = {
        "vae": vae.eval(), "reference_net": reference_net, "denoiser": denoiser,
        "face_locator": FaceLocator(config["block_out_channels"][0]),
        "image_proj": ImageProjection(dim, embedding=init["face_embedding"]),
        "audio_proj": AudioProjection(5, encoder.config.num_hidden_layers, encoder.config.hidden_size, dim=dim),
        "audio_encoder": encoder,
    }
    return modules, config


def initial_modules(config: dict) -> tuple[dict, dict]:
    """(modules, the UNets' diffusers config) to train, speed layers added when the speed stage runs."""
    init = config["init"]
    modules, unet_config = from_hallo(init["hallo"]) if init["hallo"] else from_parts(init)
    unet_config = dict(unet_config, sample_size=config["data"]["size"] // 8)
    stage = config["stages"]["speed"]
    if stage["steps"] and not hasattr(modules["denoiser"], "speed_layers"):
        denoiser = modules["denoiser"]
        regions = any(".attn2_0." in k for k in denoiser.state_dict())
        audio_dim = modules["audio_proj"].dim
        modules["denoiser"] = _speed(denoiser, unet_config, audio_dim, regions,
                                     len(config["data"]["speed_edges"]) + 1, stage["speed_dim"])
    for name in ("vae", "audio_encoder"):
        modules[name].requires_grad_(False).eval()
    for part in ("reference_net", "denoiser", "face_locator", "image_proj", "audio_proj"):
        modules[part].train()
    return modules, unet_config


def blank_latent(vae, size: int) -> torch.Tensor:
    """The latent of an all-zero picture in [-1, 1] (mid grey): Hallo's zeroed motion frames."""
    from enliven.engines.audio_diffusion.pipeline import LATENT_SCALE

    with torch.no_grad():
        pixels = torch.zeros(1, 3, size, size, device=next(vae.parameters()).device)
        return vae.encode(pixels).latent_dist.mean * LATENT_SCALE
