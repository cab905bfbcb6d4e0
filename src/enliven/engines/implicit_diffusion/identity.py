"""The identity embedding HunyuanPortrait's appearance adapters attend to: ArcFace (the user's ``arcface.onnx``,
Arc2Face's) on a 112² crop aligned by 5 face points.

As the release: a similarity transform (least squares, Umeyama) takes the 5 points onto the standard ArcFace
template (InsightFace's 96×112 template shifted 8 px right for 112×112); the picture is resampled bilinearly
(black outside) to 112², kept as floats in [0, 1] (skimage's ``warp`` with no rounding to bytes), RGB, no
mean/std; the network's output is divided by its L2 norm.

Difference: the release takes its 5 points from a YOLOv5-face detector; we take them from our MediaPipe
landmarks (``motion.five_points``: iris centres, nose tip, mouth corners), so the crop can sit a pixel or two
differently and the embedding differ a little.

Checked against the release's ``align_face`` (skimage) on the same picture and points: the crops differ by at
most 2.3e-6 (its template statistics are float32), the embeddings from one ONNX network by 2e-6 relative.
"""

from __future__ import annotations

import numpy as np
import torch

from enliven.engines.implicit_diffusion.implicit_motion import five_points

CROP = 112
# ArcFace's 5-point template for 112×112 (InsightFace's 96×112 one with x + 8): eyes, nose tip, mouth corners,
# image-left first.
_TEMPLATE_96 = np.array(
    [(30.2946, 51.6963), (65.5318, 51.5014), (48.0252, 71.7366), (33.5493, 92.3655), (62.7299, 92.2041)], np.float32
)
# Shifted in float32 as the release does, so our crop is the release's to ~1e-7.
TEMPLATE = (_TEMPLATE_96 + np.array([8, 0], np.float32)).astype(np.float64)
EMBEDDING = 512


def similarity_to_template(points5) -> np.ndarray:
    """The 2×3 similarity (rotation, uniform scale, translation) that best maps ``points5`` onto ``TEMPLATE``
    in the least-squares sense (``face.geometry.similarity_2x3``)."""
    from enliven.face.geometry import similarity_2x3

    return similarity_2x3(points5, TEMPLATE)


def _aligned_float(image_uint8: np.ndarray, points5) -> np.ndarray:
    """(112, 112, 3) float64 in [0, 1]: bilinear samples at the template pixels' positions in the picture;
    each of the four neighbours outside the picture counts as black (as skimage's constant mode)."""
    matrix = similarity_to_template(points5)
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    ys, xs = np.mgrid[0:CROP, 0:CROP].astype(np.float64)
    sx = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    sy = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    picture = np.asarray(image_uint8, np.float64) / 255
    height, width = picture.shape[:2]
    x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]

    def at(y, x):
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        return np.where(inside[..., None], picture[np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)], 0.0)

    top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
    bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
    return np.clip(top * (1 - fy) + bottom * fy, 0.0, 1.0)


def aligned_face(image_uint8: np.ndarray, points5) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture and its 5 points (``motion.five_points`` order) → the 112×112×3 uint8
    ArcFace crop (rounded; ``identity_features`` uses the unrounded values, as the release does)."""
    return np.round(_aligned_float(image_uint8, points5) * 255).astype(np.uint8)


def identity_features(session, image_uint8: np.ndarray, landmarks) -> torch.Tensor:
    """ArcFace embedding of the face whose 478 MediaPipe landmarks are given: (1, 1, 512), unit length.

    ``session``: an onnxruntime ``InferenceSession`` of ``arcface.onnx`` (``checkpoints.arcface_session``), or
    None for the release's fallback without ArcFace (zeros)."""
    if session is None:
        return torch.zeros(1, 1, EMBEDDING)
    crop = _aligned_float(image_uint8, five_points(landmarks))
    batch = crop.transpose(2, 0, 1)[None].astype(np.float32)
    embedding = np.asarray(session.run(None, {session.get_inputs()[0].name: batch})[0], np.float32).reshape(1, -1)
    norm = np.linalg.norm(embedding)
    if not norm > 0:
        raise ValueError("ArcFace returned a zero embedding")
    return torch.from_numpy(embedding / norm).view(1, 1, -1)
