"""The face embedding Hallo's image projection reads: InsightFace's recognition network (``glintr100.onnx`` in the
release's ``face_analysis/models/``) on a 112² crop aligned by 5 face points, its raw (unnormalised) output.

As InsightFace's ``ArcFaceONNX.get`` with ``norm_crop``: a least-squares similarity (Umeyama) maps the 5 points onto
ArcFace's 112² template, ``cv2.warpAffine`` (bilinear, black outside) cuts the crop, and the network reads
``(RGB − 127.5) / 127.5`` in NCHW. Differences kept: the release's 5 points come from InsightFace's SCRFD
detector; ours from our MediaPipe landmarks (iris centres, nose tip, mouth corners), so the crop can sit a pixel
or two differently. Without the network file or onnxruntime the embedding is zeros, which is what the release
itself uses when it finds no face (the conditional and unconditional contexts then coincide).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CROP = 112
# ArcFace's 112×112 template (InsightFace's arcface_dst): eyes, nose tip, mouth corners, image-left first.
TEMPLATE = np.array([(38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655),
                     (70.7299, 92.2041)], np.float64)
MODEL = "face_analysis/models/glintr100.onnx"


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """Eyes (iris centres), nose tip, mouth corners from MediaPipe's 478 landmarks, image-left first each pair."""
    points = np.asarray(landmarks, np.float64)[:, :2]
    eyes = sorted((points[468], points[473]), key=lambda p: p[0])
    mouth = sorted((points[61], points[291]), key=lambda p: p[0])
    return np.array([eyes[0], eyes[1], points[1], mouth[0], mouth[1]])


def similarity(source: np.ndarray, target: np.ndarray = TEMPLATE) -> np.ndarray:
    """The 2×3 similarity mapping ``source`` onto ``target`` in the least-squares sense (Umeyama)."""
    from enliven.face.geometry import similarity_2x3

    return similarity_2x3(source, target)


def face_embedding(image: np.ndarray, landmarks: np.ndarray, weights_root: Path | None) -> np.ndarray | None:
    """(512,) float32, or None when the network or onnxruntime is not there."""
    path = None if weights_root is None else Path(weights_root) / MODEL
    if path is None or not path.is_file():
        return None
    try:
        import onnxruntime
    except ImportError:
        return None
    import cv2

    crop = cv2.warpAffine(np.ascontiguousarray(image), similarity(five_points(landmarks)), (CROP, CROP),
                          borderValue=0.0)
    blob = ((crop.astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[None]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: blob})[0]
    return np.asarray(out, np.float32).reshape(-1)
