"""Fine expression detail for the mesh engine: the driver's wrinkles, carried as expression ratio images.

A warp moves the source's skin but cannot crease it: a raised brow leaves the forehead smooth, a smile leaves no
fold beside the nose. Expression ratio images (Liu, Shan and Zhang, SIGGRAPH 2001; used with a 2-D warp of a
single photo in "Bringing Portraits to Life", Averbuch-Elor et al., SIGGRAPH Asia 2017) carry them over: the
driver's frame divided by its neutral frame, both in the same geometry, is the light its expression added or
took away at each point of the face. Here:

1. The driver's reference frame of the shot (``MotionFrame.anchor``, its neutral face) is warped onto the
   frame's own landmarks (piecewise affine over the face mesh), at half the driver crop's resolution.
2. The luma ratio frame / warped reference keeps only fine detail: divided by its own blur (a head turn or a
   change of light shades the whole face slowly; a wrinkle is a thin line), limited to ±WRINKLE_RANGE, and kept
   inside the face, away from its outline, the eyes and the mouth (where the warp or the mouth's inside own the
   picture).
3. The ratio is warped onto the rendered face (target landmarks) and multiplies the output, ``strength`` times.

Without the driver's pixels (audio, presets, templates) there is nothing to carry, and nothing changes.
"""

from __future__ import annotations

import cv2
import numpy as np

from enliven.engines.mesh.raster import backward_map
from enliven.face import landmarks as lm
from enliven.face.geometry import face_model
from enliven.motion.frame import MotionFrame

WORK_SCALE = 0.5  # the ratio is measured at half the driver crop's resolution (wrinkles are a few pixels wide)
DETAIL_SIGMA = 0.025  # fine detail: what a blur this wide (in driver-crop sides) takes away
NOISE_SIGMA = 0.7  # pixels (at the working scale): camera noise is smoothed out of the ratio
WRINKLE_RANGE = (0.8, 1.15)  # the ratio is kept within this: deep folds darken, none turns the skin to paint
LUMA_FLOOR = 12.0  # added to both lumas: a ratio of near-black pixels means nothing
FACE_INSET = 0.06  # the face outline is pulled in by this (of its size) ...
FEATURE_MARGIN = 0.03  # ... and the eyes and lips grown by this, before the ratio is kept inside
_OVAL = list(lm.FACE_OVAL)
_LIPS = list(lm.OUTER_LIP_UPPER) + list(lm.OUTER_LIP_LOWER[::-1][1:-1])


def _luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _eye_loop(points: np.ndarray, upper, lower) -> np.ndarray:
    return points[list(upper) + list(lower[::-1][1:-1]), :2]


def face_region(points: np.ndarray, size: int) -> np.ndarray:
    """float32 mask (0 … 1, feathered) of the face where wrinkles are carried: inside the face outline pulled in
    by FACE_INSET, outside the eyes and the lips grown by FEATURE_MARGIN (sizes relative to the face's width)."""
    oval = points[_OVAL, :2]
    width = float(np.ptp(oval[:, 0]))
    centre = oval.mean(0)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(centre + (1.0 - FACE_INSET) * (oval - centre)).astype(np.int32)], 255)
    grow = max(int(round(FEATURE_MARGIN * width)), 1)
    holes = np.zeros_like(mask)
    for loop in (_eye_loop(points, lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER),
                 _eye_loop(points, lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER), points[_LIPS, :2]):
        cv2.fillPoly(holes, [np.round(loop).astype(np.int32)], 255)
    holes = cv2.dilate(holes, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    mask = np.minimum(mask, 255 - holes).astype(np.float32) / 255.0
    return cv2.GaussianBlur(mask, (0, 0), max(grow / 2.0, 0.5))


class WrinkleTransfer:
    """Carries the driver's expression detail onto rendered frames (see the module's text)."""

    def __init__(self, strength: float = 1.0):
        self.strength = float(strength)
        self._triangles = face_model().triangles

    def _work(self, crop: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A crop's luma and landmarks at the working scale."""
        size = max(int(round(crop.shape[0] * WORK_SCALE)), 8)
        small = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        return _luma(small), points[:, :2].astype(np.float64) * (size / crop.shape[0])

    def ratio(self, frame: MotionFrame, session: dict) -> tuple[np.ndarray, np.ndarray] | None:
        """(fine-detail luma ratio of the driver's frame over its shot's reference, the frame's landmarks), both
        at the working scale; None without the pixels of both."""
        anchor = frame.anchor
        if frame.crop is None or frame.crop_landmarks is None or anchor is None or anchor.crop is None \
                or anchor.crop_landmarks is None:
            return None
        kept = session.get("wrinkle_anchor")
        if kept is None or kept[0] is not anchor:  # one reference per shot: measured once
            kept = (anchor, *self._work(anchor.crop, anchor.crop_landmarks))
            session["wrinkle_anchor"] = kept
        _, neutral, neutral_points = kept
        luma, points = self._work(frame.crop, frame.crop_landmarks)
        size = luma.shape[0]
        # The reference's face moved onto this frame's landmarks; where no triangle covers, the reference as is.
        grid = np.arange(size, dtype=np.float32)
        map_x, map_y = (a.copy() for a in np.meshgrid(grid, grid))
        backward_map(points, neutral_points, self._triangles, map_x, map_y, 1)
        aligned = cv2.remap(neutral, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        ratio = (luma + LUMA_FLOOR) / (aligned + LUMA_FLOOR)
        ratio = cv2.GaussianBlur(ratio, (0, 0), NOISE_SIGMA)
        detail = ratio / np.maximum(cv2.GaussianBlur(ratio, (0, 0), DETAIL_SIGMA * size), 1e-3)
        detail = np.clip(detail, *WRINKLE_RANGE)
        region = face_region(points, size)
        return (1.0 + region * (detail - 1.0)).astype(np.float32), points

    def apply(self, out: np.ndarray, target: np.ndarray, frame: MotionFrame | None, session: dict,
              stride: int = 4) -> np.ndarray:
        """``out`` (the rendered crop) with the driver's wrinkles carried onto the target's face; itself when there
        is nothing to carry."""
        if self.strength == 0.0 or frame is None:
            return out
        measured = self.ratio(frame, session)
        if measured is None:
            return out
        ratio, points = measured
        size = out.shape[0]
        cells = size // stride
        map_x, map_y = np.full((cells, cells), -1e4, np.float32), np.full((cells, cells), -1e4, np.float32)
        backward_map(target[:, :2], points, self._triangles, map_x, map_y, stride)
        covered = map_x > -1e3
        if not covered.any():
            return out
        # Upsample where the face is; outside it, the ratio's border (1: no change) is sampled.
        full_x = cv2.resize(np.where(covered, map_x, -1e4), (size, size), interpolation=cv2.INTER_LINEAR)
        full_y = cv2.resize(np.where(covered, map_y, -1e4), (size, size), interpolation=cv2.INTER_LINEAR)
        carried = cv2.remap(ratio, full_x, full_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=1.0)
        gain = 1.0 + self.strength * (carried - 1.0)
        return np.clip(out.astype(np.float32) * gain[..., None] + 0.5, 0, 255).astype(np.uint8)
