"""Face identity embeddings (dlib's 128-d ResNet from the ``face-recognition-models`` package), offline."""

from __future__ import annotations

import warnings

import numpy as np

from enliven.errors import EnlivenError

NEEDS = "pip install dlib-bin face-recognition-models 'setuptools<81' (or enliven[bench])"


class IdentityEmbedder:
    """128-d identity vectors of faces located by our 478 landmarks (no second face detector needed)."""

    def __init__(self) -> None:
        try:
            import dlib

            with warnings.catch_warnings():  # its pkg_resources import warns on every start
                warnings.simplefilter("ignore")
                import face_recognition_models as models
        except ImportError:
            raise EnlivenError(f"identity similarity needs dlib: {NEEDS}") from None
        self._dlib = dlib
        self._shape = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
        self._net = dlib.face_recognition_model_v1(models.face_recognition_model_location())

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        x0, y0 = landmarks[:, :2].min(0)
        x1, y1 = landmarks[:, :2].max(0)
        box = self._dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
        chip = self._dlib.get_face_chip(np.ascontiguousarray(image), self._shape(image, box), size=150)
        v = np.asarray(self._net.compute_face_descriptor(chip), np.float64)
        return v / np.linalg.norm(v)
