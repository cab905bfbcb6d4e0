"""MediaPipe face mesh (478 landmarks with irises) behind a small, typed interface."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from enliven.face import geometry
from enliven.face.landmarks import NUM_LANDMARKS

# MediaPipe's C++ logging is noisy on stderr; keep it quiet unless the user asked for it.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass(frozen=True)
class Face:
    """One detected face. ``landmarks``: (478, 3) pixels, z in the same unit (see ``face.landmarks``)."""

    landmarks: np.ndarray

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) around the landmarks, in pixels."""
        (x0, y0), (x1, y1) = self.landmarks[:, :2].min(0), self.landmarks[:, :2].max(0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)

    @functools.cached_property
    def pose(self) -> geometry.Pose:
        return geometry.fit_pose(self.landmarks)

    @property
    def eye_open(self) -> np.ndarray:
        return geometry.eye_open_ratios(self.landmarks)

    @property
    def lip_open(self) -> float:
        return float(geometry.lip_open_ratio(self.landmarks))


class FaceAnalyzer:
    """Find faces and their landmarks.

    ``static=True`` treats every image independently (photos); ``static=False`` tracks landmarks from
    frame to frame (video), which is faster and steadier. Faces come back largest first.
    """

    def __init__(self, static: bool = True, max_faces: int = 1, min_confidence: float = 0.5):
        from mediapipe.python.solutions import face_mesh

        self._mesh = face_mesh.FaceMesh(
            static_image_mode=static,
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 image, largest first."""
        h, w = image.shape[:2]
        result = self._mesh.process(np.ascontiguousarray(image))
        faces = []
        for found in result.multi_face_landmarks or ():
            pts = np.array([(p.x * w, p.y * h, p.z * w) for p in found.landmark], dtype=np.float32)
            if len(pts) == NUM_LANDMARKS:
                faces.append(Face(pts))
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> "FaceAnalyzer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
