"""Resumable checkpoints (tensors and JSON only, never pickle) and the engine's weights folder.

A checkpoint is a folder ``RUN/checkpoints/step-NNNNNNN`` (NNNNNNN: steps over all stages so far), written under a
temporary name and renamed into place, so a folder with that name is always whole:

* ``model.safetensors``: every trained module's full state (``reference_net.``, ``denoiser.``, ``face_locator.``,
  ``image_proj.``, ``audio_proj.`` prefixes), speed layers included when present;
* ``optimizer.safetensors``: AdamW's per-parameter tensors as ``state.<parameter name>.<key>`` (its step counter
  too, a tensor in PyTorch's AdamW), and a scaler's scale when fp16 loss scaling is on;
* ``rng.safetensors``: each process's torch CPU (and CUDA) generator state, ``rank<r>.cpu`` / ``rank<r>.cuda``;
* ``state.json``: stage, the stage's step, the total step, the world size, the parameter groups'
  hyper-parameters with their parameters by name, the configuration it ran with.

``RUN/weights/pretrained_models`` is what ``--engine audio-diffusion --weights RUN/weights`` loads: Hallo's layout
(``checkpoints.load_official``) with ``hallo/net.safetensors``; the motion modules also in
``motion_module/mm_sd_v15_v2.safetensors``; EMO's speed layers, which Hallo's layout has no place for, in
``hallo/speed_layers.safetensors``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from enliven.engines.audio_diffusion.checkpoints import BASE, HALLO, MOTION, NET_PARTS, VAE, WAV2VEC
from enliven.engines.audio_diffusion.training.net import PARTS
from enliven.errors import EnlivenError

PREFIX = "step-"


def _plain(state: dict) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def _save(tensors: dict, path: Path, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    from enliven.io.files import atomic_file

    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata or {"format": "pt"})


def model_state(modules: dict) -> dict[str, torch.Tensor]:
    out = {}
    for part in PARTS:
        out |= {f"{part}.{k}": v for k, v in _plain(modules[part].state_dict()).items()}
    return out


def optimizer_state(optimizer: torch.optim.Optimizer, names: list[str]) -> tuple[dict, list[dict]]:
    """(tensors, groups) of ``optimizer`` whose parameters, in order, are called ``names``."""
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            value = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"state.{names[index]}.{key}"] = value.detach().cpu().contiguous().clone()
    groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [names[i] for i in g["params"]]}
              for g in state["param_groups"]]
    return tensors, groups


def load_optimizer(optimizer: torch.optim.Optimizer, names: list[str], tensors: dict, groups: list[dict]) -> None:
    index = {name: i for i, name in enumerate(names)}
    if sorted(index) != sorted(n for g in groups for n in g["params"]):
        raise EnlivenError("the checkpoint's optimizer trains other parameters than this stage: "
                           "was the configuration changed?")
    state: dict = {}
    for key, value in tensors.items():
        name, field = key[len("state."):].rsplit(".", 1)
        state.setdefault(index[name], {})[field] = value
    optimizer.load_state_dict({"state": state, "param_groups": [
        {**{k: v for k, v in g.items() if k != "params"}, "params": [index[n] for n in g["params"]]}
        for g in groups]})


def checkpoints(run: Path) -> list[Path]:
    folder = run / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit()
             and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def save_checkpoint(run: Path, total: int, info: dict, modules: dict, optimizer_tensors: dict,
                    rng: dict[str, torch.Tensor], keep: int) -> Path:
    final = run / "checkpoints" / f"{PREFIX}{total:07d}"
    partial = final.with_name(final.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    _save(model_state(modules), partial / "model.safetensors")
    _save(optimizer_tensors, partial / "optimizer.safetensors")
    _save(rng, partial / "rng.safetensors")
    (partial / "state.json").write_text(json.dumps(info, indent=1))
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    for old in checkpoints(run)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_checkpoint(folder: Path) -> tuple[dict, dict, dict, dict]:
    """(info, model tensors, optimizer tensors, rng tensors) of a checkpoint folder."""
    from safetensors.torch import load_file

    if not (folder / "state.json").is_file():
        raise EnlivenError(f"{folder} is not a training checkpoint (no state.json)")
    info = json.loads((folder / "state.json").read_text())
    return (info, load_file(str(folder / "model.safetensors")), load_file(str(folder / "optimizer.safetensors")),
            load_file(str(folder / "rng.safetensors")))


def load_model(modules: dict, tensors: dict) -> None:
    for part in PARTS:
        own = {k[len(part) + 1:]: v for k, v in tensors.items() if k.startswith(part + ".")}
        missing, unexpected = modules[part].load_state_dict(own, strict=False)
        if missing or unexpected:
            raise EnlivenError(f"the checkpoint's {part} does not match the configured model "
                               f"({len(missing)} missing, {len(unexpected)} unexpected tensors)")


def export_weights(run: Path, modules: dict, unet_config: dict) -> Path:
    """Write (or refresh) ``run/weights/pretrained_models`` for the engine; returns ``run/weights``."""
    root = run / "weights" / "pretrained_models"
    for folder in (HALLO, BASE, "motion_module", VAE, WAV2VEC):
        (root / folder).mkdir(parents=True, exist_ok=True)
    net, speed = {}, {}
    for prefix, name in NET_PARTS.items():
        for key, value in _plain(modules[name].state_dict()).items():
            (speed if key.startswith("speed_layers.") else net)[f"{prefix}.{key}"] = value
    _save(net, root / HALLO / "net.safetensors")
    if speed:
        _save(speed, root / HALLO / "speed_layers.safetensors")
    _save({k[len("denoising_unet."):]: v for k, v in net.items() if ".motion_modules." in k},
          root / f"{MOTION}.safetensors")
    (root / BASE / "config.json").write_text(json.dumps(unet_config, indent=1))
    if not (root / VAE / "diffusion_pytorch_model.safetensors").is_file():
        _save(_plain(modules["vae"].state_dict()), root / VAE / "diffusion_pytorch_model.safetensors")
        (root / VAE / "config.json").write_text(json.dumps(dict(modules["vae"].config), indent=1))
    if not (root / WAV2VEC / "model.safetensors").is_file():
        encoder = modules["audio_encoder"]
        _save({f"wav2vec2.{k}": v for k, v in _plain(encoder.state_dict()).items()},
              root / WAV2VEC / "model.safetensors")
        (root / WAV2VEC / "config.json").write_text(encoder.config.to_json_string())
    return run / "weights"
