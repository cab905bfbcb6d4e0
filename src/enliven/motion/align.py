"""Turn driving motion into target landmarks for the source face (LivePortrait's transfer rules).

Relative (default): the driver's change since its reference frame is applied to the source —
expression in canonical space (so the driver's face shape never leaks in), rotation as
``R_d,i · R_d,0ᵀ · R_s``, scale as a ratio and translation in face-size units. The reference is the frame's
shot's own (``MotionFrame.anchor``, see ``motion.tracking``), else the sequence's, else the first frame.
Absolute: the driver's canonical expression and head rotation replace the source's; the source keeps its size
and place. ``multiplier`` scales the motion (expression offsets, rotation angle, zoom and shift).

Then what a still portrait can take: the driver's camera zoom and shift are followed only within what looks
natural (eased into ``continuity.ZOOM_LIMIT`` and ``SHIFT_LIMIT``, gliding: ``CameraFollow``; ``follow_camera``
follows them in full) and the head's angles are eased into the range the engine renders cleanly
(``pose_limits``). Lost faces and cuts go through ``motion.continuity`` (hold, ease to rest, blend back in: the
output never jumps). Manual ``Controls`` are applied after all of it; measured motion is smoothed with a one-euro
filter.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from enliven.checks import number
from enliven.errors import EnlivenError
from enliven.face import geometry
from enliven.face import landmarks as lm
from enliven.motion import edits
from enliven.motion.continuity import CameraFollow, Continuity, ContinuityOptions, soft_clip
from enliven.motion.frame import MotionFrame
from enliven.motion.smooth import OneEuroFilter


@dataclass(frozen=True)
class Controls:
    """Manual edits on top of the driving motion (LivePortrait's retargeting and editing sliders).

    Eyes are given as they appear in the picture, left to right (for a frontal face that is the subject's
    right eye, then left eye). Open ratios: 0 closed … ~0.3 open … 0.8 wide.

    ``gaze`` moves both irises in the face's own frame, in eye widths (an eye's corner-to-corner distance):
    x 1 by a quarter of the eye's width to the picture's right (−1 left), y 1 by 0.15 of it down (−1 up). Around
    ±1 is as far as eyes turn; the mesh engine keeps each iris inside its eye opening whatever is asked.
    """

    eyes_open: tuple[float, float] | None = None
    lip_open: float | None = None
    yaw: float = 0.0  # degrees added to the head pose
    pitch: float = 0.0
    roll: float = 0.0
    smile: float = 0.0  # 1 broad smile, negative frown
    brows: float = 0.0  # 1 raised, negative lowered
    pout: float = 0.0  # 1 strong pout
    wink: float = 0.0  # 1 shuts the eye on the picture's left
    gaze: tuple[float, float] = (0.0, 0.0)  # (x, y): 1 looks to the picture's right / down, -1 left / up (see above)

    SLIDER_RANGE = 3.0  # smile, brows, pout, wink, gaze: ±1 is strong; past ±3 faces fold

    def __post_init__(self) -> None:
        def pair(name: str, value, low: float, high: float) -> tuple[float, float]:
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise EnlivenError(f"{name} takes two numbers, got {value!r}")
            return tuple(number(name, v, low, high) for v in value)

        if self.eyes_open is not None:
            object.__setattr__(self, "eyes_open", pair("eyes open", self.eyes_open, 0, 0.8))
        if self.lip_open is not None:
            object.__setattr__(self, "lip_open", number("lip open", self.lip_open, 0, 0.8))
        for name, limit in (("yaw", 45), ("pitch", 30), ("roll", 45)):
            object.__setattr__(self, name, number(f"{name} (degrees)", getattr(self, name), -limit, limit))
        for name in ("smile", "brows", "pout", "wink"):
            object.__setattr__(self, name, number(name, getattr(self, name), -self.SLIDER_RANGE, self.SLIDER_RANGE))
        object.__setattr__(self, "gaze", pair("gaze", self.gaze, -self.SLIDER_RANGE, self.SLIDER_RANGE))

    @property
    def active(self) -> bool:
        return self != Controls()

    def edit(self, shape: np.ndarray) -> np.ndarray:
        """Apply the expression edits to a canonical shape."""
        if self.lip_open is not None:
            shape = edits.set_lip_open(shape, self.lip_open)
        if self.smile:
            shape = edits.smile(shape, self.smile)
        if self.pout:
            shape = edits.pout(shape, self.pout)
        if self.brows:
            shape = edits.raise_brows(shape, self.brows)
        if self.eyes_open is not None:
            for side, ratio in enumerate(self.eyes_open):
                shape = edits.set_eye_open(shape, side, ratio)
        if self.wink:
            shape = edits.wink(shape, 0, self.wink)
        if any(self.gaze):
            shape = edits.look(shape, *self.gaze)
        return shape

    def rotation(self) -> np.ndarray:
        return geometry.rotation_from_angles(self.yaw, self.pitch, self.roll)


LIP_NORMALIZE_THRESHOLD = 0.03  # LivePortrait's: a source mouth open at least this much is closed first


_LIPS = sorted(set(lm.INNER_LIP_UPPER + lm.INNER_LIP_LOWER + lm.OUTER_LIP_UPPER + lm.OUTER_LIP_LOWER))


@functools.cache
def _face_width() -> float:
    """The canonical face's width (across the oval), in canonical units (outer eye-corner distances)."""
    oval = geometry.face_model().canonical[list(lm.FACE_OVAL), 0]
    return float(oval.max() - oval.min())


@dataclass(frozen=True)
class AlignOptions:
    relative: bool = True
    multiplier: float = 1.0
    normalize_lip: bool = False  # start from a closed mouth (LivePortrait's lip normalisation)
    smooth: bool = True
    smooth_cutoff: float = 1.0  # Hz at rest; lower is steadier
    smooth_beta: float = 0.05  # how fast the cutoff opens up with speed (per crop pixel/s)
    # The lips move faster than the rest of the face (a syllable is 0.1–0.3 s), so their filter opens up faster
    # with speed: with the face's, fast speech lagged and lost its peaks. Self-reenactment lip-open error on two
    # talking clips (LivePortrait's examples d10, d11): 0.042 / 0.043 with the face's filter, 0.029 / 0.033 with
    # this one, 0.016 / 0.023 unsmoothed; landmark jitter against the real clip's 0.59 / 0.54 (1.13 / 0.80
    # unsmoothed).
    lip_cutoff: float = 1.5
    lip_beta: float = 0.25
    controls: Controls = Controls()
    follow_camera: bool = False  # follow the driver's zoom and shift in full (a still source)
    pose_limits: tuple[float, float, float] | None = None  # yaw, pitch, roll (degrees) the engine renders cleanly
    continuity: ContinuityOptions = ContinuityOptions()


def limit_pose(rotation: np.ndarray, source_rotation: np.ndarray, limits: tuple[float, float, float]) -> np.ndarray:
    """``rotation`` with each angle eased into ±limit; angles the source itself has are never changed (a source
    turned past a limit keeps its turn and may move a little further)."""
    own = np.abs(geometry.rotation_to_angles(source_rotation))
    angles = geometry.rotation_to_angles(rotation)
    limited = [soft_clip(a, limit, max(0.5 * limit, o)) for a, limit, o in zip(angles, limits, own)]
    if np.allclose(limited, angles):
        return rotation
    return geometry.rotation_from_angles(*limited)


class MotionRules:
    """What a still portrait takes of driving motion, whatever space the motion is measured in (a face's canonical
    landmarks here; LivePortrait's keypoints in the keypoint engine): the head's angles eased into the engine's
    ``pose_limits``, the camera's zoom and shift eased into natural limits and glided (``CameraFollow``; unless the
    camera is followed in full or the source moves itself), and lost faces and cuts through ``Continuity`` (hold,
    ease to rest, blend back in). One motion vector a frame: expression offsets, rotation vector from the source's
    rotation, log zoom, shift. Stateful: call once per frame, in order."""

    def __init__(self, expression_size: int, fps: float, pose_limits: tuple[float, float, float] | None,
                 follow_camera: bool = False, continuity: ContinuityOptions = ContinuityOptions()):
        self.pose_limits, self.follow_camera = pose_limits, follow_camera
        self._continuity = Continuity(expression_size + 7, fps, continuity)
        self._camera = CameraFollow(fps)

    def __call__(self, live: tuple | None, source_rotation: np.ndarray, shot: int, camera: bool = True,
                 face_width: float = 1.0) -> np.ndarray:
        """The motion to render. ``live``: (expression offsets, target rotation (3×3, column vectors), log zoom,
        shift (3,) in ``face_width``'s units), or None where the face is lost; ``camera``: the zoom and shift are a
        camera's a still portrait follows only within limits (False: a moving source keeps its own place, or
        absolute motion has none)."""
        if live is None:
            return self._continuity(None, shot)
        expression, rotation, zoom, shift = live
        if camera and not self.follow_camera:
            zoom, shift = self._camera(zoom, shift, face_width)
        if self.pose_limits is not None:
            rotation = limit_pose(rotation, source_rotation, self.pose_limits)
        rotvec = _rotvec(rotation @ source_rotation.T)
        return self._continuity(np.concatenate([np.ravel(expression), rotvec, [zoom], shift]), shot)



# Rotation vectors through OpenCV's Rodrigues: ~15 µs a call against ~260 µs for scipy's Rotation (three calls per
# frame), and scipy.spatial no longer imported at start-up; the two agree within 1e-12 on rotations.
def _rotvec(matrix: np.ndarray) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(matrix, np.float64))[0].ravel()


def _matrix(rotvec: np.ndarray) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(rotvec, np.float64).reshape(3, 1))[0]


class MotionAligner:
    """Stateful: call once per driving frame, in order."""

    def __init__(
        self, source_landmarks: np.ndarray, fps: float, options: AlignOptions, reference: MotionFrame | None = None
    ):
        """``reference``: the driver's neutral frame; None takes the first frame given (a frame's own shot
        reference, ``MotionFrame.anchor``, comes first)."""
        self.source_landmarks = np.asarray(source_landmarks, np.float64)
        self.source = MotionFrame.from_landmarks(self.source_landmarks)
        self.options = options
        self._source_shape = self._start_shape(self.source)  # a still source's, worked out once
        self.reference = reference
        self._filter = OneEuroFilter(fps, options.smooth_cutoff, options.smooth_beta) if options.smooth else None
        self._lip_filter = OneEuroFilter(fps, options.lip_cutoff, options.lip_beta) if options.smooth else None
        self._shape_size = self.source_landmarks.size
        self._rules = MotionRules(self._shape_size, fps, options.pose_limits, options.follow_camera, options.continuity)

    def _start_shape(self, source: MotionFrame) -> np.ndarray:
        """The source's canonical shape that the motion starts from (its mouth closed under ``normalize_lip``)."""
        shape = source.shape.astype(np.float64)
        if self.options.normalize_lip and geometry.lip_open_ratio(shape) >= LIP_NORMALIZE_THRESHOLD:
            shape = edits.set_lip_open(shape, 0.0)
        return shape

    def _motion(self, frame: MotionFrame, src: MotionFrame, src_shape: np.ndarray, still: bool) -> tuple:
        """The frame's live motion (``MotionRules``' input): canonical shape offsets from the source at rest, the
        target head rotation, log zoom and shift (canonical units), after the multiplier."""
        m, options = self.options.multiplier, self.options
        ref = frame.anchor or self.reference
        zoom, shift = 0.0, np.zeros(3)
        if options.relative:
            shape = m * (frame.shape.astype(np.float64) - ref.shape.astype(np.float64))
            turn = frame.pose.rotation @ ref.pose.rotation.T
            if still:  # a still source follows the driver's zoom and shift too, within limits
                zoom = m * np.log(frame.scale / ref.scale)
                shift = m * (frame.pose.translation - ref.pose.translation) / ref.scale
        else:
            shape = m * (frame.shape.astype(np.float64) - src_shape)
            turn = frame.pose.rotation @ src.pose.rotation.T
        rotvec = m * _rotvec(turn)
        return shape, _matrix(rotvec) @ src.pose.rotation, zoom, shift

    def __call__(self, frame: MotionFrame, source_landmarks: np.ndarray | None = None) -> np.ndarray:
        """Target landmarks for ``frame``. ``source_landmarks``: this frame's source face, for a video source;
        it then keeps its own size and place (LivePortrait's video editing) and only expression and head
        rotation change."""
        if self.reference is None and frame.anchor is None and frame.valid:
            self.reference = frame
        moving_source = source_landmarks is not None
        src = MotionFrame.from_landmarks(np.asarray(source_landmarks, np.float64)) if moving_source else self.source
        src_shape = self._start_shape(src) if moving_source else self._source_shape
        live = self._motion(frame, src, src_shape, still=not moving_source) if frame.valid else None
        camera = not moving_source and self.options.relative
        motion = self._rules(live, src.pose.rotation, frame.shot, camera=camera, face_width=_face_width())
        n = self._shape_size
        shape = src_shape + motion[:n].reshape(src_shape.shape)
        rotation = _matrix(motion[n : n + 3]) @ src.pose.rotation
        scale = src.scale * float(np.exp(motion[n + 3]))
        translation = src.pose.translation + motion[n + 4 :] * src.scale
        controls = self.options.controls
        if controls.active:  # after the multiplier: a requested ratio or angle is met as asked
            shape, rotation = controls.edit(shape), controls.rotation() @ rotation
        target = geometry.from_canonical(shape, geometry.Pose(rotation, scale, translation))
        if self._filter is not None:
            lips = self._lip_filter(target[_LIPS])
            target = self._filter(target)
            target[_LIPS] = lips
        return target
