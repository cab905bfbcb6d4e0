"""MediaPipe face mesh (478 landmarks with irises) behind a small, typed interface."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from enliven.face import geometry
from enliven.face.landmarks import NUM_LANDMARKS

# MediaPipe's C++ side logs start-up chatter (TFLite delegates, graph warnings) straight to file
# descriptor 2; we hide it while a graph starts unless ENLIVEN_DEBUG is set. Errors still raise.
os.environ.setdefault("GLOG_minloglevel", "2")


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    if os.environ.get("ENLIVEN_DEBUG"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreters, some test runners)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


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
        with _native_stderr_silenced():
            from mediapipe.python.solutions import face_mesh

            self._mesh = face_mesh.FaceMesh(
                static_image_mode=static,
                max_num_faces=max_faces,
                refine_landmarks=True,
                min_detection_confidence=min_confidence,
                min_tracking_confidence=min_confidence,
            )
        self._started = False

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 image, largest first."""
        h, w = image.shape[:2]
        if self._started:
            result = self._mesh.process(np.ascontiguousarray(image))
        else:  # the graph's first run prints its start-up chatter
            with _native_stderr_silenced():
                result = self._mesh.process(np.ascontiguousarray(image))
            self._started = True
        faces = []
        for found in result.multi_face_landmarks or ():
            pts = np.array([(p.x * w, p.y * h, p.z * w) for p in found.landmark], dtype=np.float32)
            if len(pts) == NUM_LANDMARKS:
                faces.append(Face(pts))
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> FaceAnalyzer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
