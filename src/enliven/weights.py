"""Find model weights by name: an explicit folder, $ENLIVEN_WEIGHTS, or the Hugging Face cache.

Nothing is downloaded unless asked (``download``); loading never needs a network. Tensors are read with
safetensors, or ``torch.load(weights_only=True)`` for ``.pth`` files, which refuses arbitrary pickles.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from enliven.errors import EnlivenError


@dataclass(frozen=True)
class RepoFiles:
    """Files of one Hub repository that go into one folder of a model's layout.

    ``files``: each entry lists alternatives, the first one the repository has wins (safetensors before pickles;
    the loaders read either). ``flatten``: keep each file by its name in ``into``, whatever folder the repository
    keeps it in (Follow-Your-Emoji's repository has moved its files into ``ckpts/``)."""

    repo_id: str
    into: str
    files: tuple[tuple[str, ...], ...]
    flatten: bool = False


@dataclass(frozen=True)
class ModelSource:
    name: str
    repo_id: str
    patterns: tuple[str, ...]
    marker: str  # a relative path that must exist in a complete copy
    description: str
    parts: tuple[RepoFiles, ...] = ()  # a layout gathered from several repositories (then repo_id is the main one)


MODELS = {
    "liveportrait": ModelSource(
        "liveportrait",
        "KwaiVGI/LivePortrait",
        ("liveportrait/base_models/*", "liveportrait/retargeting_models/*"),
        "liveportrait/base_models/appearance_feature_extractor.pth",
        "LivePortrait base models and stitching/retargeting MLPs (~500 MB), for --engine keypoint",
    ),
    # Follow-Your-Emoji's official pretrained_models/ layout (its configs/infer.yaml paths, mayuelala/FollowYourEmoji),
    # gathered from the four repositories the release's README names; only the files load_official reads.
    "follow-your-emoji": ModelSource(
        "follow-your-emoji",
        "YueMafighting/FollowYourEmoji",
        (),
        "pretrained_models/follow-your-emoji/unet.pth",
        "Follow-Your-Emoji (its three networks, sd-image-variations' UNet and CLIP image encoder, sd-vae-ft-mse, "
        "AnimateDiff's motion module), for --engine landmark-diffusion",
        parts=(
            RepoFiles("YueMafighting/FollowYourEmoji", "pretrained_models/follow-your-emoji",
                      (("lmk_guider.pth",), ("referencenet.pth",), ("unet.pth",)), flatten=True),
            RepoFiles("lambdalabs/sd-image-variations-diffusers", "pretrained_models/sd-image-variations-diffusers", (
                ("unet/config.json",),
                ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin"),
                ("image_encoder/config.json",),
                ("image_encoder/model.safetensors", "image_encoder/pytorch_model.bin"),
            )),
            RepoFiles("stabilityai/sd-vae-ft-mse", "pretrained_models/sd-vae-ft-mse", (
                ("config.json",), ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
            )),
            RepoFiles("guoyww/animatediff", "pretrained_models/AnimateDiff", (("mm_sd_v15_v2.ckpt",),)),
        ),
    ),
    # HunyuanPortrait's official pretrained_weights/ layout (its README's download steps and
    # config/hunyuan-portrait.yaml, Tencent-Hunyuan/HunyuanPortrait): its seven networks,
    # SVD-xt's UNet and scheduler configs and fp16 VAE (a gated repository:
    # accept its licence on the Hub and log in first), Arc2Face's arcface.onnx. Not yoloface_v5m.pt: our
    # MediaPipe analysis finds the faces.
    "hunyuan-portrait": ModelSource(
        "hunyuan-portrait",
        "tencent/HunyuanPortrait",
        (),
        "pretrained_weights/hyportrait/unet.pth",
        "HunyuanPortrait (its seven networks, SVD-xt's configs and VAE, Arc2Face's ArcFace), "
        "for --engine implicit-diffusion",
        parts=(
            RepoFiles("tencent/HunyuanPortrait", "pretrained_weights/hyportrait", tuple(
                (f"{name}.pth",) for name in
                ("dino", "expression", "headpose", "image_proj", "motion_proj", "pose_guider", "unet")
            ), flatten=True),
            RepoFiles("stabilityai/stable-video-diffusion-img2vid-xt", "pretrained_weights", (
                ("unet/config.json",), ("scheduler/scheduler_config.json",), ("vae/config.json",),
                ("vae/diffusion_pytorch_model.fp16.safetensors",),
            )),
            RepoFiles("FoivosPar/Arc2Face", "pretrained_weights", (("arcface.onnx",),)),
        ),
    ),
    # Hallo's official pretrained_models/ layout (fudan-generative-vision/hallo keeps it at its root): the files
    # load_official reads and InsightFace's recognition network for the face embedding. Not the vocal separator
    # nor the face detectors: we take the audio as given and find faces with our analyser.
    "hallo": ModelSource(
        "hallo",
        "fudan-generative-vision/hallo",
        ("hallo/net.pth", "stable-diffusion-v1-5/unet/config.json", "motion_module/mm_sd_v15_v2.ckpt",
         "sd-vae-ft-mse/config.json", "sd-vae-ft-mse/diffusion_pytorch_model.safetensors",
         "wav2vec/wav2vec2-base-960h/*", "face_analysis/models/glintr100.onnx"),
        "hallo/net.pth",
        "Hallo (its net.pth, SD-1.5's UNet config, AnimateDiff's motion module, sd-vae-ft-mse, wav2vec2-base-960h, "
        "InsightFace's glintr100), for --engine audio-diffusion",
    ),
}

# fetch(repo_id, allow_patterns, local_dir): download the matching files of a repository into local_dir, keeping
# their paths (huggingface_hub's snapshot_download); replaceable in tests, where nothing can be downloaded.
Fetch = Callable[[str, list[str], str], object]


def _model(name: str) -> ModelSource:
    if name not in MODELS:
        raise EnlivenError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


def default_root() -> Path:
    return Path(os.environ.get("ENLIVEN_WEIGHTS", Path.home() / ".cache" / "enliven"))


def resolve(name: str, folder: str | os.PathLike | None = None) -> Path:
    """The folder holding ``name``'s weights; a clear error that says how to get them if none is found."""
    model = _model(name)
    candidates = [Path(folder)] if folder else [default_root() / name]
    if not folder and not model.parts:  # a layout from several repositories is never whole in the HF cache
        try:
            from huggingface_hub import snapshot_download

            candidates.append(Path(snapshot_download(model.repo_id, allow_patterns=list(model.patterns),
                                                     local_files_only=True)))
        except Exception:  # noqa: BLE001 - not in the cache (or hub not installed): try the others
            pass
    for path in candidates:
        if path.is_dir():
            return path
    where = folder or f"{default_root() / name} or the Hugging Face cache"
    raise EnlivenError(
        f"no {name} weights in {where}; get them with `enliven weights download {name}` or pass --weights DIR")


def _hub_fetch(repo_id: str, allow_patterns: list[str], local_dir: str) -> object:
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id, allow_patterns=allow_patterns, local_dir=local_dir)


def _fetch_part(part: RepoFiles, target: Path, fetch: Fetch) -> list[Path]:
    """Fetch ``part``'s files into ``target / part.into``; the paths written."""
    folder = target / part.into
    written = []
    for alternatives in part.files:
        for name in alternatives:
            # flatten: the file by its name at any depth of the repository
            fetch(part.repo_id, [name, f"*/{name}"] if part.flatten else [name], str(folder))
            path = folder / name
            if part.flatten and not path.is_file():
                found = [p for p in folder.rglob(Path(name).name) if ".cache" not in p.parts and p.is_file()]
                if found:
                    shutil.move(str(found[0]), str(path))
            if path.is_file():
                written.append(path)
                break
        else:
            raise EnlivenError(f"{part.repo_id} has none of {', '.join(alternatives)}")
    if part.flatten:  # the repository's own sub-folders, now empty
        for sub in sorted((p for p in folder.rglob("*") if p.is_dir() and ".cache" not in p.parts), reverse=True):
            if not any(sub.iterdir()):
                sub.rmdir()
    return written


def download(name: str, folder: str | os.PathLike | None = None, fetch: Fetch | None = None) -> Path:
    """Download ``name``'s weights from the Hugging Face Hub into ``folder`` (default: our cache).

    ``fetch``: how one repository's files are downloaded (default: huggingface_hub's ``snapshot_download``)."""
    model = _model(name)
    target = Path(folder) if folder else default_root() / name
    if fetch is None:
        try:
            import huggingface_hub  # noqa: F401
        except ImportError:
            raise EnlivenError("downloading needs huggingface_hub: pip install huggingface_hub") from None
        fetch = _hub_fetch
    repo_id = model.repo_id
    try:
        if not model.parts:
            fetch(model.repo_id, list(model.patterns), str(target))
        for part in model.parts:
            repo_id = part.repo_id
            _fetch_part(part, target, fetch)
    except EnlivenError:
        raise
    except Exception as exc:  # noqa: BLE001 - offline, DNS, HTTP errors all mean the same to the user
        if type(exc).__name__ == "GatedRepoError":  # huggingface_hub's: the repository needs its licence accepted
            raise EnlivenError(
                f"{repo_id} is gated: accept its licence at https://huggingface.co/{repo_id}, log in "
                "(huggingface-cli login) and run the download again"
            ) from None
        raise EnlivenError(
            f"could not download {repo_id} ({type(exc).__name__}); are you online? "
            f"Or copy the files into {target} by hand"
        ) from None
    return target
