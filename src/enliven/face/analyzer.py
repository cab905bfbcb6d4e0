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


def _run_quietly_once(graph, image: np.ndarray, started: list[bool]):
    """``graph.process(image)``, hiding the native start-up chatter of a graph's first run."""
    if started[0]:
        return graph.process(image)
    with _native_stderr_silenced():
        result = graph.process(image)
    started[0] = True
    return result


def _landmarks(found, width: int, height: int) -> np.ndarray | None:
    pts = np.array([(p.x * width, p.y * height, p.z * width) for p in found.landmark], dtype=np.float32)
    return pts if len(pts) == NUM_LANDMARKS else None


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over the smaller box's area."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller if smaller > 0 else 0.0


class FaceAnalyzer:
    """Find faces and their landmarks.

    ``static=True`` treats every image independently (photos); ``static=False`` tracks landmarks from
    frame to frame (video), which is faster and steadier. Faces come back largest first.

    The face mesh finds faces with MediaPipe's short-range detector, which misses faces that are small
    in a wide picture (group photos, side-by-sides). For photos with ``max_faces > 1`` we also run the
    full-range detector (shipped in the wheel too) and fit the mesh on a crop around each face it finds
    that the first pass missed.
    """

    CROP_SIZE = 256  # side of the crop the mesh sees around a face found by the full-range detector
    CROP_SCALE = 2.2  # crop side as a multiple of the detector's box

    def __init__(self, static: bool = True, max_faces: int = 1, min_confidence: float = 0.5):
        with _native_stderr_silenced():
            from mediapipe.python.solutions import face_detection, face_mesh

            self._mesh = face_mesh.FaceMesh(
                static_image_mode=static,
                max_num_faces=max_faces,
                refine_landmarks=True,
                min_detection_confidence=min_confidence,
                min_tracking_confidence=min_confidence,
            )
            self._extra = None
            if static and max_faces > 1:
                self._extra = (
                    face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_confidence),
                    face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                                       min_detection_confidence=min_confidence),
                )
        self.max_faces = max_faces
        self._started = [False, False, False]

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 image, largest first."""
        image = np.ascontiguousarray(image)
        h, w = image.shape[:2]
        result = _run_quietly_once(self._mesh, image, self._started[0:1])
        faces = [Face(p) for f in result.multi_face_landmarks or () if (p := _landmarks(f, w, h)) is not None]
        if self._extra is not None and len(faces) < self.max_faces:
            faces += self._small_faces(image, faces)
        return sorted(faces, key=lambda f: f.area, reverse=True)[: self.max_faces]

    def _small_faces(self, image: np.ndarray, known: list[Face]) -> list[Face]:
        from enliven.face.crop import Crop

        detector, mesh = self._extra
        h, w = image.shape[:2]
        started = self._started[1:2]
        found = []
        for det in _run_quietly_once(detector, image, started).detections or ():
            b = det.location_data.relative_bounding_box
            box = (b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h)
            if any(_overlap(box, f.box) > 0.3 for f in known + found):
                continue
            side = self.CROP_SCALE * max(box[2] - box[0], box[3] - box[1])
            k = self.CROP_SIZE / side
            centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            o2c = np.array([[k, 0, self.CROP_SIZE / 2 - k * centre[0]], [0, k, self.CROP_SIZE / 2 - k * centre[1]]])
            crop = Crop(o2c, np.array([[1 / k, 0, centre[0] - side / 2], [0, 1 / k, centre[1] - side / 2]]), self.CROP_SIZE)
            result = _run_quietly_once(mesh, crop.cut(image), self._started[2:3])
            for f in result.multi_face_landmarks or ():
                pts = _landmarks(f, self.CROP_SIZE, self.CROP_SIZE)
                if pts is not None:
                    found.append(Face(crop.to_original(pts).astype(np.float32)))
        return found

    def close(self) -> None:
        self._mesh.close()
        if self._extra is not None:
            for graph in self._extra:
                graph.close()

    def __enter__(self) -> FaceAnalyzer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
