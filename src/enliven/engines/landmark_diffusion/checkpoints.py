"""Follow-Your-Emoji's official ``pretrained_models/`` layout: strict, counted loading, and writing it (test weights).

Layout (``--weights`` may name ``pretrained_models/`` or the folder holding it)::

    follow-your-emoji/lmk_guider.pth   referencenet.pth   unet.pth     (HF YueMafighting/FollowYourEmoji)
    sd-image-variations-diffusers/unet/config.json + diffusion_pytorch_model.{safetensors,bin}
    sd-image-variations-diffusers/image_encoder/config.json + model.safetensors | pytorch_model.bin
    sd-vae-ft-mse/config.json + diffusion_pytorch_model.{safetensors,bin}
    AnimateDiff/mm_sd_v15_v2.ckpt

Every size comes from that folder: the UNets from ``unet/config.json``, the image encoder and VAE from their
configs, the temporal modules' frame positions from the motion checkpoint's ``pe`` buffers, the guider from
``lmk_guider.pth``'s tensor shapes (the release ships no config for it), ``clip_fc`` from the image encoder's
width and the UNet's cross-attention width. What the folder cannot say comes from the release's
``configs/infer.yaml``: 8 heads, 1 block and 2 self-attentions per temporal module.

Loading follows the release's order (base UNet, then the AnimateDiff motion module, then Follow-Your-Emoji's
fine-tuned files, which hold every parameter of the reference net and the denoiser). The FYE files must match
our modules exactly (no missing, no unexpected keys, same shapes). The base UNet and motion-module files are
checked the same way against the parts they initialise (every tensor must land on a parameter of its shape),
but their values are overwritten by the FYE files, so they are only mapped from disk, not copied. Renaming:
none for the FYE files and the motion module; the VAE's pre-0.14 diffusers attention names (``query``, ``key``,
``value``, ``proj_attn``) become ``to_q``, ``to_k``, ``to_v``, ``to_out.0``; an image encoder's
``position_ids`` buffer (saved by older transformers) is checked to be 0, 1, 2, … and dropped.
Tensors only: safetensors, or ``torch.load(weights_only=True)``. A ``.safetensors`` beside a ``.pth``/``.ckpt``
(``convert_to_safetensors``) is preferred.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from enliven.engines.diffusion.unet import build_denoiser, build_reference_net
from enliven.engines.landmark_diffusion.guider import LandmarkGuider
from enliven.engines.tensor_files import LoadReport, read_json, read_tensors, write_safetensors_copy
from enliven.errors import EnlivenError

FYE = "follow-your-emoji"
BASE = "sd-image-variations-diffusers"
VAE = "sd-vae-ft-mse"
MOTION = "AnimateDiff/mm_sd_v15_v2"
# The release's configs/infer.yaml (motion_module_kwargs): not recorded in the weights folder.
TEMPORAL_HEADS, TEMPORAL_LAYERS, TEMPORAL_ATTENTION_BLOCKS = 8, 1, 2
_VAE_RENAMES = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}


def weights_root(weights_dir: str | os.PathLike) -> Path:
    root = Path(weights_dir)
    for candidate in (root, root / "pretrained_models"):
        if (candidate / FYE).is_dir() and (candidate / BASE).is_dir():
            return candidate
    raise EnlivenError(
        f"{root} does not look like Follow-Your-Emoji weights: need {FYE}/ and {BASE}/ in it or in pretrained_models/"
    )


def _checkpoint(stem: Path, lazy: bool = False) -> tuple[dict[str, torch.Tensor], Path]:
    """``stem.safetensors`` if present, else ``stem.pth`` / ``stem.ckpt``."""
    return read_tensors(*(stem.with_name(stem.name + s) for s in (".safetensors", ".pth", ".ckpt")), lazy=lazy)


def _diffusers_weights(folder: Path, lazy: bool = False) -> tuple[dict[str, torch.Tensor], Path]:
    return read_tensors(folder / "diffusion_pytorch_model.safetensors", folder / "diffusion_pytorch_model.bin",
                         lazy=lazy)


def _config(folder: Path) -> dict:
    return read_json(folder / "config.json")


def _match(module_state: dict[str, torch.Tensor], state: dict[str, torch.Tensor], name: str, report: LoadReport,
           expect_all: bool = True) -> None:
    """Record in ``report`` how ``state`` (a file's tensors) fits ``module_state``; raise on any mismatch."""
    missing = sorted(set(module_state) - set(state)) if expect_all else []
    unexpected = sorted(k for k in state if k not in module_state or module_state[k].shape != state[k].shape)
    report.loaded[name] = len(state)
    report.missing[name], report.unexpected[name] = missing, unexpected
    if missing or unexpected:
        bad = (missing + unexpected)[:3]
        raise EnlivenError(
            f"{name} does not match the Follow-Your-Emoji architecture: {len(missing)} missing and "
            f"{len(unexpected)} unexpected or misshapen tensors (e.g. {', '.join(bad)})"
        )


def _load_exact(module: nn.Module, state: dict[str, torch.Tensor], name: str, report: LoadReport) -> None:
    _match(module.state_dict(), state, name, report)
    module.load_state_dict(state, strict=True)


def _vae_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        for old, new in _VAE_RENAMES.items():
            if old in key and ".attentions." in key:
                key = key.replace(old, new)
                if value.ndim == 4:  # very old checkpoints saved these projections as 1×1 convolutions
                    value = value[:, :, 0, 0]
        renamed[key] = value
    return renamed


def _image_encoder_state(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    key = "vision_model.embeddings.position_ids"
    if key in state and key not in model.state_dict():
        ids = state.pop(key)
        if not torch.equal(ids.flatten().long(), torch.arange(ids.numel())):
            raise EnlivenError("the image encoder's position_ids are not 0, 1, 2, …: not a CLIP vision model")
    return state


def build_modules(root: Path) -> dict[str, nn.Module]:
    """The modules with the sizes the folder's configs and tensors give, randomly initialised."""
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    unet_config = _config(root / BASE / "unet")
    encoder_config = CLIPVisionConfig.from_dict(_config(root / BASE / "image_encoder"))
    encoder_dim = encoder_config.hidden_size
    motion, _ = _checkpoint(root / MOTION, lazy=True)
    positions = [v.shape[1] for k, v in motion.items() if k.endswith("pos_encoder.pe")]
    guider_state, _ = _checkpoint(root / FYE / "lmk_guider", lazy=True)
    return {
        "vae": AutoencoderKL.from_config({k: v for k, v in _config(root / VAE).items() if not k.startswith("_")}),
        "image_encoder": CLIPVisionModelWithProjection(encoder_config),
        "reference_net": build_reference_net(unet_config, encoder_dim),
        "denoiser": build_denoiser(
            unet_config, encoder_dim, heads=TEMPORAL_HEADS, layers=TEMPORAL_LAYERS,
            attention_blocks=TEMPORAL_ATTENTION_BLOCKS, max_frames=max(positions, default=32),
        ),
        "guider": LandmarkGuider(**LandmarkGuider.sizes_from_state(guider_state)),
    }


def load_official(
    weights_dir: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
    report: LoadReport | None = None,
) -> dict[str, nn.Module]:
    """Follow-Your-Emoji's modules with the official weights, in eval mode: ``vae``, ``image_encoder``,
    ``reference_net``, ``denoiser``, ``guider``. ``report`` (if given) is filled with the per-file counts."""
    root = weights_root(weights_dir)
    report = report if report is not None else LoadReport()
    modules = build_modules(root)
    denoiser_state = modules["denoiser"].state_dict()
    reference_state = modules["reference_net"].state_dict()

    # the release's initialisation: the base UNet into both UNets, the motion module into the denoiser
    base, base_path = _diffusers_weights(root / BASE / "unet", lazy=True)
    spatial = {k: v for k, v in denoiser_state.items() if ".motion_modules." not in k and not k.startswith("clip_fc.")}
    _match(spatial, base, str(base_path.relative_to(root)), report)
    motion, motion_path = _checkpoint(root / MOTION, lazy=True)
    temporal = {k: v for k, v in denoiser_state.items() if ".motion_modules." in k}
    _match(temporal, motion, str(motion_path.relative_to(root)), report)
    del base, motion

    # the fine-tuned weights: every parameter of the two UNets and the guider
    for name, stem in (("reference_net", "referencenet"), ("denoiser", "unet"), ("guider", "lmk_guider")):
        state, path = _checkpoint(root / FYE / stem)
        _load_exact(modules[name], state, str(path.relative_to(root)), report)
    vae, vae_path = _diffusers_weights(root / VAE)
    _load_exact(modules["vae"], _vae_state(vae), str(vae_path.relative_to(root)), report)
    encoder_folder = root / BASE / "image_encoder"
    encoder, encoder_path = read_tensors(encoder_folder / "model.safetensors", encoder_folder / "pytorch_model.bin")
    encoder = _image_encoder_state(encoder, modules["image_encoder"])
    _load_exact(modules["image_encoder"], encoder, str(encoder_path.relative_to(root)), report)
    del reference_state
    for module in modules.values():
        module.to(device)
        if dtype != torch.float32:  # (diffusers warns on any dtype cast, even a no-op one)
            module.to(dtype)
    return {name: module.eval() for name, module in modules.items()}


def save_official(modules: dict[str, nn.Module], weights_dir: str | os.PathLike, unet_config: dict) -> Path:
    """Write ``modules`` in the official layout under ``weights_dir/pretrained_models`` (test weights).

    ``unet_config``: the diffusers UNet config both UNets were built from (written as the base UNet's).
    The base UNet file gets the denoiser's spatial part, the motion-module file its temporal part.
    """
    root = Path(weights_dir) / "pretrained_models"
    for folder in (FYE, f"{BASE}/unet", f"{BASE}/image_encoder", VAE, "AnimateDiff"):
        (root / folder).mkdir(parents=True, exist_ok=True)

    def plain(state):
        return {k: v.detach().contiguous().clone() for k, v in state.items()}

    def save_file(state, path):  # with the metadata transformers' and diffusers' own loaders expect
        from safetensors.torch import save_file as write

        write(state, path, metadata={"format": "pt"})

    denoiser = plain(modules["denoiser"].state_dict())
    torch.save(plain(modules["reference_net"].state_dict()), root / FYE / "referencenet.pth")
    torch.save(denoiser, root / FYE / "unet.pth")
    torch.save(plain(modules["guider"].state_dict()), root / FYE / "lmk_guider.pth")
    torch.save({k: v for k, v in denoiser.items() if ".motion_modules." in k}, root / f"{MOTION}.ckpt")
    spatial = {k: v for k, v in denoiser.items() if ".motion_modules." not in k and not k.startswith("clip_fc.")}
    save_file(spatial, str(root / BASE / "unet" / "diffusion_pytorch_model.safetensors"))
    (root / BASE / "unet" / "config.json").write_text(json.dumps(unet_config, indent=1))
    save_file(plain(modules["vae"].state_dict()), str(root / VAE / "diffusion_pytorch_model.safetensors"))
    (root / VAE / "config.json").write_text(json.dumps(dict(modules["vae"].config), indent=1))
    encoder = modules["image_encoder"]
    save_file(plain(encoder.state_dict()), str(root / BASE / "image_encoder" / "model.safetensors"))
    (root / BASE / "image_encoder" / "config.json").write_text(encoder.config.to_json_string())
    return root


def convert_to_safetensors(weights_dir: str | os.PathLike) -> list[Path]:
    """Write a ``.safetensors`` copy beside each ``.pth`` / ``.ckpt`` / ``.bin`` of the layout (loading prefers it)."""
    root = weights_root(weights_dir)
    written = []
    for path in sorted([*root.rglob("*.pth"), *root.rglob("*.ckpt"), *root.rglob("*.bin")]):
        # transformers' pytorch_model.bin is read back as model.safetensors
        name = "model.safetensors" if path.name == "pytorch_model.bin" else path.stem + ".safetensors"
        if write_safetensors_copy(path, path.with_name(name)):
            written.append(path.with_name(name))
    return written
