"""Deterministic weights for parity fixtures, shared by the parity scripts (run in the release's environment) and
the tests (run in ours): every tensor is a function of its name and shape only, never of a module's
initialisation, so two implementations with the same state-dict keys get the same values.

Pure NumPy on purpose: the scripts import it beside a release's own diffusers, the tests beside ours.
"""

from __future__ import annotations

import math
import zlib

import numpy as np


def fill_value(key: str, shape: tuple[int, ...], gain: float = 1.0) -> np.ndarray:
    """A float32 array for tensor ``key``: NumPy's PCG64 seeded by the key's CRC-32. Matrices and kernels
    ~ N(0, 1/fan_in), norm scales and LayerScale ~ 1 + N(0, 0.1²), biases ~ N(0, 0.1²), learned tokens
    ~ N(0, 0.5²), BatchNorm statistics plausible (running variances in [0.5, ∞)). ``gain`` multiplies the matrices
    and kernels (a deep stack of plain convolutions keeps its input's signal with gain about √2 through SiLUs)."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    noise = rng.standard_normal(shape)
    name = key.rsplit(".", 1)[-1]
    if name == "running_var":
        return (0.5 + 0.5 * np.abs(noise)).astype(np.float32)
    if name in ("pos_embed", "cls_token", "register_tokens", "mask_token", "latents"):
        return (0.5 * noise).astype(np.float32)
    if len(shape) >= 2:
        return (gain * noise / math.sqrt(math.prod(shape[1:]))).astype(np.float32)
    if name in ("weight", "gamma"):
        return (1 + 0.1 * noise).astype(np.float32)
    return (0.1 * noise).astype(np.float32)


def filled_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    return {key: fill_value(key, tuple(shape)) for key, shape in shapes.items()}


def fill_module(module, prefix: str = "", skip=lambda key: False, gain: float = 1.0) -> None:
    """Overwrite every floating-point tensor of ``module`` (parameters and buffers in its state dict) with
    ``fill_value(prefix + key, shape, gain)``, except those ``skip(key)`` keeps (e.g. fixed sinusoidal position
    tables)."""
    import torch

    with torch.no_grad():
        for key, tensor in module.state_dict().items():
            if tensor.is_floating_point() and not skip(key):
                tensor.copy_(torch.from_numpy(fill_value(prefix + key, tuple(tensor.shape), gain)))
