"""Options of ``enliven.animate``, with their defaults documented once, here."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from enliven.checks import number, whole
from enliven.errors import EnlivenError
from enliven.face.crop import CropSpec
from enliven.motion.align import Controls
from enliven.motion.tracking import TrackOptions

MAX_MULTIPLIER = 10.0  # 1 follows the driver, 1.5 exaggerates; far beyond, every face folds


@dataclass(frozen=True)
class AnimateOptions:
    engine: str = "mesh"
    """Rendering engine; see ``enliven engines``. ``mesh`` needs no downloaded weights."""
    weights: str | None = None
    """Folder with the engine's weights (engines that need them); default: our cache or the HF cache."""
    engine_options: dict = field(default_factory=dict)
    """Engine-specific settings, e.g. ``{"region": "lip", "stitching": False}`` for ``keypoint``."""
    relative: bool = True
    """Apply the driver's change from its first frame (True) or copy its expression and pose (False)."""
    multiplier: float = 1.0
    """Scale the motion: 0 freezes the source, 1 follows the driver, >1 exaggerates."""
    smooth: bool = True
    """One-euro smoothing of measured (camera) motion against landmark jitter."""
    normalize_lip: bool = False
    """Start from a closed mouth: a source whose lips are apart (ratio ≥ 0.03) is closed before the motion."""
    controls: Controls = Controls()
    """Manual edits on top of the motion: eye/lip open ratios, head angles, smile, brows, pout, wink."""
    fps: float | None = None
    """Output frame rate; default: the driving video's (motion is resampled in time if it differs)."""
    face_index: int = 0
    """Which face of the source to animate, 0 = the largest."""
    all_faces: bool = False
    """Animate every face found in the source (each with its own crop and paste-back), not just one."""
    driver_face: str | int = "auto"
    """Whose motion a driving video gives: ``auto`` (the person on screen longest), ``largest`` (the largest face
    in each frame) or N (the N-th largest face, 0 = largest, in the first frame with faces)."""
    reference: str | int = "neutral"
    """Which frame of each shot the driver's motion is measured from: ``neutral`` (its least expressive frame),
    ``first``, or frame N of the clip (for its shot; the others use ``neutral``)."""
    follow_camera: bool = False
    """Follow the driver's camera zoom and shift in full; by default a still portrait follows them only within
    0.9–1.1 zoom and ±10 % of the face's width."""
    crop_size: int = 512
    """Side of the square face crop the engine renders, in pixels."""
    crop_scale: float = 2.3
    """Crop side as a multiple of the face's extent (brows to chin)."""
    crop_vy: float = -0.125
    """Shift of the crop centre along the face's up axis, in crop sides (negative = up)."""
    allow_pickle: bool = False
    """Read LivePortrait ``.pkl`` templates (pickles can run code: only for files you trust)."""
    audio: bool = True
    """Copy the driving video's audio track into the output."""
    crf: int = 18
    """H.264 quality: lower is better and larger (18 is visually lossless for most content)."""
    progress: bool = True
    """Show progress bars on stderr."""
    on_frame: Callable[[int, int | None], None] | None = None
    """Called after each output frame with (frames done, frames in all or None if unknown): progress for a page or
    a job queue. Whatever it raises stops the run there (how a job is cancelled); the unfinished output is removed."""

    def __post_init__(self) -> None:
        if isinstance(self.controls, dict):
            unknown = sorted(set(self.controls) - {f.name for f in fields(Controls)})
            if unknown:
                raise EnlivenError(f"unknown control(s): {', '.join(map(str, unknown))}")
            object.__setattr__(self, "controls", Controls(**self.controls))
        if not isinstance(self.controls, Controls):
            raise EnlivenError(f"controls must be a Controls or a dict of its fields, got {self.controls!r}")
        if not isinstance(self.engine, str):
            raise EnlivenError(f"engine must be a name, got {self.engine!r}")
        settle = functools.partial(object.__setattr__, self)
        settle("multiplier", number("multiplier", self.multiplier, 0, MAX_MULTIPLIER))
        if self.fps is not None:
            settle("fps", number("fps", self.fps, 1, 240))
        settle("crop_size", whole("crop size", self.crop_size, 64, 2048))
        if self.crop_size % 2:
            raise EnlivenError(f"crop size must be an even number, got {self.crop_size}")
        settle("crop_scale", number("crop scale", self.crop_scale, 0.5, 10))  # a face must fit, and be more than a dot
        settle("crop_vy", number("crop shift", self.crop_vy, -1, 1))
        settle("face_index", whole("face index", self.face_index, 0, None))
        settle("crf", whole("crf", self.crf, 0, 51))
        self.tracking  # noqa: B018 - checks driver_face and reference now, before any work

    @property
    def tracking(self) -> TrackOptions:
        """How a driving video is read (whose motion, from which reference frames)."""
        return TrackOptions(self.driver_face, self.reference)

    @property
    def crop(self) -> CropSpec:
        """How source faces are cropped for the engine."""
        return CropSpec(self.crop_size, self.crop_scale, self.crop_vy)

    @classmethod
    def from_kwargs(cls, **kwargs) -> AnimateOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise EnlivenError(f"unknown option(s): {', '.join(unknown)}")
        return cls(**kwargs)
