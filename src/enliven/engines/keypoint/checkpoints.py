"""Official LivePortrait checkpoint layout, strict loading, and conversion to safetensors.

Layout (optionally under ``liveportrait/``)::

    base_models/appearance_feature_extractor.pth   motion_extractor.pth
    base_models/warping_module.pth                 spade_generator.pth
    retargeting_models/stitching_retargeting_module.pth   # {retarget_shoulder, retarget_mouth, retarget_eye}

A ``.safetensors`` file beside a ``.pth`` (``enliven weights convert``) is preferred. ``.pth`` files are
read with ``torch.load(weights_only=True)``: plain tensors only, never arbitrary pickled objects.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from torch import nn

from enliven.engines.keypoint.config import LivePortraitConfig, build_modules
from enliven.engines.tensor_files import read_tensors
from enliven.errors import EnlivenError
from enliven.io.files import atomic_output

BASE_MODELS = ("appearance_feature_extractor", "motion_extractor", "warping_module", "spade_generator")
RETARGETING_FILE = "stitching_retargeting_module"
# Our module name → its key inside the retargeting file.
RETARGETING_KEYS = {"stitching": "retarget_shoulder", "retarget_lip": "retarget_mouth", "retarget_eye": "retarget_eye"}


def checkpoint_root(weights_dir: str | os.PathLike) -> Path:
    root = Path(weights_dir)
    if (root / "liveportrait" / "base_models").is_dir():
        return root / "liveportrait"
    if (root / "base_models").is_dir():
        return root
    raise EnlivenError(
        f"{root} does not look like LivePortrait weights: no base_models/ folder in it or in liveportrait/")


def _read(stem: Path, nested: bool = False) -> dict[str, torch.Tensor]:
    """Tensors from ``stem.safetensors`` if present, else ``stem.pth`` (weights only; ``tensor_files``)."""
    return read_tensors(stem.with_suffix(".safetensors"), stem.with_suffix(".pth"), nested=nested)[0]


def _strip_prefix(state: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in state.items()}


def _load_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    state = dict(_strip_prefix(state))
    # BatchNorm counters are unused at inference; accept files saved without them.
    for key, value in module.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(first[:3])[:300]
        raise EnlivenError(f"{what} does not match the LivePortrait architecture: {detail}") from None


def _retargeting_state(root: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The retargeting file's three state dicts (the ``.pth`` holds them nested, our ``.safetensors`` flat as
    ``"retarget_eye.mlp.0.weight"``: both are read flat and split at the first dot)."""
    nested: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in _read(root / "retargeting_models" / RETARGETING_FILE, nested=True).items():
        head, _, rest = key.partition(".")
        nested.setdefault(head, {})[rest] = value
    return nested


def load_official(
    weights_dir: str | os.PathLike, config: LivePortraitConfig | None = None, device: str | torch.device = "cpu"
) -> dict[str, nn.Module]:
    """The seven LivePortrait modules with the official weights, in eval mode, loaded strictly."""
    root = checkpoint_root(weights_dir)
    modules = build_modules(config)
    for name in BASE_MODELS:
        _load_strict(modules[name], _read(root / "base_models" / name), f"base_models/{name}")
    retargeting = _retargeting_state(root)
    for name, key in RETARGETING_KEYS.items():
        if key not in retargeting:
            raise EnlivenError(f"{RETARGETING_FILE} has no {key!r} entry")
        _load_strict(modules[name], retargeting[key], f"{RETARGETING_FILE}[{key}]")
    return {name: m.to(device).eval() for name, m in modules.items()}


CONFIG_FILE = "enliven_config.json"


def load_config(weights_dir: str | os.PathLike) -> LivePortraitConfig:
    """The official configuration, unless the folder says otherwise (``enliven_config.json``, e.g. tiny test
    weights)."""
    path = checkpoint_root(weights_dir) / CONFIG_FILE
    if not path.is_file():
        return LivePortraitConfig()
    try:
        fields = json.loads(path.read_text())
        return LivePortraitConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    except (ValueError, TypeError) as exc:
        raise EnlivenError(f"bad {path}: {exc}") from None


def save_official(
    modules: dict[str, nn.Module], weights_dir: str | os.PathLike, config: LivePortraitConfig | None = None
) -> Path:
    """Write modules in the official ``.pth`` layout (for test checkpoints); a non-official ``config`` is
    recorded beside them so ``load_config`` finds it."""
    root = Path(weights_dir)
    (root / "base_models").mkdir(parents=True, exist_ok=True)
    if config is not None and config != LivePortraitConfig():
        (root / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(config)))
    (root / "retargeting_models").mkdir(parents=True, exist_ok=True)
    for name in BASE_MODELS:
        torch.save(modules[name].state_dict(), root / "base_models" / f"{name}.pth")
    torch.save(
        {key: modules[name].state_dict() for name, key in RETARGETING_KEYS.items()},
        root / "retargeting_models" / f"{RETARGETING_FILE}.pth",
    )
    return root


def convert_to_safetensors(weights_dir: str | os.PathLike) -> list[Path]:
    """Write a ``.safetensors`` beside each official ``.pth``; returns the files written."""
    from safetensors.torch import save_file

    root = checkpoint_root(weights_dir)
    written = []
    for name in BASE_MODELS:
        state = _strip_prefix(_read(root / "base_models" / name))
        written.append(_save(save_file, state, root / "base_models" / f"{name}.safetensors"))
    flat = {
        f"{head}.{k}": v for head, sd in _retargeting_state(root).items() for k, v in _strip_prefix(sd).items()
    }
    written.append(_save(save_file, flat, root / "retargeting_models" / f"{RETARGETING_FILE}.safetensors"))
    return written


def _save(save_file, state: dict[str, torch.Tensor], path: Path) -> Path:
    with atomic_output(path) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    return path
