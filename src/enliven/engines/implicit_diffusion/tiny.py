"""A tiny random HunyuanPortrait in the official ``pretrained_weights/`` layout: the test weights.

Same structure as the release (24 DINO blocks with adapters in the same six, ResNet-50 / ResNet-18 depths,
6 refiner blocks, the guider's three stride-2 steps, SVD's four UNet levels with two layers each, the VAE's
four levels), so every file's tensor count is the release's; only the widths are small. The sizes that differ
from the release's are written to ``hyportrait/enliven_sizes.json``, so ``load_official(folder)`` needs no
arguments. ``arcface.onnx`` is a small random network of the same signature (1×3×112×112 → 1×512).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from enliven.engines.implicit_diffusion.checkpoints import _BUILDERS, resolve_sizes, save_official

# Cross-attention width: the DINO tokens (image_proj keeps their width) and the motion tokens (refiner output
# + 6 pose values) both have it.
TINY_WIDTH = 32
TINY_SIZES = {
    "dino": {
        "embed_dim": TINY_WIDTH,
        "num_heads": 2,
        "visual_adapter_dim": 32,
        "adapter_attention_dim": 16,
        "adapter_heads": 2,
    },
    "expression": {"out_dim": 32, "width": 8, "groups": 1},
    "headpose": {"width": 8, "groups": 4},
    "motion_proj": {"input_dim": 32, "output_dim": TINY_WIDTH - 6, "intensity_embed_dim": 16, "width": 16, "heads": 2},
    "pose_guider": {"channels": 32, "widths": (4, 8, 8, 16)},
}

# The release's scheduler_config.json (SVD-xt's), the values diffusers 0.29 reads.
SCHEDULER_CONFIG = {
    "_class_name": "EulerDiscreteScheduler",
    "_diffusers_version": "0.24.0.dev0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "trained_betas": None,
    "use_karras_sigmas": True,
}


def tiny_unet_config(widths: tuple[int, ...] = (32, 64, 96, 96), cross_attention_dim: int = TINY_WIDTH) -> dict:
    """SVD-xt's UNet config at small widths (multiples of 32: its blocks normalise in 32 groups)."""
    return {
        "_class_name": "UNetSpatioTemporalConditionModel",
        "sample_size": 8,
        "in_channels": 8,
        "out_channels": 4,
        "down_block_types": ["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
        "up_block_types": ["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
        "block_out_channels": list(widths),
        "addition_time_embed_dim": 8,
        "projection_class_embeddings_input_dim": 24,
        "layers_per_block": 2,
        "cross_attention_dim": cross_attention_dim,
        "transformer_layers_per_block": 1,
        "num_attention_heads": [2, 4, 4, 4],
        "num_frames": 25,
    }


def tiny_vae_config() -> dict:
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "block_out_channels": [32, 64, 96, 96],
        "layers_per_block": 2,
        "latent_channels": 4,
        "sample_size": 64,
        "scaling_factor": 0.18215,
        "force_upcast": True,
    }


def tiny_modules(seed: int = 0, sizes: dict | None = None) -> tuple[dict, dict, dict]:
    """(modules, unet config, sizes) with random weights; ``sizes`` as ``load_official`` takes them."""
    from diffusers import AutoencoderKLTemporalDecoder

    from enliven.engines.implicit_diffusion.svd_unet import build_unet

    sizes = TINY_SIZES if sizes is None else sizes
    resolved = resolve_sizes(None, sizes)
    generator = torch.manual_seed(seed)
    modules = {name: builder(**resolved[name]) for name, builder in _BUILDERS.items()}
    unet_config = tiny_unet_config(cross_attention_dim=resolved["dino"]["embed_dim"])
    modules["unet"] = build_unet(unet_config)
    modules["vae"] = AutoencoderKLTemporalDecoder(**tiny_vae_config())
    # Random values everywhere, not the modules' initial ones: zero-initialised layers (AdaLN, the guider's
    # conv_out, LayerScale ones, BatchNorm's statistics) would hide a misplaced tensor.
    with torch.no_grad():
        for module in modules.values():
            for key, tensor in module.state_dict().items():
                if tensor.is_floating_point():
                    scale = 1.0 if key.endswith(("running_var", ".gamma")) else 0.2
                    values = torch.randn(tensor.shape, generator=generator) * scale
                    tensor.copy_(values.abs() + 0.5 if key.endswith("running_var") else values)
    return modules, unet_config, sizes


def save_arcface_onnx(path: str | Path, seed: int = 0) -> Path:
    """A small random ONNX network with ArcFace's signature: input ``data`` 1×3×112×112 → 1×512
    (16×16 patches to 4 channels, then a fully connected layer), so the output depends on where the face is."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    conv = rng.normal(0, 0.1, (4, 3, 16, 16)).astype(np.float32)
    fc = rng.normal(0, 0.1, (4 * 7 * 7, 512)).astype(np.float32)
    bias = rng.normal(0, 0.1, (512,)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["data", "conv_w"], ["patches"], kernel_shape=[16, 16], strides=[16, 16]),
        helper.make_node("Flatten", ["patches"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["fc1"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_arcface",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 512])],
        [
            numpy_helper.from_array(conv, "conv_w"),
            numpy_helper.from_array(fc, "fc_w"),
            numpy_helper.from_array(bias, "fc_b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by onnxruntime releases older than the onnx package
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def save_tiny(weights_dir: str | Path, seed: int = 0, arcface: bool = True) -> Path:
    """Write a tiny random HunyuanPortrait under ``weights_dir/pretrained_weights``; returns that folder.
    ``load_official(weights_dir)`` reads it with no further arguments."""
    modules, unet_config, sizes = tiny_modules(seed)
    root = save_official(modules, weights_dir, unet_config, sizes=sizes)
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG, indent=1))
    if arcface:
        save_arcface_onnx(root / "arcface.onnx", seed)
    return root
