"""The engine protocol and registry.

An engine turns a source face crop into crop-space frames for target landmarks. It never reads files
or parses arguments: it gets arrays and returns arrays. Two shapes: a per-frame ``Engine`` (``render`` one
target at a time) and a ``WindowedEngine`` (``render_stream``: the stream of targets in, frames out, with a
bounded look-ahead); ``render_stream(engine, ...)`` drives either, so the pipeline has one loop. Adding an
engine means a folder with its descriptor (``engines.descriptor``) and one line in ``BUILTIN`` (or an entry point
of another package); nothing else changes.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from enliven.engines.descriptor import EngineDescriptor
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


# The built-in engines: one line per engine folder, naming its descriptor (``engines.descriptor``). Descriptors
# import nothing heavy and engines are imported only when built, so the default engine never loads torch.
BUILTIN = (
    "enliven.engines.mesh.descriptor",
    "enliven.engines.keypoint.descriptor",
    "enliven.engines.landmark_diffusion.descriptor",
    "enliven.engines.implicit_diffusion.descriptor",
    "enliven.engines.audio_diffusion.descriptor",
)
# Engines of other packages: each names an ``EngineDescriptor`` (``module:NAME``) in this entry-point group.
ENTRY_POINTS = "enliven.engines"

_DESCRIPTORS: dict[str, EngineDescriptor] = {}
_PLUGINS: set[str] = set()  # names registered from the entry-point group
_PLUGINS_READ = False


def register(descriptor: EngineDescriptor) -> EngineDescriptor:
    """Make an engine available by its descriptor's name (a later one of the same name replaces it)."""
    _DESCRIPTORS[descriptor.name] = descriptor
    return descriptor


def forget_plugins() -> None:
    """Read the entry-point group again on next use (after packages were installed or removed)."""
    global _PLUGINS_READ
    _PLUGINS_READ = False
    for name in _PLUGINS:
        _DESCRIPTORS.pop(name, None)
    _PLUGINS.clear()


def descriptors() -> dict[str, EngineDescriptor]:
    """Every engine's descriptor by name: the built-in ones, then those of installed packages."""
    global _PLUGINS_READ
    for module in BUILTIN:
        descriptor = importlib.import_module(module).DESCRIPTOR
        _DESCRIPTORS.setdefault(descriptor.name, descriptor)
    if not _PLUGINS_READ:
        _PLUGINS_READ = True
        for point in importlib.metadata.entry_points(group=ENTRY_POINTS):
            try:
                descriptor = point.load()
            except Exception as exc:  # a broken plugin must not take the built-in engines down with it
                warnings.warn(f"engine {point.name!r} from {point.value} could not be loaded: {exc}", stacklevel=2)
                continue
            if isinstance(descriptor, EngineDescriptor):
                register(descriptor)
                _PLUGINS.add(descriptor.name)
    return dict(_DESCRIPTORS)


def describe(name: str) -> EngineDescriptor:
    """Engine ``name``'s descriptor; an unknown name is one clear error."""
    known = descriptors()
    if name not in known:
        raise EnlivenError(f"unknown engine {name!r}; available: {', '.join(sorted(known))}")
    return known[name]


def readiness(name: str) -> str | None:
    """None if engine ``name`` can run here, else what it needs (its ``needs`` line): the extra's module is
    importable and its weights are where ``--weights``-less runs look. Nothing is loaded."""
    descriptor = describe(name)
    if descriptor.extra_module is not None and importlib.util.find_spec(descriptor.extra_module) is None:
        return descriptor.needs
    if descriptor.weights is not None:
        from enliven import weights

        try:
            weights.resolve(descriptor.weights)
        except EnlivenError:
            return descriptor.needs
    return None


def weights_name(name: str) -> str | None:
    """The name ``enliven weights download`` knows engine ``name``'s weights by (None: it needs none)."""
    return describe(name).weights


def available() -> dict[str, str]:
    """Engine names and what each needs to run."""
    return {name: descriptor.needs for name, descriptor in descriptors().items()}


def engine_class(name: str) -> Callable[..., Engine | WindowedEngine]:
    """The class (factory) of engine ``name``, imported on first use but not built."""
    return describe(name).load()


def create(name: str, **options: Any) -> Engine | WindowedEngine:
    factory = engine_class(name)
    try:
        return factory(**options)
    except TypeError as exc:  # an option this engine does not have
        if "unexpected keyword" not in str(exc):
            raise
        bad = str(exc).split("'")[1] if "'" in str(exc) else str(exc)
        raise EnlivenError(f"engine {name!r} has no option {bad!r}") from None
