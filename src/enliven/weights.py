"""Find model weights by name: an explicit folder, $ENLIVEN_WEIGHTS, or the Hugging Face cache.

Nothing is downloaded unless asked (``download``); loading never needs a network. Tensors are read with
safetensors, or ``torch.load(weights_only=True)`` for ``.pth`` files, which refuses arbitrary pickles.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from enliven.errors import EnlivenError


@dataclass(frozen=True)
class ModelSource:
    name: str
    repo_id: str
    patterns: tuple[str, ...]
    marker: str  # a relative path that must exist in a complete copy
    description: str


MODELS = {
    "liveportrait": ModelSource(
        "liveportrait",
        "KwaiVGI/LivePortrait",
        ("liveportrait/base_models/*", "liveportrait/retargeting_models/*"),
        "liveportrait/base_models/appearance_feature_extractor.pth",
        "LivePortrait base models and stitching/retargeting MLPs (~500 MB), for --engine keypoint",
    ),
}


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
    if not folder:
        try:
            from huggingface_hub import snapshot_download

            candidates.append(Path(snapshot_download(model.repo_id, allow_patterns=list(model.patterns), local_files_only=True)))
        except Exception:  # noqa: BLE001 - not in the cache (or hub not installed): try the others
            pass
    for path in candidates:
        if path.is_dir():
            return path
    where = folder or f"{default_root() / name} or the Hugging Face cache"
    raise EnlivenError(f"no {name} weights in {where}; get them with `enliven weights download {name}` or pass --weights DIR")


def download(name: str, folder: str | os.PathLike | None = None) -> Path:
    """Download ``name``'s weights from the Hugging Face Hub into ``folder`` (default: our cache)."""
    model = _model(name)
    target = Path(folder) if folder else default_root() / name
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise EnlivenError("downloading needs huggingface_hub: pip install huggingface_hub") from None
    try:
        snapshot_download(model.repo_id, allow_patterns=list(model.patterns), local_dir=str(target))
    except Exception as exc:  # noqa: BLE001 - offline, DNS, HTTP errors all mean the same to the user
        raise EnlivenError(
            f"could not download {model.repo_id} ({type(exc).__name__}); are you online? "
            f"Or copy the files into {target} by hand"
        ) from None
    return target
