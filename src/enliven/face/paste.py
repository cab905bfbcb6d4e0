"""Paste a rendered crop back into the full picture through a feathered mask.

Pixels where the mask is zero are copied from the original picture untouched, bit for bit.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from enliven.compiled import compiled
from enliven.face.crop import Crop


@compiled
def _blend(warped, mask, region):  # pragma: no cover - compiled; tested through Paster.paste
    # region = round(warped * mask + region * (1 - mask)) in float32, as NumPy would compute it, in place, in one
    # pass over the pixels (where the mask is 0 the picture's pixel stays as it is).
    h, w, c = warped.shape
    for i in range(h):
        for j in range(w):
            m = mask[i, j, 0]
            if m == 0.0:
                continue
            keep = np.float32(1.0) - m
            for k in range(c):
                v = np.float32(warped[i, j, k]) * m + np.float32(region[i, j, k]) * keep + np.float32(0.5)
                region[i, j, k] = np.uint8(min(max(v, np.float32(0.0)), np.float32(255.0)))


@functools.cache
def _warm_up() -> None:
    """Compile (or load from the cache) the blend once per process, when the first paster is made, not at frame 1."""
    window = np.zeros((2, 3, 3), np.uint8)[:, :2]
    # The types ``paste`` gives it: a warped crop, its mask, and a window of the picture (a strided view).
    _blend(window.copy(), np.zeros((2, 2, 1), np.float32), window)


def feathered_mask(polygon: np.ndarray, size: int, feather: float) -> np.ndarray:
    """Crop-space float mask: 1 inside ``polygon``, falling smoothly to 0 over ``feather`` pixels outside."""
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(polygon[:, :2]).astype(np.int32)], 255)
    k = max(3, int(feather) | 1)
    grown = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    soft = cv2.GaussianBlur(grown.astype(np.float32) / 255.0, (0, 0), sigmaX=feather / 3)
    soft = np.clip(np.maximum(soft, mask.astype(np.float32) / 255.0), 0.0, 1.0)
    # Fade out before the crop's edge: the warped crop has no valid pixels beyond it.
    to_edge = np.minimum(np.arange(size), np.arange(size)[::-1])
    soft *= np.clip(np.minimum.outer(to_edge, to_edge) / max(feather, 1.0), 0.0, 1.0)
    soft[soft < 1.0 / 512] = 0.0  # values this small round back to the original pixel anyway
    return soft


def square_mask(size: int, inset: float = 0.06, feather: float = 0.1) -> np.ndarray:
    """The paste mask of an engine that redraws its whole crop (background included): the crop's square, inset by
    ``inset`` of its side and feathered over ``feather`` of it, so the crop's edge never shows."""
    a, b = inset * size, size - inset * size
    return feathered_mask(np.array([[a, a], [b, a], [b, b], [a, b]]), size, feather=feather * size)


class Paster:
    """Blend crops into one picture of fixed size; the work that does not change per frame is done once."""

    def __init__(self, crop: Crop, mask: np.ndarray, frame_shape: tuple[int, int]):
        h, w = frame_shape
        mask_full = cv2.warpAffine(mask, crop.c2o, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
        ys, xs = np.nonzero(mask_full > 0)
        if len(xs) == 0:
            self.roi = None
            return
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        self.roi = (slice(y0, y1), slice(x0, x1))
        self._m = crop.c2o.copy()
        self._m[:, 2] -= (x0, y0)
        self._size = (int(x1 - x0), int(y1 - y0))
        self.mask = np.ascontiguousarray(mask_full[self.roi][..., None], np.float32)
        _warm_up()

    def paste(self, frame: np.ndarray, rendered_crop: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``frame`` with ``rendered_crop`` blended in; writes into ``out`` when given (may be ``frame``)."""
        out = frame.copy() if out is None else out
        if out is not frame:
            np.copyto(out, frame)
        if self.roi is None:
            return out
        warped = cv2.warpAffine(
            rendered_crop, self._m, self._size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        _blend(warped, self.mask, out[self.roi])  # in place: ``out`` holds ``frame``'s pixels now
        return out
