"""Motion types: one frame of face motion, and a (possibly streamed) sequence of them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from enliven.face import geometry


@dataclass(frozen=True)
class MotionFrame:
    """A face's motion in one frame, split into expression and head pose.

    ``shape`` is the pose-normalised (canonical) face, so it carries expression and face shape but not
    where the head points; ``rotation``/``scale``/``translation`` place it in the driver's picture
    (see ``face.geometry``). Arrays are float32 so a frame saved to a template and loaded back is
    bit-identical to the one computed from the video. ``valid`` is False where the face was lost and
    the values were carried over from the last good frame. ``crop`` is the driver's face crop, attached
    only for engines that read motion from pixels (see ``Engine.driving_crop``); it is never saved, and
    ``crop_landmarks`` are the driver's landmarks in its pixels (478, 3), so an engine can find parts of the face
    in it (the mesh engine takes the inside of the driver's mouth from there).
    ``keypoints`` is LivePortrait's motion for this frame (``kp``, ``exp``, ``rotation``, ``scale``, ``t``,
    ``angles``), when a template carries it (extracted with the keypoint engine, or imported from a
    LivePortrait ``.pkl``; ``kp`` is NaN where the template had none: LivePortrait builds the driving
    keypoints from the source's own canonical ones). ``shot`` numbers the driving clip's shots (cuts, see
    ``motion.tracking``) and ``anchor`` is the frame this shot's motion is measured from (None: the sequence's
    reference).
    """

    shape: np.ndarray
    rotation: np.ndarray
    scale: float
    translation: np.ndarray
    valid: bool = True
    crop: np.ndarray | None = None
    crop_landmarks: np.ndarray | None = None
    keypoints: dict[str, np.ndarray] | None = None
    shot: int = 0
    anchor: MotionFrame | None = None

    @classmethod
    def from_landmarks(cls, points: np.ndarray) -> MotionFrame:
        pose = geometry.fit_pose(points)
        return cls(
            shape=geometry.to_canonical(points, pose).astype(np.float32),
            rotation=pose.rotation.astype(np.float32),
            scale=float(np.float32(pose.scale)),
            translation=pose.translation.astype(np.float32),
        )

    @property
    def pose(self) -> geometry.Pose:
        return geometry.Pose(self.rotation.astype(np.float64), float(self.scale), self.translation.astype(np.float64))

    def landmarks(self) -> np.ndarray:
        return geometry.from_canonical(self.shape, self.pose)

    def lost(self) -> MotionFrame:
        """This frame's values, marked as a carried-over substitute for a lost face."""
        return replace(self, valid=False)


@dataclass(frozen=True)
class TrackingSummary:
    """What the tracking stage decided about a driving video (see ``motion.tracking``)."""

    shots: int
    people: int
    followed: str  # who was followed, in words


@dataclass
class MotionSequence:
    """Frames of motion at ``fps``, streamed once.

    ``reference`` is the neutral frame relative motion is measured from; when None, the first frame.
    ``length`` may be an estimate (container metadata) or None. ``measured`` motion (from a camera) is
    smoothed by default; synthetic motion (presets) is already clean. ``audio`` is a file whose audio
    track belongs with the motion.
    """

    frames: Iterable[MotionFrame]
    fps: float
    length: int | None = None
    reference: MotionFrame | None = None
    measured: bool = True
    audio: Path | None = None
    origin: str = ""
    has_landmarks: bool = True  # False for LivePortrait templates: keypoint motion only
    tracking: TrackingSummary | None = None  # driving videos: shots and the followed person
    lost: int = field(default=0, init=False)

    def __iter__(self) -> Iterator[MotionFrame]:
        for frame in self.frames:
            if not frame.valid:
                self.lost += 1
            yield frame

    def close(self) -> None:
        """End the stream where it is: what its source holds open (a decoder and its thread, an audio file, the
        first pass's landmark file) is released now, not when the garbage collector gets to it."""
        close = getattr(self.frames, "close", None)
        if close is not None:
            close()
