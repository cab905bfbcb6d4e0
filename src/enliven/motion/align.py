"""Turn driving motion into target landmarks for the source face (LivePortrait's transfer rules).

Relative (default): the driver's change since its reference frame is applied to the source —
expression in canonical space (so the driver's face shape never leaks in), rotation as
``R_d,i · R_d,0ᵀ · R_s``, scale as a ratio and translation in face-size units. Absolute: the driver's
canonical expression and head rotation replace the source's; the source keeps its size and place.
Finally ``multiplier`` scales the landmark motion (``x_s + (x_d - x_s)·m``) and measured motion is
smoothed with a one-euro filter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from enliven.face import geometry
from enliven.motion.frame import MotionFrame
from enliven.motion.smooth import OneEuroFilter


@dataclass(frozen=True)
class AlignOptions:
    relative: bool = True
    multiplier: float = 1.0
    smooth: bool = True
    smooth_cutoff: float = 1.0  # Hz at rest; lower is steadier
    smooth_beta: float = 0.05  # how fast the cutoff opens up with speed (per crop pixel/s)


class MotionAligner:
    """Stateful: call once per driving frame, in order."""

    def __init__(
        self, source_landmarks: np.ndarray, fps: float, options: AlignOptions, reference: MotionFrame | None = None
    ):
        """``reference``: the driver's neutral frame; None takes the first frame given."""
        self.source_landmarks = np.asarray(source_landmarks, np.float64)
        self.source = MotionFrame.from_landmarks(self.source_landmarks)
        self.options = options
        self.reference = reference
        self._filter = OneEuroFilter(fps, options.smooth_cutoff, options.smooth_beta) if options.smooth else None

    def __call__(self, frame: MotionFrame, source_landmarks: np.ndarray | None = None) -> np.ndarray:
        """Target landmarks for ``frame``. ``source_landmarks``: this frame's source face, for a video source;
        it then keeps its own size and place (LivePortrait's video editing) and only expression and head
        rotation change."""
        if self.reference is None:
            self.reference = frame
        if source_landmarks is None:
            src, src_points, moving_source = self.source, self.source_landmarks, False
        else:
            src_points = np.asarray(source_landmarks, np.float64)
            src, moving_source = MotionFrame.from_landmarks(src_points), True
        ref = self.reference
        if self.options.relative:
            shape = src.shape.astype(np.float64) + (frame.shape.astype(np.float64) - ref.shape.astype(np.float64))
            rotation = frame.pose.rotation @ ref.pose.rotation.T @ src.pose.rotation
            ratio = src.scale / ref.scale
            scale = src.scale if moving_source else src.scale * frame.scale / ref.scale
            translation = src.pose.translation
            if not moving_source:
                translation = translation + (frame.pose.translation - ref.pose.translation) * ratio
        else:
            shape, rotation = frame.shape.astype(np.float64), frame.pose.rotation
            scale, translation = src.scale, src.pose.translation
        target = geometry.from_canonical(shape, geometry.Pose(rotation, scale, translation))
        m = self.options.multiplier
        if m != 1.0:
            target = src_points + (target - src_points) * m
        if self._filter is not None:
            target = self._filter(target)
        return target
