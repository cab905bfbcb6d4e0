"""Expression-aware landmark images (Follow-Your-Emoji style) for inspecting motion.

Only what carries expression is drawn: eyebrows, eye contours, inner lips and pupils — no face contour,
so the picture shows expression and head motion without the driver's face shape.
"""

from __future__ import annotations

import cv2
import numpy as np

from enliven.face import geometry
from enliven.face import landmarks as lm
from enliven.motion.frame import MotionFrame

# RGB colours per part, one hue each so a viewer (or a model) can tell them apart.
_PARTS = (
    (lm.RIGHT_BROW[:5] + lm.RIGHT_BROW[5:][::-1], (255, 170, 0), False),
    (lm.LEFT_BROW[:5] + lm.LEFT_BROW[5:][::-1], (255, 170, 0), False),
    (lm.RIGHT_EYE_UPPER + lm.RIGHT_EYE_LOWER[::-1], (0, 200, 255), True),
    (lm.LEFT_EYE_UPPER + lm.LEFT_EYE_LOWER[::-1], (0, 200, 255), True),
    (lm.INNER_LIP_UPPER + lm.INNER_LIP_LOWER[::-1], (255, 60, 120), True),
)
_PUPIL = (80, 255, 80)


def draw_motion_frame(frame: MotionFrame, reference: MotionFrame, size: int = 512) -> np.ndarray:
    """RGB image of ``frame``'s face, placed so that ``reference`` would sit centred and upright."""
    unit = 0.32 * size / 1.0  # canonical units (eye-corner distance) to pixels at the reference's scale
    zoom = frame.scale / reference.scale
    shift = (frame.translation - reference.translation) / reference.scale * unit
    rel = frame.pose.rotation @ reference.pose.rotation.T
    centre = np.array([size / 2, size * 0.45, 0.0])
    pose = geometry.Pose(rel, unit * zoom, centre + shift)
    pts = geometry.from_canonical(frame.shape, pose)[:, :2]
    canvas = np.zeros((size, size, 3), np.uint8)
    thickness = max(1, size // 256)
    for idx, colour, closed in _PARTS:
        poly = np.round(pts[list(idx)] * 16).astype(np.int32)
        cv2.polylines(canvas, [poly], closed, colour, thickness, cv2.LINE_AA, shift=4)
    iris_radius = max(2, int(0.04 * unit))
    for centre_idx in (lm.RIGHT_IRIS[0], lm.LEFT_IRIS[0]):
        x, y = np.round(pts[centre_idx] * 16).astype(np.int32)
        cv2.circle(canvas, (int(x), int(y)), iris_radius * 16, _PUPIL, -1, cv2.LINE_AA, shift=4)
    return canvas
