"""A tiny random Follow-Your-Emoji in the official layout: the test weights (the real ones are 5 GB).

Same structure as the release (four resolutions, two layers per block, 21 temporal modules, the guider's
three stride-2 steps), so every key count equals the release's; only the widths are small. The VAE keeps
four levels so latents stay at 1/8 of the picture.
"""

from __future__ import annotations

import torch

from enliven.engines.diffusion.unet import build_denoiser, build_reference_net
from enliven.engines.diffusion.unet import sd_unet_config as tiny_unet_config
from enliven.engines.landmark_diffusion.checkpoints import (
    TEMPORAL_ATTENTION_BLOCKS,
    TEMPORAL_HEADS,
    TEMPORAL_LAYERS,
    save_official,
)
from enliven.engines.landmark_diffusion.guider import LandmarkGuider


def tiny_modules(seed: int = 0, encoder_width: int = 64, cross_attention_dim: int = 32) -> tuple[dict, dict]:
    """(modules, unet config) with random weights. The release's ``clip_fc`` is 1024 → 768: pass those widths to
    run the release's own code on the same files."""
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    unet_config = tiny_unet_config(cross_attention_dim)
    modules = {
        "vae": AutoencoderKL(
            down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
            block_out_channels=[8, 8, 16, 16], layers_per_block=1, latent_channels=4, norm_num_groups=4,
            sample_size=64,
        ),
        "image_encoder": CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=encoder_width, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
            image_size=224, patch_size=32, projection_dim=16,
        )),
        "reference_net": build_reference_net(unet_config, encoder_width),
        "denoiser": build_denoiser(unet_config, encoder_width, heads=TEMPORAL_HEADS, layers=TEMPORAL_LAYERS,
                                   attention_blocks=TEMPORAL_ATTENTION_BLOCKS, max_frames=32),
        "guider": LandmarkGuider(out_channels=unet_config["block_out_channels"][0], widths=(4, 8, 8, 16)),
    }
    return modules, unet_config


def save_tiny_official(weights_dir, seed: int = 0, **widths):
    """Write a tiny random Follow-Your-Emoji under ``weights_dir/pretrained_models``; returns that folder."""
    modules, unet_config = tiny_modules(seed, **widths)
    return save_official(modules, weights_dir, unet_config)
