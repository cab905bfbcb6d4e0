"""The face-region picture and the full/face/lip masks Hallo conditions on, from our face landmarks.

As the release's ``get_mask`` and ``ImageProcessor.preprocess`` (hallo/utils/util.py, hallo/datasets/
image_processor.py): boxes around MediaPipe's face-oval points (expanded 1.2×) and lip points (expanded 2×),
each box a filled rectangle; the face box (3 channels, [0, 1], at the picture's size) is the face locator's
input. For the audio modules: both boxes resized to 64², Gaussian-blurred (51² for the face, 31² for the lips)
and stretched to 0 … 255; ``lip`` is the blurred lip box, ``face`` the blurred face box minus it (saturating),
``full`` (the "background") 1 − the blurred face box; each resized (bilinear, PIL's, as torchvision's ``Resize``
on pictures) to the latent's size and its halves, in [0, 1].

Difference kept: our landmarks come from our analyser (MediaPipe's face mesh on the crop, the same 478-point
model the release's FaceLandmarker runs), so the boxes are the release's up to the detectors' differences.
The mask levels are at 1/8, 1/16, 1/32, 1/64 of the picture's size (the release hard-codes 64, 32, 16, 8: the
same at its 512²).
"""

from __future__ import annotations

import numpy as np

from enliven.engines.audio_diffusion.model import MASK_LEVELS

SILHOUETTE = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
              176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 146, 91, 181, 84, 17, 314, 405, 321, 375)
FACE_EXPAND, LIP_EXPAND = 1.2, 2.0
BLUR_SIZE = 64
FACE_BLUR, LIP_BLUR = 51, 31


def _expand(box, width: int, height: int, ratio: float):
    """The release's ``expand_region``: about the box's centre (floor-halved), kept inside the picture."""
    min_x, max_x, min_y, max_y = box
    mid_x, mid_y = (max_x + min_x) // 2, (max_y + min_y) // 2
    side_x, side_y = (max_x - min_x) * ratio, (max_y - min_y) * ratio
    min_x, max_x = mid_x - side_x // 2, mid_x + side_x // 2
    min_y, max_y = mid_y - side_y // 2, mid_y + side_y // 2
    if min_x < 0:
        max_x, min_x = max_x - min_x, 0
    if max_x > width:
        min_x, max_x = min_x - (max_x - width), width
    if min_y < 0:
        max_y, min_y = max_y - min_y, 0
    if max_y > height:
        min_y, max_y = min_y - (max_y - height), height
    return min_x, max_x, min_y, max_y


def box_mask(points: np.ndarray, ids, width: int, height: int, ratio: float) -> np.ndarray:
    """(height, width) uint8: 255 inside the expanded box around ``points[ids]``."""
    chosen = np.asarray(points, np.float64)[list(ids), :2]
    low, high = np.round(chosen.min(0)), np.round(chosen.max(0))
    min_x, max_x, min_y, max_y = _expand((low[0], high[0], low[1], high[1]), width, height, ratio)
    mask = np.zeros((height, width), np.uint8)
    mask[max(round(min_y), 0):round(max_y), max(round(min_x), 0):round(max_x)] = 255
    return mask


def _blur(mask: np.ndarray, kernel: int) -> np.ndarray:
    import cv2

    small = cv2.resize(mask, (BLUR_SIZE, BLUR_SIZE))
    blurred = cv2.GaussianBlur(small, (kernel, kernel), 0)
    return cv2.normalize(blurred, None, 0, 255, cv2.NORM_MINMAX)


def _levels(mask: np.ndarray, size: int) -> list[np.ndarray]:
    from PIL import Image

    picture = Image.fromarray(mask)
    out = []
    for level in range(MASK_LEVELS):
        side = max(size // (8 * 2**level), 1)
        out.append(np.asarray(picture.resize((side, side), Image.BILINEAR), np.float32).reshape(-1) / 255)
    return out


def region_conditions(landmarks: np.ndarray, size: int) -> tuple[np.ndarray, list]:
    """For a ``size``² face crop and its landmarks (478, ≥2, crop pixels): the face locator's input (3, size, size)
    float32 in [0, 1], and per mask level the (full, face, lip) masks, flat float32."""
    import cv2

    face = box_mask(landmarks, SILHOUETTE, size, size, FACE_EXPAND)
    lip = box_mask(landmarks, LIPS, size, size, LIP_EXPAND)
    face_blur, lip_blur = _blur(face, FACE_BLUR), _blur(lip, LIP_BLUR)
    background = ((1.0 - face_blur / 255.0) * 255).astype(np.uint8)
    separate_face = cv2.subtract(face_blur, lip_blur)
    levels = list(zip(_levels(background, size), _levels(separate_face, size), _levels(lip_blur, size)))
    region = np.repeat((face.astype(np.float32) / 255)[None], 3, axis=0)
    return region, levels
