"""Square, rotation-aligned face crops (LivePortrait's conventions) with both transforms kept."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from enliven.face import landmarks as lm

DEFAULT_CROP_SIZE = 512
DEFAULT_CROP_SCALE = 2.3  # crop side / face extent
DEFAULT_CROP_VY = -0.125  # shift of the centre along the face's up axis, in crop sides (negative = up)


@dataclass(frozen=True)
class Crop:
    """``o2c`` maps original-image pixels to crop pixels (2x3 affine); ``c2o`` is its inverse."""

    o2c: np.ndarray
    c2o: np.ndarray
    size: int

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2|3) points into the crop; z is scaled by the same factor as x and y."""
        return _apply(self.o2c, points)

    def to_original(self, points: np.ndarray) -> np.ndarray:
        return _apply(self.c2o, points)

    def cut(self, image: np.ndarray) -> np.ndarray:
        m = self.o2c
        shrink = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        if shrink < 0.5:
            # A big face in a big picture: average pixels down first (bilinear sampling alone would alias),
            # then warp what is left, a rotation at about unit scale.
            h, w = image.shape[:2]
            small = cv2.resize(image, (max(1, round(w * shrink)), max(1, round(h * shrink))),
                               interpolation=cv2.INTER_AREA)
            sx, sy = small.shape[1] / w, small.shape[0] / h
            m = np.concatenate([m[:, :1] / sx, m[:, 1:2] / sy, m[:, 2:]], axis=1)
            image = small
        return cv2.warpAffine(image, m, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64)
    out = points.copy()
    out[:, :2] = points[:, :2] @ m[:, :2].T + m[:, 2]
    if points.shape[1] > 2:
        out[:, 2] = points[:, 2] * np.sqrt(abs(np.linalg.det(m[:, :2])))
    return out


@dataclass(frozen=True)
class CropSpec:
    """How to crop a face: output side, size relative to the face, vertical shift, and whether to deskew."""

    size: int = DEFAULT_CROP_SIZE
    scale: float = DEFAULT_CROP_SCALE
    vy: float = DEFAULT_CROP_VY
    rotate: bool = True

    def crop(self, points: np.ndarray) -> Crop:
        return face_crop(points, self.size, self.scale, self.vy, self.rotate)


def face_crop(
    points: np.ndarray,
    size: int = DEFAULT_CROP_SIZE,
    scale: float = DEFAULT_CROP_SCALE,
    vy: float = DEFAULT_CROP_VY,
    rotate: bool = True,
) -> Crop:
    """Crop around a face: rotated so the eyes→mouth direction points down, ``scale`` × the face extent.

    The face extent is measured from the eyebrows to the chin and across the face oval, which is the
    region LivePortrait's 106-point landmarks cover, so ``scale`` means the same in both tools. With
    ``rotate=False`` the crop stays axis-aligned (how LivePortrait crops driving videos, keeping head roll).
    """
    pts = np.asarray(points, np.float64)[:, :2]
    eyes = (pts[list(lm.RIGHT_EYE_CORNERS)].mean(0) + pts[list(lm.LEFT_EYE_CORNERS)].mean(0)) / 2
    mouth = pts[list(lm.MOUTH_CORNERS)].mean(0)
    down = mouth - eyes
    angle = np.arctan2(down[0], down[1]) if rotate else 0.0  # 0 when the face is upright
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])  # turns image coordinates into face-upright coordinates
    region = pts[list(lm.FACE_OVAL) + list(lm.RIGHT_BROW) + list(lm.LEFT_BROW)]
    upright = region @ rot.T
    top = (pts[list(lm.RIGHT_BROW) + list(lm.LEFT_BROW)] @ rot.T)[:, 1].min()
    x0, x1 = upright[:, 0].min(), upright[:, 0].max()
    y1 = upright[:, 1].max()
    extent = max(x1 - x0, y1 - top)
    side = extent * scale
    centre_upright = np.array([(x0 + x1) / 2, (top + y1) / 2 + vy * side])
    centre = centre_upright @ rot  # back to image coordinates
    k = size / side
    o2c = np.zeros((2, 3))
    o2c[:, :2] = k * rot
    o2c[:, 2] = size / 2 - o2c[:, :2] @ centre
    return Crop(o2c=o2c, c2o=cv2.invertAffineTransform(o2c), size=size)
