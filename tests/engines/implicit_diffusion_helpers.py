"""Deterministic weights and inputs for HunyuanPortrait parity checks, shared by the tests and by the script that
ran the release's own code to make ``data/implicit_diffusion_release.npz``.

Every tensor is a function of its key in the release's files only (NumPy's PCG64 seeded by the key's CRC-32),
not of any module's initialisation, so the release's modules and ours get the same values when both are filled
from their (identical) key lists.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

# A reduced configuration the release's own classes can be built at (its IMAdapter fixes the cross-attention
# at 256 wide with 8 heads; its ResNets are fixed, so they stay at full size and get a smaller picture).
FIXTURE_SIZES = {
    "dino": {"embed_dim": 32, "num_heads": 2, "visual_adapter_dim": 32},
    "motion_proj": {
        "input_dim": 512,
        "output_dim": 26,
        "num_queries": 8,
        "intensity_embed_dim": 16,
        "width": 16,
        "heads": 2,
    },
    "pose_guider": {"channels": 8, "widths": [4, 8, 8, 16]},
}
FIXTURE_BUCKETS = (37, 91)  # (head, expression) ids fed to the refiner
RESNET_SIDE = 64  # the ResNets are fully convolutional up to their average pool: a small picture is enough


def fill_value(key: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array for tensor ``key``: matrices and kernels ~ N(0, 1/fan_in), norm scales and LayerScale
    ~ 1 + N(0, 0.1²), biases ~ N(0, 0.1²), learned tokens ~ N(0, 0.5²), BatchNorm statistics plausible."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    noise = rng.standard_normal(shape)
    name = key.rsplit(".", 1)[-1]
    if name == "running_var":
        return (0.5 + 0.5 * np.abs(noise)).astype(np.float32)
    if name in ("pos_embed", "cls_token", "register_tokens", "mask_token", "latents"):
        return (0.5 * noise).astype(np.float32)
    if len(shape) >= 2:
        return (noise / math.sqrt(math.prod(shape[1:]))).astype(np.float32)
    if name in ("weight", "gamma"):
        return (1 + 0.1 * noise).astype(np.float32)
    return (0.1 * noise).astype(np.float32)


def filled_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    return {key: fill_value(key, tuple(shape)) for key, shape in shapes.items()}


def fixture_inputs() -> dict[str, np.ndarray]:
    """The inputs both sides run on (float32; NumPy's PCG64 streams are stable across releases)."""
    rng = np.random.default_rng(2025)
    identity = rng.standard_normal((1, 1, 512))
    return {
        "picture": rng.standard_normal((1, 3, 224, 224)).astype(np.float32),
        "identity": (identity / np.linalg.norm(identity)).astype(np.float32),
        "face_crops": rng.random((2, 3, RESNET_SIDE, RESNET_SIDE)).astype(np.float32),
        "pose_crops": rng.random((2, 3, RESNET_SIDE, RESNET_SIDE)).astype(np.float32),
        "pose_pictures": rng.random((1, 3, 2, 32, 32)).astype(np.float32),
    }


def fill_module(module, prefix: str = "") -> None:
    """Overwrite every floating-point tensor of ``module`` with ``fill_value`` of ``prefix + key``."""
    import torch

    with torch.no_grad():
        for key, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.from_numpy(fill_value(prefix + key, tuple(tensor.shape))))
