"""The engine protocol and registry.

An engine turns a source face crop into crop-space frames for target landmarks. It never reads files
or parses arguments: it gets arrays and returns arrays. Two shapes: a per-frame ``Engine`` (``render`` one
target at a time) and a ``WindowedEngine`` (``render_stream``: the stream of targets in, frames out, with a
bounded look-ahead); ``render_stream(engine, ...)`` drives either, so the pipeline has one loop. Adding an
engine means registering a factory here; nothing else in the pipeline changes.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from enliven.errors import EnlivenError
from enliven.face.crop import CropSpec
from enliven.motion.frame import MotionFrame


@dataclass
class SourceState:
    """What an engine keeps about one source crop between frames."""

    crop_image: np.ndarray  # (S, S, 3) uint8 RGB
    landmarks: np.ndarray  # (478, 3) crop pixels
    paste_mask: np.ndarray  # (S, S) float32 in [0, 1]: where rendered pixels replace the original
    cache: dict[str, Any]  # engine-private, computed once per source
    # Engine-private state of one animation run; with a video source it outlives each frame's SourceState.
    session: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    name: str
    driving_crop: CropSpec | None
    """If set, driving video frames arrive with the driver's face crop (``MotionFrame.crop``) cut this way, and
    the driver's landmarks in it (``MotionFrame.crop_landmarks``). Each shot's reference frame (``anchor``) is cut
    too, unless the engine sets ``anchor_crops = False`` (it needs only the frames' own pixels)."""
    pose_limits: tuple[float, float, float]
    """The head angles (yaw, pitch, roll in degrees, either way from frontal) the engine renders cleanly; driving
    motion is eased into them (``motion.align.limit_pose``)."""

    def prepare(self, crop_image: np.ndarray, landmarks: np.ndarray, session: dict | None = None) -> SourceState:
        """Do all per-source work once. ``session``: the run's state to carry on (video sources prepare every
        frame); None starts a new run. ``session["video_source"]`` tells the engine the source moves."""

    def render(self, state: SourceState, target: np.ndarray, frame: MotionFrame) -> np.ndarray:
        """One crop-space frame. ``target``: the aligned landmarks (478, 3 crop pixels) the face should take;
        ``frame``: the driving motion it came from (with the driver's crop, if the engine asked for it)."""


class WindowedEngine(Protocol):
    """An engine that renders many frames together (the diffusion engines: a window of frames per denoiser call).

    Same ``name``, ``driving_crop``, ``pose_limits`` and ``prepare`` as ``Engine``; instead of ``render`` it
    consumes the stream of (target, frame) pairs and yields crop-space frames in the same order, one per pair.
    It may read ahead of what it has yielded, but never more than ``lookahead`` pairs past the first frame not
    yet given out: memory is bounded by that, never by the clip's length.
    """

    name: str
    driving_crop: CropSpec | None
    pose_limits: tuple[float, float, float]
    lookahead: int

    def prepare(self, crop_image: np.ndarray, landmarks: np.ndarray, session: dict | None = None) -> SourceState: ...

    def render_stream(
        self, state: SourceState, targets: Iterable[tuple[np.ndarray, MotionFrame]]
    ) -> Iterator[np.ndarray]: ...


def is_windowed(engine) -> bool:
    return callable(getattr(engine, "render_stream", None))


def render_stream(
    engine: Engine | WindowedEngine, state: SourceState, targets: Iterable[tuple[np.ndarray, MotionFrame]]
) -> Iterator[np.ndarray]:
    """Crop-space frames for a stream of (target, frame) pairs, whatever the engine's shape: the pipeline's one
    loop. A per-frame engine renders each pair as it comes (no look-ahead at all)."""
    if is_windowed(engine):
        return engine.render_stream(state, targets)
    return (engine.render(state, target, frame) for target, frame in targets)


_REGISTRY: dict[str, tuple[Callable[..., Engine | WindowedEngine], str]] = {}
# Built-in engines are imported only when used, so the default engine never loads torch.
_BUILTIN = {
    "mesh": ("enliven.engines.mesh", "nothing: MediaPipe's face mesh ships inside its wheel"),
    "keypoint": (
        "enliven.engines.keypoint",
        "the official LivePortrait weights: `enliven weights download liveportrait` or --weights DIR",
    ),
    "landmark-diffusion": (
        "enliven.engines.landmark_diffusion",
        (
            "the diffusion extra (pip install 'enliven[diffusion]') and the official Follow-Your-Emoji weights: "
            "`enliven weights download follow-your-emoji` or --weights DIR; a GPU (--device cuda) in practice"
        ),
    ),
    "implicit-diffusion": (
        "enliven.engines.implicit_diffusion",
        (
            "the diffusion extra (pip install 'enliven[diffusion]') and the official HunyuanPortrait weights: "
            "`enliven weights download hunyuan-portrait` or --weights DIR; a GPU (--device cuda) in practice"
        ),
    ),
}


# What a built-in engine needs before it can run: (its weights' name in ``enliven.weights``, a module its extra
# installs). ``readiness`` checks them without building the engine.
_PREREQUISITES: dict[str, tuple[str, str | None]] = {
    "keypoint": ("liveportrait", None),
    "landmark-diffusion": ("follow-your-emoji", "diffusers"),
    "implicit-diffusion": ("hunyuan-portrait", "diffusers"),
}


def readiness(name: str) -> str | None:
    """None if engine ``name`` can run here, else what it needs (its ``needs`` line): the extra's module is
    importable and its weights are where ``--weights``-less runs look. Nothing is loaded."""
    weights_name, module = _PREREQUISITES.get(name, (None, None))
    if module is not None and importlib.util.find_spec(module) is None:
        return available()[name]
    if weights_name is not None:
        from enliven import weights

        try:
            weights.resolve(weights_name)
        except EnlivenError:
            return available()[name]
    return None


def weights_name(name: str) -> str | None:
    """The name ``enliven weights download`` knows engine ``name``'s weights by (None: it needs none)."""
    return _PREREQUISITES.get(name, (None, None))[0]


def register(name: str, needs: str) -> Callable:
    """Class decorator: make an engine available by name; ``needs`` tells users what it requires."""

    def wrap(factory):
        _REGISTRY[name] = (factory, needs)
        return factory

    return wrap


def available() -> dict[str, str]:
    """Engine names and what each needs to run."""
    return {name: needs for name, (_, needs) in _BUILTIN.items()} | {n: needs for n, (_, needs) in _REGISTRY.items()}


def engine_class(name: str) -> Callable[..., Engine | WindowedEngine]:
    """The registered factory (class) of engine ``name``, imported on first use but not built: what it can do is
    known before its weights load."""
    if name not in _REGISTRY and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name][0])
    if name not in _REGISTRY:
        raise EnlivenError(f"unknown engine {name!r}; available: {', '.join(sorted(available()))}")
    return _REGISTRY[name][0]


def create(name: str, **options: Any) -> Engine | WindowedEngine:
    factory = engine_class(name)
    try:
        return factory(**options)
    except TypeError as exc:  # an option this engine does not have
        if "unexpected keyword" not in str(exc):
            raise
        bad = str(exc).split("'")[1] if "'" in str(exc) else str(exc)
        raise EnlivenError(f"engine {name!r} has no option {bad!r}") from None
