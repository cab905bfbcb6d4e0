"""What every diffusion engine does before it samples: check its extra is installed, pick the device, and load
the official weights in the release's precision for it."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from enliven.errors import EnlivenError

DEVICES = ("auto", "cpu", "cuda")


def require_extra(engine: str, modules: tuple[str, ...]) -> None:
    """One line naming the extra to install if any of ``modules`` is missing."""
    if any(importlib.util.find_spec(module) is None for module in modules):
        raise EnlivenError(f"engine {engine!r} needs the diffusion extra: pip install 'enliven[diffusion]'")


def resolve_device(name) -> str:
    """``auto`` → the GPU if PyTorch sees one, else the CPU; ``cuda``/``cuda:N`` only where there is one."""
    import torch

    if not isinstance(name, str) or not (name in DEVICES or name.startswith("cuda:")):
        raise EnlivenError(f"device must be auto, cpu or cuda, got {name!r}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EnlivenError(f"device {name} asked for, but PyTorch sees no CUDA GPU here; use --device cpu")
    return name


def load_for_device(load_official: Callable[..., dict], weights_name: str, folder, device: str) -> dict:
    """The engine's modules from ``folder`` (``--weights``) or the weight store, on ``device``: fp16 on a GPU, as
    the releases run; fp32 on a CPU, which has no fast fp16 convolutions."""
    import torch

    from enliven import weights as weight_store

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    return load_official(weight_store.resolve(weights_name, folder), device=device, dtype=dtype)


def device_dtype(module) -> tuple:
    """The device and dtype a loaded model runs in (those of its first convolution's weight: every module of a
    release is put on one device, and the denoiser's precision is the run's)."""
    weight = module.conv_in.weight
    return weight.device, weight.dtype
