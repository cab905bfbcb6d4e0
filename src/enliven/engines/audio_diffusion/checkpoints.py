"""Hallo's official ``pretrained_models/`` layout: strict loading, and writing it (test weights).

Layout (``--weights`` may name ``pretrained_models/`` or the folder holding it; HF fudan-generative-vision/hallo)::

    hallo/net.pth                                   reference net, denoiser, face locator, image and audio
                                                    projections (prefixes reference_unet., denoising_unet.,
                                                    face_locator., imageproj., audioproj.)
    stable-diffusion-v1-5/unet/config.json          the UNets' sizes (its weights are not needed: net.pth has all)
    motion_module/mm_sd_v15_v2.ckpt                 AnimateDiff's motion modules (checked, then overwritten)
    sd-vae-ft-mse/config.json + diffusion_pytorch_model.{safetensors,bin}
    wav2vec/wav2vec2-base-960h/config.json + model.safetensors | pytorch_model.bin (+ preprocessor_config.json)

The release loads ``net.pth`` with ``strict`` semantics (it asserts no missing and no unexpected keys); so do we,
naming the keys that do not fit. The motion-module checkpoint initialises the denoiser's motion modules in the
release before ``net.pth`` overwrites them: we check its tensors land on parameters of their shape, and map it
only. wav2vec2's file is a CTC model: its ``lm_head`` (the character classifier) is the one part not used.
Tensors only: safetensors, or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from enliven.engines.audio_diffusion.model import (
    AudioProjection,
    FaceLocator,
    ImageProjection,
    build_denoiser,
    build_reference_net,
)
from enliven.engines.tensor_files import LoadReport, read_json, read_tensors
from enliven.errors import EnlivenError

HALLO = "hallo"
BASE = "stable-diffusion-v1-5/unet"
MOTION = "motion_module/mm_sd_v15_v2"
VAE = "sd-vae-ft-mse"
WAV2VEC = "wav2vec/wav2vec2-base-960h"
SPEED_LAYERS = "speed_layers.safetensors"  # beside net.*: the denoiser's speed layers, when trained
SPEED_PREFIX = "denoising_unet.speed_layers."
NET_PARTS = {"reference_unet": "reference_net", "denoising_unet": "denoiser", "face_locator": "face_locator",
             "imageproj": "image_proj", "audioproj": "audio_proj"}


def weights_root(weights_dir: str | os.PathLike) -> Path:
    root = Path(weights_dir)
    for candidate in (root, root / "pretrained_models"):
        if (candidate / HALLO).is_dir() and (candidate / BASE).is_dir():
            return candidate
    raise EnlivenError(f"{root} does not look like Hallo's weights: need {HALLO}/ and {BASE}/ in it or in "
                       "pretrained_models/ (enliven weights download hallo)")


def _checkpoint(stem: Path, lazy: bool = False):
    return read_tensors(*(stem.with_name(stem.name + s) for s in (".safetensors", ".pth", ".ckpt")), lazy=lazy)


def _mismatch(module_state: dict, state: dict, expect_all: bool = True) -> tuple[list[str], list[str]]:
    missing = sorted(set(module_state) - set(state)) if expect_all else []
    unexpected = sorted(k for k in state if k not in module_state or module_state[k].shape != state[k].shape)
    return missing, unexpected


def _fail(name: str, missing: list[str], unexpected: list[str]) -> None:
    if missing or unexpected:
        raise EnlivenError(
            f"{name} does not match the Hallo architecture: {len(missing)} missing "
            f"({', '.join(missing[:4]) or '-'}) and {len(unexpected)} unexpected or misshapen tensors "
            f"({', '.join(unexpected[:4]) or '-'})")


def audio_encoder(folder: Path, report: LoadReport | None = None) -> nn.Module:
    """transformers' ``Wav2Vec2Model`` from ``folder`` (a wav2vec2 CTC checkpoint): every tensor but ``lm_head``."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = Wav2Vec2Config.from_dict(read_json(folder / "config.json"))
    model = Wav2Vec2Model(config)
    state, path = read_tensors(folder / "model.safetensors", folder / "pytorch_model.bin")
    state = {k.removeprefix("wav2vec2."): v for k, v in state.items() if not k.startswith("lm_head.")}
    renames = {".weight_g": ".parametrizations.weight.original0", ".weight_v": ".parametrizations.weight.original1"}
    own = model.state_dict()
    fixed = {}
    for key, value in state.items():
        if key not in own:
            for old, new in renames.items():
                if key.endswith(old) and key.replace(old, new) in own:
                    key = key.replace(old, new)
        fixed[key] = value
    # masked_spec_embed is used only for SpecAugment in training; older files omit it
    missing, unexpected = _mismatch(own, fixed)
    missing = [k for k in missing if k != "masked_spec_embed"]
    if "masked_spec_embed" in own:
        fixed.setdefault("masked_spec_embed", own["masked_spec_embed"])
    _fail(str(path), missing, unexpected)
    model.load_state_dict(fixed, strict=True)
    if report is not None:
        report.loaded[str(path)] = len(state)
        report.missing[str(path)], report.unexpected[str(path)] = missing, unexpected
    return model.eval()


_VAE_RENAMES = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}


def _vae_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """sd-vae-ft-mse's file keeps diffusers' pre-0.14 attention names; today's ``AutoencoderKL`` has new ones."""
    renamed = {}
    for key, value in state.items():
        if ".attentions." in key:
            for old, new in _VAE_RENAMES.items():
                if old in key:
                    key = key.replace(old, new)
                    value = value[:, :, 0, 0] if value.ndim == 4 else value
        renamed[key] = value
    return renamed


def build_modules(root: Path, speed_buckets: int = 0, speed_dim: int = 64) -> dict[str, nn.Module]:
    """The modules with the sizes the folder's configs give, randomly initialised."""
    from diffusers import AutoencoderKL

    unet_config = read_json(root / BASE / "config.json")
    dim = unet_config["cross_attention_dim"]
    net_state, _ = _checkpoint(root / HALLO / "net", lazy=True)
    proj1 = net_state.get("audioproj.proj1.weight")
    image = net_state.get("imageproj.proj.weight")
    wav_config = read_json(root / WAV2VEC / "config.json")
    layers, channels = wav_config["num_hidden_layers"], wav_config["hidden_size"]
    window = proj1.shape[1] // (layers * channels) if proj1 is not None else 5
    intermediate = proj1.shape[0] if proj1 is not None else 512
    audio_dim = net_state["audioproj.norm.weight"].shape[0] if "audioproj.norm.weight" in net_state else dim
    tokens = net_state["audioproj.proj3.weight"].shape[0] // audio_dim if "audioproj.proj3.weight" in net_state else 32
    locator_widths = tuple(net_state[f"face_locator.{k}.weight"].shape[0]
                           for k in ("conv_in", *[f"blocks.{i}" for i in range(1, 99, 2)])
                           if f"face_locator.{k}.weight" in net_state)
    regions = any(".attn2_0." in k for k in net_state if ".audio_modules." in k)
    del net_state
    return {
        "vae": AutoencoderKL.from_config({k: v for k, v in read_json(root / VAE / "config.json").items()
                                          if not k.startswith("_")}),
        "reference_net": build_reference_net(unet_config),
        "denoiser": build_denoiser(unet_config, audio_dim=audio_dim, regions=regions, speed_buckets=speed_buckets,
                                   speed_dim=speed_dim),
        "face_locator": FaceLocator(unet_config["block_out_channels"][0], widths=locator_widths or (16, 32, 64, 128)),
        "image_proj": ImageProjection(dim, embedding=image.shape[1] if image is not None else 512,
                                      tokens=image.shape[0] // dim if image is not None else 4),
        "audio_proj": AudioProjection(window, layers, channels, intermediate, audio_dim, tokens),
    }


def load_official(
    weights_dir: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
    report: LoadReport | None = None, audio: bool = True,
) -> dict[str, nn.Module]:
    """Hallo's modules with the official weights: ``vae``, ``reference_net``, ``denoiser``, ``face_locator``,
    ``image_proj``, ``audio_proj`` and (``audio``) ``audio_encoder``, all in eval mode (their forward does not
    depend on it: Hallo's training-mode branch is built in, see ``model``). The audio encoder stays fp32 on the
    CPU, where the release's preprocessing is matched (see ``audio``)."""
    from diffusers import AutoencoderKL  # noqa: F401 - fail early, with the import error, if diffusers is missing

    root = weights_root(weights_dir)
    report = report if report is not None else LoadReport()
    speed, speed_path = {}, root / HALLO / SPEED_LAYERS
    if speed_path.is_file():  # EMO's speed layers, trained by `enliven train audio-diffusion` (Hallo has none)
        speed, _ = read_tensors(speed_path)
    embedding = speed.get(f"{SPEED_PREFIX}embedding.weight")
    if speed and embedding is None:
        raise EnlivenError(f"{speed_path}: no speed embedding ({SPEED_PREFIX}embedding.weight) in it")
    buckets, speed_dim = (0, 64) if embedding is None else tuple(embedding.shape)
    modules = build_modules(root, speed_buckets=buckets, speed_dim=speed_dim)
    net, net_path = _checkpoint(root / HALLO / "net")
    own = {}
    for prefix, name in NET_PARTS.items():
        own |= {f"{prefix}.{k}": v for k, v in modules[name].state_dict().items()}
    own_speed = {k: own.pop(k) for k in [k for k in own if k.startswith(SPEED_PREFIX)]}
    missing, unexpected = _mismatch(own, net)
    report.loaded[str(net_path.relative_to(root))] = len(net)
    report.missing[str(net_path.relative_to(root))] = missing
    report.unexpected[str(net_path.relative_to(root))] = unexpected
    _fail(str(net_path.relative_to(root)), missing, unexpected)
    if speed:
        missing, unexpected = _mismatch(own_speed, speed)
        report.loaded[str(speed_path.relative_to(root))] = len(speed)
        _fail(str(speed_path.relative_to(root)), missing, unexpected)
        net |= speed
    for prefix, name in NET_PARTS.items():
        part = {k[len(prefix) + 1:]: v for k, v in net.items() if k.startswith(prefix + ".")}
        modules[name].load_state_dict(part, strict=True)
    del net
    motion, motion_path = _checkpoint(root / MOTION, lazy=True)
    temporal = {k: v for k, v in modules["denoiser"].state_dict().items() if ".motion_modules." in k}
    missing, unexpected = _mismatch(temporal, motion, expect_all=False)
    report.loaded[str(motion_path.relative_to(root))] = len(motion)
    report.unexpected[str(motion_path.relative_to(root))] = unexpected
    _fail(str(motion_path.relative_to(root)), [], unexpected)
    del motion
    vae, vae_path = read_tensors(root / VAE / "diffusion_pytorch_model.safetensors",
                                 root / VAE / "diffusion_pytorch_model.bin")
    vae = _vae_state(vae)
    missing, unexpected = _mismatch(modules["vae"].state_dict(), vae)
    _fail(str(vae_path.relative_to(root)), missing, unexpected)
    modules["vae"].load_state_dict(vae, strict=True)
    report.loaded[str(vae_path.relative_to(root))] = len(vae)
    for module in modules.values():
        # torch's own Module.to: diffusers' override warns on every dtype cast (even with no fp32-kept module),
        # a line in every GPU run's output that says nothing
        nn.Module.to(module, device, dtype)
    if audio:
        modules["audio_encoder"] = audio_encoder(root / WAV2VEC, report)
    return {name: module.eval() for name, module in modules.items()}


def save_official(modules: dict[str, nn.Module], weights_dir: str | os.PathLike, unet_config: dict) -> Path:
    """Write ``modules`` in the official layout under ``weights_dir/pretrained_models`` (test weights).

    The motion-module file gets the denoiser's motion modules, the SD UNet file the reference net (its role in
    the release: the base both UNets start from)."""
    from safetensors.torch import save_file

    root = Path(weights_dir) / "pretrained_models"
    for folder in (HALLO, BASE, "motion_module", VAE, WAV2VEC):
        (root / folder).mkdir(parents=True, exist_ok=True)

    def plain(state):
        return {k: v.detach().contiguous().clone() for k, v in state.items()}

    net = {}
    for prefix, name in NET_PARTS.items():
        net |= {f"{prefix}.{k}": v for k, v in plain(modules[name].state_dict()).items()}
    torch.save(net, root / HALLO / "net.pth")
    denoiser = plain(modules["denoiser"].state_dict())
    torch.save({k: v for k, v in denoiser.items() if ".motion_modules." in k}, root / f"{MOTION}.ckpt")
    (root / BASE / "config.json").write_text(json.dumps(unet_config, indent=1))
    save_file(plain(modules["reference_net"].state_dict()), str(root / BASE / "diffusion_pytorch_model.safetensors"),
              metadata={"format": "pt"})
    save_file(plain(modules["vae"].state_dict()), str(root / VAE / "diffusion_pytorch_model.safetensors"),
              metadata={"format": "pt"})
    (root / VAE / "config.json").write_text(json.dumps(dict(modules["vae"].config), indent=1))
    encoder = modules["audio_encoder"]
    save_file({f"wav2vec2.{k}": v for k, v in plain(encoder.state_dict()).items()},
              str(root / WAV2VEC / "model.safetensors"), metadata={"format": "pt"})
    (root / WAV2VEC / "config.json").write_text(encoder.config.to_json_string())
    (root / WAV2VEC / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
        "padding_side": "right", "padding_value": 0.0, "return_attention_mask": False, "sampling_rate": 16000}))
    return root
