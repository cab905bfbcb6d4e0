"""HunyuanPortrait's official ``pretrained_weights/`` layout: strict, counted loading, and safetensors copies.

Layout (``--weights`` may name ``pretrained_weights/`` or the folder holding it)::

    hyportrait/dino.pth  expression.pth  headpose.pth  image_proj.pth  motion_proj.pth  pose_guider.pth  unet.pth
    unet/config.json                 (stabilityai's SVD-xt UNet config; the weights are all in hyportrait/unet.pth)
    scheduler/scheduler_config.json
    vae/config.json + diffusion_pytorch_model.fp16.safetensors
    arcface.onnx                     (optional: without it the release uses a zero identity)

Sizes: the UNet, VAE and scheduler from their configs in the folder, as the release reads them. What the
release fixes in its code (``RELEASE_SIZES``) is the default, and can be changed per module with
``sizes={"dino": {"embed_dim": 64, ...}, ...}`` or by a ``hyportrait/enliven_sizes.json`` of the same form
(ours, not the release's: test weights carry it so they load without arguments); every tensor's shape is then
checked against those sizes, with one line naming the first that differs.

Renames: ``image_proj.pth`` holds the inner Linear's ``weight`` and ``bias`` (the release loads it into
``ImageProjector.linear``); we prefix them with ``linear.``. Nothing else is renamed: every other file's keys
are our modules' own. Tensors only: safetensors, or ``torch.load(weights_only=True)``; a ``.safetensors`` beside
a ``.pth`` (``convert_to_safetensors``) is preferred.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch
from torch import nn

from enliven.engines.implicit_diffusion.appearance import ADAPTER_BLOCKS, AppearanceEncoder, ImageProjector
from enliven.engines.implicit_diffusion.implicit_motion import (
    HeadExpression,
    HeadPose,
    IntensityAwareMotionRefiner,
    PoseGuider,
)
from enliven.engines.tensor_files import LoadReport, read_json, read_tensors, write_safetensors_copy
from enliven.errors import EnlivenError

HYPORTRAIT = "hyportrait"
SIZES_FILE = "enliven_sizes.json"
VAE_FILES = ("diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.safetensors")
MODULE_FILES = ("dino", "image_proj", "pose_guider", "expression", "headpose", "motion_proj", "unet")

# What the release fixes in code (inference.py, vision_transformer.vit_large, the modules' defaults).
RELEASE_SIZES: dict[str, dict] = {
    "dino": {
        "embed_dim": 1024,
        "depth": 24,
        "num_heads": 16,
        "patch_size": 14,
        "pos_grid": 37,
        "register_tokens": 4,
        "adapter_blocks": ADAPTER_BLOCKS,
        "visual_adapter_dim": 384,
        "adapter_attention_dim": 256,
        "adapter_heads": 8,
        "id_dim": 512,
    },
    "image_proj": {"tokens": 261, "queries": 64},
    "expression": {"out_dim": 512, "width": 64, "groups": 1},
    "headpose": {"width": 64, "groups": 32},
    "motion_proj": {
        "input_dim": 512,
        "output_dim": 1018,
        "num_queries": 64,
        "intensity_embed_dim": 768,
        "width": 768,
        "layers": 6,
        "heads": 8,
        "buckets": 128,
    },
    "pose_guider": {"channels": 320, "widths": (16, 32, 96, 256)},
}
_BUILDERS = {
    "dino": AppearanceEncoder,
    "image_proj": ImageProjector,
    "expression": HeadExpression,
    "headpose": HeadPose,
    "motion_proj": IntensityAwareMotionRefiner,
    "pose_guider": PoseGuider,
}


def weights_root(weights_dir: str | os.PathLike) -> Path:
    root = Path(weights_dir)
    for candidate in (root, root / "pretrained_weights"):
        if (candidate / HYPORTRAIT).is_dir():
            return candidate
    raise EnlivenError(
        f"{root} does not look like HunyuanPortrait weights: need {HYPORTRAIT}/ in it or in pretrained_weights/"
    )


def _checkpoint(stem: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """``stem.safetensors`` if present, else ``stem.pth``."""
    return read_tensors(stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".pth"))


def resolve_sizes(root: Path | None = None, sizes: dict | None = None) -> dict[str, dict]:
    """``RELEASE_SIZES`` updated by the folder's ``enliven_sizes.json`` (if any), then by ``sizes``."""
    resolved = copy.deepcopy(RELEASE_SIZES)
    overrides = []
    if root is not None and (root / HYPORTRAIT / SIZES_FILE).is_file():
        overrides.append((str(root / HYPORTRAIT / SIZES_FILE), read_json(root / HYPORTRAIT / SIZES_FILE)))
    if sizes:
        overrides.append(("sizes", sizes))
    for origin, override in overrides:
        for module, values in override.items():
            if module not in resolved or not isinstance(values, dict):
                raise EnlivenError(
                    f"{origin}: unknown module {module!r} (sizes can be given for {', '.join(RELEASE_SIZES)})"
                )
            unknown = sorted(set(values) - set(resolved[module]))
            if unknown:
                raise EnlivenError(
                    f"{origin}: {module} has no size {unknown[0]!r} (known: {', '.join(resolved[module])})"
                )
            resolved[module].update(values)
    return resolved


def build_modules(root: Path, sizes: dict[str, dict]) -> dict[str, nn.Module]:
    """The modules at the given sizes and the folder's UNet/VAE configs, randomly initialised (on the current
    default device: ``load_official`` builds them on the meta device, so nothing is allocated twice)."""
    from diffusers import AutoencoderKLTemporalDecoder

    from enliven.engines.implicit_diffusion.svd_unet import build_unet

    modules = {}
    for name, builder in _BUILDERS.items():
        try:
            modules[name] = builder(**sizes[name])
        except (ValueError, RuntimeError, AssertionError) as exc:
            raise EnlivenError(f"cannot build {name} at sizes {sizes[name]}: {exc}") from None
    modules["unet"] = build_unet(read_json(root / "unet" / "config.json"))
    vae_config = {k: v for k, v in read_json(root / "vae" / "config.json").items() if not k.startswith("_")}
    modules["vae"] = AutoencoderKLTemporalDecoder.from_config(vae_config)
    return modules


def _load_exact(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    name: str,
    report: LoadReport,
    sized: str | None = None,
) -> None:
    """Load ``state`` into ``module`` with every key matched both ways and every shape equal; one line if not.
    ``sized``: the module's name in ``sizes``, named in the error when only shapes differ."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    report.loaded[name] = len(state)
    report.missing[name], report.unexpected[name] = missing, unexpected
    if missing or unexpected:
        bad = (missing + unexpected)[:3]
        raise EnlivenError(
            f"{name} does not match the HunyuanPortrait architecture: {len(missing)} missing and "
            f"{len(unexpected)} unexpected tensors (e.g. {', '.join(bad)})"
        )
    for key, value in state.items():
        if own[key].shape != value.shape:
            hint = f"; give its sizes (sizes={{'{sized}': {{...}}}})" if sized else ""
            raise EnlivenError(
                f"{name}: {key} is {list(value.shape)} in the file but {list(own[key].shape)} at the sizes used{hint}"
            )
    # the file's tensors become the parameters (the module was built on the meta device: no second copy)
    module.load_state_dict(state, strict=True, assign=True)
    unset = [key for key, tensor in (*module.named_parameters(), *module.named_buffers()) if tensor.is_meta]
    if unset:  # a buffer the files do not hold would have no value: a bug in our modules, not in the files
        raise RuntimeError(f"{name}: {len(unset)} tensors of the module have no value after loading (e.g. {unset[0]})")


def arcface_session(path: str | os.PathLike, providers: list | None = None):
    """An onnxruntime session of ``arcface.onnx`` (CPU unless ``providers`` says otherwise)."""
    try:
        import onnxruntime
    except ImportError:
        raise EnlivenError("reading arcface.onnx needs onnxruntime: pip install 'enliven[onnx]'") from None
    try:
        return onnxruntime.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for a broken file
        raise EnlivenError(f"cannot load {path} ({type(exc).__name__}: {exc})") from None


def load_official(
    weights_dir: str | os.PathLike,
    sizes: dict | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | dict[str, torch.dtype] = torch.float32,
    report: LoadReport | None = None,
    providers: list | None = None,
) -> dict:
    """HunyuanPortrait's modules with the official weights, in eval mode: ``dino``, ``image_proj``,
    ``pose_guider``, ``expression``, ``headpose``, ``motion_proj``, ``unet``, ``vae``; ``arcface`` (an
    onnxruntime session, when ``arcface.onnx`` is there) and ``scheduler_config`` (the folder's dict).

    ``dtype``: one for all, or per module name (others float32; the release runs ``unet``, ``vae``, ``dino``,
    ``image_proj`` and ``pose_guider`` in fp16 and the three motion modules in fp32). ``report`` (if given) is
    filled with the per-file counts. ``providers``: onnxruntime's, for ArcFace (default: CPU)."""
    root = weights_root(weights_dir)
    report = report if report is not None else LoadReport()
    resolved = resolve_sizes(root, sizes)
    scheduler_config = read_json(root / "scheduler" / "scheduler_config.json")
    with torch.device("meta"):
        modules = build_modules(root, resolved)
    for name in (*MODULE_FILES, "vae"):
        if name == "vae":
            state, path = read_tensors(*(root / "vae" / f for f in VAE_FILES))
        else:
            state, path = _checkpoint(root / HYPORTRAIT / name)
        if name == "image_proj":
            state = {f"linear.{k}": v for k, v in state.items()}
        wanted = dtype.get(name, torch.float32) if isinstance(dtype, dict) else dtype
        # cast the file's tensors, not the module (diffusers warns on any module cast, even fp16 → fp32)
        state = {k: v.to(wanted) if v.is_floating_point() else v for k, v in state.items()}
        _load_exact(modules[name], state, str(path.relative_to(root)), report, name if name in resolved else None)
        modules[name].to(device)
    models: dict = {name: module.eval().requires_grad_(False) for name, module in modules.items()}
    if (root / "arcface.onnx").is_file():
        models["arcface"] = arcface_session(root / "arcface.onnx", providers)
    models["scheduler_config"] = scheduler_config
    return models


def save_official(
    modules: dict[str, nn.Module], weights_dir: str | os.PathLike, unet_config: dict, sizes: dict | None = None
) -> Path:
    """Write ``modules`` in the official layout under ``weights_dir/pretrained_weights`` (test weights): each
    module's tensors as the release names them, the UNet and VAE configs, and ``sizes`` (differences from
    ``RELEASE_SIZES``) as ``hyportrait/enliven_sizes.json``. The scheduler config and ``arcface.onnx`` are
    the caller's (``tiny.save_tiny`` writes both)."""
    from safetensors.torch import save_file

    root = Path(weights_dir) / "pretrained_weights"
    for folder in (HYPORTRAIT, "unet", "vae", "scheduler"):
        (root / folder).mkdir(parents=True, exist_ok=True)

    def plain(module):
        return {k: v.detach().contiguous().clone() for k, v in module.state_dict().items()}

    for name in MODULE_FILES:
        state = plain(modules[name])
        if name == "image_proj":
            state = {k.removeprefix("linear."): v for k, v in state.items()}
        torch.save(state, root / HYPORTRAIT / f"{name}.pth")
    (root / "unet" / "config.json").write_text(json.dumps(unet_config, indent=1))
    vae = modules["vae"]
    (root / "vae" / "config.json").write_text(json.dumps(dict(vae.config), indent=1))
    save_file({k: v.half() for k, v in plain(vae).items()}, str(root / "vae" / VAE_FILES[0]), metadata={"format": "pt"})
    if sizes:
        (root / HYPORTRAIT / SIZES_FILE).write_text(json.dumps(sizes, indent=1))
    return root


def convert_to_safetensors(weights_dir: str | os.PathLike) -> list[Path]:
    """Write a ``.safetensors`` copy beside each ``hyportrait/*.pth`` (loading prefers it); returns the new files."""
    root = weights_root(weights_dir)
    written = []
    for path in sorted((root / HYPORTRAIT).glob("*.pth")):
        if write_safetensors_copy(path, path.with_suffix(".safetensors")):
            written.append(path.with_suffix(".safetensors"))
    return written
