"""The weights-file layer of every engine: the releases' weight files read as tensors only (safetensors, or
``torch.load(weights_only=True)``: never unpickling objects), their JSON configs, and safetensors copies written
whole; each engine's ``checkpoints`` module reads through it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from enliven.errors import EnlivenError
from enliven.io.files import atomic_output


@dataclass
class LoadReport:
    """Tensors read per file, and what did not match (empty lists when the load is clean)."""

    loaded: dict[str, int] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)
    unexpected: dict[str, list[str]] = field(default_factory=dict)


def read_tensors(*candidates: Path, lazy: bool = False, nested: bool = False) -> tuple[dict[str, torch.Tensor], Path]:
    """The first of ``candidates`` that exists, as a flat name → tensor dict (a ``state_dict`` wrapper, as in
    AnimateDiff's checkpoints, and DataParallel's ``module.`` prefixes are taken off), and its path. ``lazy``:
    memory-map a ``.pth`` instead of reading it whole. ``nested``: the file may hold a dict of state dicts
    (LivePortrait's retargeting file), given flat as ``"outer.inner"`` names, as its safetensors copy keeps them."""
    for path in candidates:
        if not path.is_file():
            continue
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(path)), path
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=lazy)
        except Exception as exc:  # noqa: BLE001 - a pickle with objects, or a broken file
            raise EnlivenError(f"cannot read {path} as plain tensors ({type(exc).__name__}: {exc})") from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if nested and isinstance(state, dict) and all(isinstance(v, dict) for v in state.values()):
            state = {f"{outer}.{k.removeprefix('module.')}": v for outer, inner in state.items()
                     for k, v in inner.items()}
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise EnlivenError(f"{path} is not a flat dictionary of tensors")
        return {k.removeprefix("module."): v for k, v in state.items()}, path
    raise EnlivenError(f"missing checkpoint: {candidates[-1]}")


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise EnlivenError(f"missing {path}")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise EnlivenError(f"bad {path}: {exc}") from None


def write_safetensors_copy(source: Path, target: Path) -> bool:
    """Write ``source``'s tensors to ``target`` unless it exists; True if written (whole, or not at all: loading
    prefers a ``.safetensors``, so half a file must never be left)."""
    from safetensors.torch import save_file

    if target.exists():
        return False
    state, _ = read_tensors(source)
    with atomic_output(target) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"format": "pt"})
    return True
