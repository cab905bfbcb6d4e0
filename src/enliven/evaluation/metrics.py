"""Picture and landmark metrics (the papers' L1 / PSNR / SSIM / LMD, plus ratio, pose and jitter errors).

Pictures are RGB uint8 arrays; landmarks are (478, 2|3) pixel arrays as ``face.analyzer`` returns them.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from enliven.face import geometry
from enliven.face import landmarks as lm

SSIM_SIGMA = 1.5  # Wang et al. 2004: Gaussian window, sigma 1.5, 11 taps; K1 0.01, K2 0.03
SSIM_RADIUS = 5


def l1(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference, as a fraction of the full range (0 identical, 1 opposite)."""
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean() / 255.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for identical pictures."""
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity (Gaussian window, per channel, averaged; borders of the window radius dropped)."""
    x, y = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = 2 * SSIM_RADIUS + 1

    def blur(img):
        return cv2.GaussianBlur(img, (k, k), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    r = SSIM_RADIUS
    return float(s[r:-r, r:-r].mean())


def interocular(points: np.ndarray) -> float:
    """Outer eye-corner distance (2D), the scale LMD is normalised by."""
    return float(np.linalg.norm(points[lm.RIGHT_EYE_CORNERS[0], :2] - points[lm.LEFT_EYE_CORNERS[1], :2]))


def landmark_distance(pred: np.ndarray, truth: np.ndarray) -> float:
    """LMD: mean 2D distance over the 468 mesh points, in units of the truth's inter-ocular distance."""
    d = np.linalg.norm(pred[: lm.NUM_MESH, :2] - truth[: lm.NUM_MESH, :2], axis=1)
    return float(d.mean() / interocular(truth))


class JitterMeter:
    """Streaming mean landmark acceleration (second difference), in inter-ocular units per frame²."""

    def __init__(self) -> None:
        self._prev: list[np.ndarray] = []
        self.total, self.count = 0.0, 0

    def add(self, points: np.ndarray | None) -> None:
        if points is None:  # a lost face breaks the chain
            self._prev = []
            return
        p = points[: lm.NUM_MESH, :2] / interocular(points)
        self._prev = (self._prev + [p])[-3:]
        if len(self._prev) == 3:
            a, b, c = self._prev
            self.total += float(np.linalg.norm(c - 2 * b + a, axis=1).mean())
            self.count += 1

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else math.nan


def finite_mean(values: list[float]) -> float:
    """Mean of the finite values; ``inf`` if every value is infinite (identical pictures), NaN if none."""
    finite = [v for v in values if math.isfinite(v)]
    if finite:
        return float(np.mean(finite))
    return math.inf if values and all(math.isinf(v) for v in values) else math.nan


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# The mouth (self-reenactment, on frames where the real mouth is open): a box around the real outer lips and the
# inside of its inner-lip contour, both placed by the real frame's landmarks, so the output is judged where the
# real mouth is and never by the landmarks of what is judged.
MOUTH_OPEN = 0.08  # lip-open ratio (inner-lip gap / mouth width) above which a real mouth counts as open
MOUTH_BOX_MARGIN = 0.15  # the box around the outer lips grows by this fraction of the mouth's width on each side
MOUTH_BOX_SIDE = 96  # the box is resized to this many pixels wide before SSIM, so big and small faces weigh alike
_OUTER_LOOP = list(lm.OUTER_LIP_UPPER) + list(lm.OUTER_LIP_LOWER[::-1][1:-1])
_INNER_LOOP = list(lm.INNER_LIP_UPPER) + list(lm.INNER_LIP_LOWER[::-1][1:-1])


def luma(image: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an RGB picture, float64 0 … 255."""
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def mouth_scores(out: np.ndarray, truth: np.ndarray, truth_points: np.ndarray) -> tuple[float, float] | None:
    """(SSIM of the mouth box, inner-mouth brightness output / real) where the real mouth is open, else None.

    The box is the real outer lips' bounding box grown by MOUTH_BOX_MARGIN of the mouth's width, scaled to
    MOUTH_BOX_SIDE pixels wide; the brightness is the mean luma inside the real inner-lip contour. A dark hole
    where the real mouth shows teeth reads well below 1; teeth where it is dark, above 1."""
    if float(geometry.lip_open_ratio(truth_points)) < MOUTH_OPEN:
        return None
    outer = truth_points[_OUTER_LOOP, :2]
    width = float(np.ptp(outer[:, 0]))
    (x0, y0), (x1, y1) = outer.min(0) - MOUTH_BOX_MARGIN * width, outer.max(0) + MOUTH_BOX_MARGIN * width
    h, w = truth.shape[:2]
    x0, y0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
    x1, y1 = min(int(np.ceil(x1)), w), min(int(np.ceil(y1)), h)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    scale = MOUTH_BOX_SIDE / (x1 - x0)
    size = (MOUTH_BOX_SIDE, max(2 * SSIM_RADIUS + 2, round((y1 - y0) * scale)))
    box_out = cv2.resize(out[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
    box_truth = cv2.resize(truth[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
    inside = np.zeros(truth.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(truth_points[_INNER_LOOP, :2]).astype(np.int32)], 1)
    inside = inside.astype(bool)
    if inside.sum() < 4:
        return None
    real = float(luma(truth)[inside].mean())
    return ssim(box_out, box_truth), float(luma(out)[inside].mean()) / max(real, 1.0)

