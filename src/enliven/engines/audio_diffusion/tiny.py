"""A tiny random Hallo in the official layout: the test weights (the real ones are about 6 GB).

Same structure as the release (four resolutions, two layers per block, the audio modules with their three
region attentions, 21 motion modules, the face locator's three stride-2 steps, a wav2vec2 with every part), so
the key names are the release's; only the widths are small. The VAE keeps four levels so latents stay at 1/8 of
the picture (64² pictures, 8² latents).
"""

from __future__ import annotations

import torch

from enliven.engines.audio_diffusion.checkpoints import save_official
from enliven.engines.audio_diffusion.model import (
    AudioProjection,
    FaceLocator,
    ImageProjection,
    build_denoiser,
    build_reference_net,
)
from enliven.engines.diffusion.unet import sd_unet_config as tiny_unet_config


def tiny_wav2vec_config():
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, vocab_size=32,
        do_stable_layer_norm=False, feat_extract_norm="group",
    )


def tiny_modules(seed: int = 0, dim: int = 32, face_embedding: int = 16,
                 widths: tuple[int, ...] = (32, 64, 128, 128)) -> tuple[dict, dict]:
    """(modules, unet config) with random weights; every zero-initialised output (face locator, zero
    convolutions, motion modules' ``proj_out``) gets random values too, so tests see each part act.
    ``widths``: the UNets' block widths (multiples of 32); the engine's tests use narrower ones to load fast."""
    from diffusers import AutoencoderKL
    from transformers import Wav2Vec2Model

    torch.manual_seed(seed)
    config = tiny_unet_config(dim, tuple(widths))
    wav = Wav2Vec2Model(tiny_wav2vec_config())
    modules = {
        "vae": AutoencoderKL(
            down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
            block_out_channels=[8, 8, 16, 16], layers_per_block=1, latent_channels=4, norm_num_groups=4,
            sample_size=64,
        ),
        "reference_net": build_reference_net(config),
        "denoiser": build_denoiser(config, audio_dim=dim),
        "face_locator": FaceLocator(config["block_out_channels"][0], widths=(4, 8, 8, 16)),
        "image_proj": ImageProjection(dim, embedding=face_embedding, tokens=4),
        "audio_proj": AudioProjection(5, wav.config.num_hidden_layers, wav.config.hidden_size, 24, dim, 4),
        "audio_encoder": wav,
    }
    with torch.no_grad():
        for name, parameter in modules["denoiser"].named_parameters():
            if "zero_conv" in name or "proj_out" in name:
                parameter.normal_(0, 0.05)
        for parameter in modules["face_locator"].conv_out.parameters():
            parameter.normal_(0, 0.05)
    return modules, config


def save_tiny_official(weights_dir, seed: int = 0, **sizes):
    """Write a tiny random Hallo under ``weights_dir/pretrained_models``; returns that folder."""
    modules, config = tiny_modules(seed, **sizes)
    return save_official(modules, weights_dir, config)
