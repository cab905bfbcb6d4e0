"""Square, rotation-aligned face crops (LivePortrait's conventions) with both transforms kept."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from enliven.face import landmarks as lm

DEFAULT_CROP_SIZE = 512
DEFAULT_CROP_SCALE = 2.3  # crop side / face extent
DEFAULT_CROP_VY = -0.125  # shift of the centre along the face's up axis, in crop sides (negative = up)
WHOLE_BLOCKS_FROM = 8  # a crop this many times smaller than the face's pixels averages whole blocks (see Crop.cut)


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
            # then warp what is left, a rotation at about unit scale. Only the part of the picture the crop
            # covers is averaged, with a margin of a few averaged pixels so the warp never reaches its edge
            # (except at the picture's own edges): tracking cuts a small thumbnail of every face of every
            # frame, and averaging the whole frame for it cost more than all else it does.
            h, w = image.shape[:2]
            x0, y0, x1, y1 = self._footprint(w, h, margin=3.0 / shrink)
            factor = int(np.ceil(1.0 / shrink))
            if factor >= WHOLE_BLOCKS_FROM and min(x1 - x0, y1 - y0) >= factor:
                # Whole blocks of factor × factor pixels: OpenCV's fast path for a whole-number ratio (4x less
                # time than any other ratio); the warp then enlarges by less than 1 + 1/WHOLE_BLOCKS_FROM.
                x1, y1 = x0 + (x1 - x0) // factor * factor, y0 + (y1 - y0) // factor * factor
                size = ((x1 - x0) // factor, (y1 - y0) // factor)
            else:
                size = (max(1, round((x1 - x0) * shrink)), max(1, round((y1 - y0) * shrink)))
            small = cv2.resize(image[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
            sx, sy = small.shape[1] / (x1 - x0), small.shape[0] / (y1 - y0)
            # The centre of averaged pixel q is at (x0, y0) + (q + 0.5) / (sx, sy) - 0.5 in the picture (pixel
            # centres at whole numbers in both): the mean of the pixels it covers.
            offset = m[:, 2] + m[:, :2] @ np.array([x0 + 0.5 / sx - 0.5, y0 + 0.5 / sy - 0.5])
            m = np.concatenate([m[:, :1] / sx, m[:, 1:2] / sy, offset[:, None]], axis=1)
            image = small
        return cv2.warpAffine(image, m, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def _footprint(self, w: int, h: int, margin: float) -> tuple[int, int, int, int]:
        """The pixels (x0, y0, x1, y1) of a ``w`` × ``h`` picture the crop covers, ``margin`` pixels wider on every
        side, within the picture; the nearest edge pixels of the picture when it covers none (it samples only
        those then: the warp replicates the border)."""
        corners = self.to_original(np.array([[0, 0], [self.size, 0], [0, self.size], [self.size, self.size]], float))
        lo, hi = corners.min(0) - margin, corners.max(0) + margin
        x0 = int(np.clip(np.floor(lo[0]), 0, w - 1))
        y0 = int(np.clip(np.floor(lo[1]), 0, h - 1))
        x1 = int(np.clip(np.ceil(hi[0]), x0 + 1, w))
        y1 = int(np.clip(np.ceil(hi[1]), y0 + 1, h))
        return x0, y0, x1, y1


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
