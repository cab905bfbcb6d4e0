"""MediaPipe face mesh (478 landmarks with irises) behind a small, typed interface."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from enliven.face import geometry
from enliven.face.landmarks import NUM_LANDMARKS

# MediaPipe's C++ side logs chatter (TFLite delegates, graph warnings) straight to file descriptor 2, at start-up
# and later too: a video-mode graph starts its face detector only on the first frame where it lost the face. We
# hide fd 2 while a graph starts or runs unless ENLIVEN_DEBUG is set. Errors still raise.
os.environ.setdefault("GLOG_minloglevel", "2")

_silence_lock = threading.Lock()
_silence_depth = 0  # graphs running now, in any thread: fd 2 is restored when the last one ends
_saved_stderr = -1


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    global _silence_depth, _saved_stderr
    if os.environ.get("ENLIVEN_DEBUG"):
        yield
        return
    with _silence_lock:
        if _silence_depth == 0:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError):  # no real stderr (embedded interpreters, some test runners)
                saved = -1
            if saved >= 0:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            _saved_stderr = saved
        _silence_depth += 1
    try:
        yield
    finally:
        with _silence_lock:
            _silence_depth -= 1
            if _silence_depth == 0 and _saved_stderr >= 0:
                os.dup2(_saved_stderr, 2)
                os.close(_saved_stderr)
                _saved_stderr = -1


_import_lock = threading.Lock()


def _mediapipe_solutions():
    """MediaPipe's face mesh and face detection solutions, imported without matplotlib.

    ``mediapipe/__init__`` imports every solution, and its drawing helpers import ``matplotlib.pyplot`` (0.6 s of
    MediaPipe's ~1 s import on our 2-core machine, for ``plot_landmarks``, which we never call). Unless matplotlib
    is loaded already, an empty stand-in holds its place in ``sys.modules`` while MediaPipe imports and is taken
    out right after, so a later ``import matplotlib`` anywhere gets the real one."""
    with _import_lock:
        if "mediapipe.python.solutions.face_mesh" not in sys.modules and "matplotlib" not in sys.modules:
            import types

            stand_in = types.ModuleType("matplotlib")
            stand_in.__path__ = []  # a package, so ``import matplotlib.pyplot`` finds the second stand-in
            names = ("matplotlib", "matplotlib.pyplot")
            sys.modules.update({names[0]: stand_in, names[1]: types.ModuleType(names[1])})
            try:
                import mediapipe.python.solutions  # noqa: F401
            finally:
                for name in names:
                    sys.modules.pop(name, None)
    from mediapipe.python.solutions import face_detection, face_mesh

    return face_detection, face_mesh


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


class _Graph:
    """A MediaPipe graph whose native chatter is hidden (it prints as it starts, closes and first finds a face)."""

    def __init__(self, graph):
        self.graph = graph
        self._found = False  # whether a frame of it has found anything yet (see ``process``)
        with _native_stderr_silenced():
            self._settle()

    def _settle(self) -> None:
        """Wait for a graph that just started to finish starting. MediaPipe starts a graph's calculators on its
        own threads and returns at once; they print as they load their models, after any silence we keep
        around the call that started them. (``_graph`` is SolutionBase's; mediapipe is pinned to 0.10.21.)"""
        wait = getattr(getattr(self.graph, "_graph", None), "wait_until_idle", None)
        if wait is not None:
            wait()

    def process(self, image: np.ndarray):
        if self._found:
            return _outputs(self.graph, image)
        # Its calculators print as they first handle a face (MediaPipe's landmark projection warns about its
        # ROI), so frames are silenced until one is found; after that they run as they are: the silence's own
        # calls (seven, each letting another thread take the GIL) would come on every frame of every part of a
        # driver's first pass.
        with _native_stderr_silenced():
            found = _outputs(self.graph, image)
        self._found = any(value for value in vars(found).values())
        return found

    def reset(self) -> None:
        """Forget what a video-mode graph was tracking (it restarts: see ``_settle``)."""
        with _native_stderr_silenced():
            self.graph.reset()
            self._settle()
        self._found = False

    def close(self) -> None:
        with _native_stderr_silenced():  # closing runs the calculators' last steps, which may print too
            self.graph.close()


def _outputs(solution, image: np.ndarray):
    """``solution.process(image)`` for a graph with one image input, less the new namedtuple class that
    SolutionBase.process builds on every call (0.2 ms of Python on every analysed frame, a tenth of the face
    mesh's time); the outputs as attributes, as it gives them. Its steps, through SolutionBase's own members
    (mediapipe is pinned to 0.10.21); a solution without them goes through ``process``."""
    try:
        graph, outputs = solution._graph, solution._graph_outputs
        (stream, kind), = solution._input_stream_type_info.items()
        output_kinds = solution._output_stream_type_info
    except (AttributeError, ValueError):
        return solution.process(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("Input image must contain three channel rgb data.")
    outputs.clear()
    solution._simulated_timestamp += 33333  # what process() steps its clock by (30 frames a second)
    graph.add_packet_to_input_stream(
        stream=stream, packet=solution._make_packet(kind, image).at(solution._simulated_timestamp)
    )
    graph.wait_until_idle()
    return SimpleNamespace(**{
        name: solution._get_packet_content(output_kind, outputs[name]) if name in outputs else None
        for name, output_kind in output_kinds.items()
    })


# How a NormalizedLandmarkList of x, y, z landmarks is serialised (protobuf wire format): each landmark a
# length-delimited field 1 of 15 bytes holding fixed32 fields 1, 2 and 3 (x, y, z) in order.
_WIRE_LANDMARK = np.dtype([("field", "u1"), ("length", "u1"), ("x_tag", "u1"), ("x", "<f4"), ("y_tag", "u1"),
                           ("y", "<f4"), ("z_tag", "u1"), ("z", "<f4")])
_WIRE_TAGS = {"field": 0x0A, "length": 15, "x_tag": 0x0D, "y_tag": 0x15, "z_tag": 0x1D}


def _landmarks(found, width: int, height: int) -> np.ndarray | None:
    """The landmarks in pixels, (N, 3) float32, or None if there are not NUM_LANDMARKS of them. Read from the
    message's bytes in one go (a sixth of the time of reading 478 × 3 fields one by one through protobuf, on every
    analysed frame), the same numbers; a message laid out otherwise is read field by field."""
    wire = np.frombuffer(found.SerializeToString(), np.uint8)
    if len(wire) == NUM_LANDMARKS * _WIRE_LANDMARK.itemsize:
        rows = wire.view(_WIRE_LANDMARK)
        if all((rows[name] == tag).all() for name, tag in _WIRE_TAGS.items()):
            scale = np.array([width, height, width], np.float64)
            return (np.stack([rows["x"], rows["y"], rows["z"]], -1) * scale).astype(np.float32)
    pts = np.array([(p.x * width, p.y * height, p.z * width) for p in found.landmark], dtype=np.float32)
    return pts if len(pts) == NUM_LANDMARKS else None


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over the smaller box's area."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller if smaller > 0 else 0.0


def _detection_tiles(height: int, width: int) -> list[tuple[int, int, int]]:
    """Square windows ``(x, y, side)`` that cover the picture, as many as its shape needs.

    The full-range detector squeezes its input into 192x192, letterboxing the long side, so in a tall 720x1080
    frame a 43 px face shrinks to 7 px and is missed; in a 720x720 window it keeps 11 px and is found. Windows
    of the short side's size, overlapping by at least ``1 - TILE_STEP`` of it, so a small face lies whole in one.
    """
    side, long = min(height, width), max(height, width)
    count = 1 if long == side else int(np.ceil((long - side) / (FaceAnalyzer.TILE_STEP * side))) + 1
    starts = np.linspace(0, long - side, count).round().astype(int)
    return [(int(s), 0, side) if width > height else (0, int(s), side) for s in starts]


def _crop_around(box: tuple[float, float, float, float], scale: float, size: int):
    """An axis-aligned ``size``-pixel crop centred on ``box``, its side ``scale`` times the box's longer side."""
    from enliven.face.crop import Crop

    side = max(scale * max(box[2] - box[0], box[3] - box[1]), 1.0)
    k = size / side
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    o2c = np.array([[k, 0, size / 2 - k * cx], [0, k, size / 2 - k * cy]])
    return Crop(o2c, np.array([[1 / k, 0, cx - side / 2], [0, 1 / k, cy - side / 2]]), size)


@dataclass
class _Track:
    """A small face followed from frame to frame: its own video-mode mesh and its last landmarks."""

    mesh: _Graph
    face: Face


class FaceAnalyzer:
    """Find faces and their landmarks.

    ``static=True`` treats every image independently (photos); ``static=False`` tracks landmarks from
    frame to frame (video), which is faster and steadier. Faces come back largest first.

    The face mesh finds faces with MediaPipe's short-range detector, which misses faces that are small
    in a wide or tall picture (group photos, side-by-sides, full-body shots). We also run the full-range
    detector (shipped in the wheel too), in square windows over the picture, and fit the mesh on an
    upscaled crop around each face it finds that the first pass missed:

    - photos (``static=True``), with ``max_faces > 1``: whenever the mesh finds fewer faces than asked;
    - video (``static=False``): only on frames where nothing at all is seen. A face found that way is then
      followed: each frame's crop is centred on the face's landmarks in the frame before, and a video-mode
      mesh of its own fits it there (tracking, no detector), until that mesh loses the face or the main mesh
      finds the same face itself (a face is returned once). Frames where the main mesh finds faces cost
      nothing more; a small face beside a face the main mesh sees is not looked for.

    In video mode with ``max_faces > 1``, MediaPipe's mesh runs its face detector on every frame where it tracks
    fewer faces than ``max_faces`` (about a third of a frame's analysis, spent looking for faces that are not
    there). Once the number of faces has held for ``SETTLED`` frames, a mesh limited to that many faces follows
    them instead (tracking only: the same landmarks for the faces it follows), while the short-range detector looks
    for a new face every ``RECHECK`` frames. A face lost, a new one found, or a frame the caller says to look at
    afresh (a cut) sends that frame, and the next ones until the count holds again, back to the full mesh.
    """

    CROP_SIZE = 256  # side of the crop the mesh sees around a face the full-range detector found
    CROP_SCALE = 2.2  # crop side as a multiple of the face's box (the detector's, or the landmarks' when tracking)
    TILE_STEP = 0.8  # detection windows start this many window sides apart (at most)
    DETECT_SIZE = 192  # the full-range model's input side: windows are averaged down to it (less aliasing)
    FLAT = 2.0  # windows whose pixels vary less than this (standard deviation, 0-255) are blank
    SAME_FACE = 0.3  # boxes overlapping by more than this much of the smaller one are one face
    SETTLED = 5  # video: frames the number of faces holds before a mesh limited to it follows them ...
    RECHECK = 10  # ... while the detector looks for a new face every this many frames (0.4 s at 25 fps)

    def __init__(self, static: bool = True, max_faces: int = 1, min_confidence: float = 0.5):
        with _native_stderr_silenced():
            face_detection, face_mesh = _mediapipe_solutions()

            self._mesh = _Graph(face_mesh.FaceMesh(
                static_image_mode=static,
                max_num_faces=max_faces,
                refine_landmarks=True,
                min_detection_confidence=min_confidence,
                min_tracking_confidence=min_confidence,
            ))
            self._detector = None
            self._crop_mesh = None
            if not static or max_faces > 1:
                self._detector = _Graph(
                    face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_confidence)
                )
            if static and max_faces > 1:
                self._crop_mesh = _Graph(face_mesh.FaceMesh(
                    static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                    min_detection_confidence=min_confidence,
                ))
        self._new_mesh = functools.partial(
            face_mesh.FaceMesh, static_image_mode=False, refine_landmarks=True,
            min_detection_confidence=min_confidence, min_tracking_confidence=min_confidence,
        )
        self._new_near_detector = functools.partial(
            face_detection.FaceDetection, model_selection=0, min_detection_confidence=min_confidence
        )
        self.static = static
        self.max_faces = max_faces
        self._tracks: list[_Track] = []
        self._spare: list[_Graph] = []  # track meshes of ended tracks, reset, for the next small face
        # Video, several faces asked for: meshes limited to fewer faces (by count), the one following now (None: the
        # full mesh is looking), how long the count has held, frames since the detector last looked.
        self._fewer: dict[int, _Graph] = {}
        self._following: int | None = None
        self._held = (0, 0)  # (count, frames it has held)
        self._since_look = 0
        self._near_detector: _Graph | None = None
        self._recent: deque[np.ndarray] = deque(maxlen=self.SETTLED)  # the frames the full mesh saw last

    def detect(self, image: np.ndarray, look_again: bool = False) -> list[Face]:
        """All faces in an RGB uint8 image, largest first. ``look_again`` (video): this frame may show new faces
        (the picture changed at once, as at a cut), so look for them now rather than at the next regular look."""
        image = np.ascontiguousarray(image)
        faces = self._mesh_faces(image, look_again)
        if self.static:
            if self._crop_mesh is not None and len(faces) < self.max_faces:
                faces += self._small_faces(image, faces)
        else:
            faces += self._follow(image, faces)
            if not faces:  # nothing seen (a small face, a lost one, or a black frame): look with the detector
                faces += self._start_tracks(image)
        return sorted(faces, key=lambda f: f.area, reverse=True)[: self.max_faces]

    @staticmethod
    def _faces_of(mesh: _Graph, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        result = mesh.process(image)
        return [Face(p) for f in result.multi_face_landmarks or () if (p := _landmarks(f, w, h)) is not None]

    def _mesh_faces(self, image: np.ndarray, look_again: bool) -> list[Face]:
        """The face mesh's faces in this frame: the full mesh's, or (video, the count settled) those of the mesh
        that follows that many faces, unless one is lost or the detector sees a new one (see the class's text)."""
        if self.static or self.max_faces == 1:
            return self._faces_of(self._mesh, image)
        if self._following is not None:
            # At a cut the faces followed so far may land on the new picture's faces (a close-up of the same face
            # keeps being found where the old one was): the full mesh looks afresh.
            faces = [] if look_again else self._faces_of(self._fewer[self._following], image)
            self._since_look += 1
            look = self._since_look >= self.RECHECK
            if look:
                self._since_look = 0
            if not look_again and len(faces) == self._following and not (look and self._sees_new_face(image, faces)):
                self._recent.append(image)
                return faces
            # A cut, a face lost or a new one: the full mesh, started afresh (what it tracked is frames old); unless
            # at a cut, first run over the last few frames, so the faces seen there are followed on as they were.
            self._following, self._held = None, (0, 0)
            self._mesh.reset()
            if not look_again:
                for frame in self._recent:
                    self._mesh.process(frame)
            self._recent.clear()
        faces = self._faces_of(self._mesh, image)
        count, held = self._held
        self._held = (len(faces), held + 1 if len(faces) == count else 1)
        self._recent.append(image)
        if 0 < len(faces) < self.max_faces and self._held[1] >= self.SETTLED:
            if len(faces) in self._fewer:
                self._fewer[len(faces)].reset()
            else:
                with _native_stderr_silenced():
                    self._fewer[len(faces)] = _Graph(self._new_mesh(max_num_faces=len(faces)))
            # Its first run finds the faces with the detector, coarser than following them: it is run over the frames
            # the count held for, so by the next frame it follows the faces as closely as the full mesh does.
            for frame in self._recent:
                self._fewer[len(faces)].process(frame)
            self._following, self._since_look = len(faces), 0
            self._recent.clear()
        return faces

    def _sees_new_face(self, image: np.ndarray, faces: list[Face]) -> bool:
        """Whether the short-range detector (the one inside the face mesh) finds a face none of ``faces`` covers."""
        if self._near_detector is None:
            with _native_stderr_silenced():
                self._near_detector = _Graph(self._new_near_detector())
        h, w = image.shape[:2]
        for det in self._near_detector.process(image).detections or ():
            b = det.location_data.relative_bounding_box
            box = (b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h)
            if not any(_overlap(box, f.box) > self.SAME_FACE for f in faces):
                return True
        return False

    def _full_range_boxes(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Boxes of the faces the full-range detector finds, most confident first, each face once."""
        import cv2

        h, w = image.shape[:2]
        scored = []
        for x, y, side in _detection_tiles(h, w):
            window = image[y : y + side, x : x + side]
            # A black or blank window holds no face: no detector run (the check, on a 96x96 sample, costs ~0.05 ms).
            if cv2.meanStdDev(cv2.resize(window, (96, 96), interpolation=cv2.INTER_NEAREST))[1].max() < self.FLAT:
                continue
            while window.shape[0] >= 3 * self.DETECT_SIZE:  # halve first: INTER_AREA at odd ratios is slow
                window = cv2.pyrDown(window)
            window = cv2.resize(window, (self.DETECT_SIZE, self.DETECT_SIZE), interpolation=cv2.INTER_AREA)
            for det in self._detector.process(window).detections or ():
                b = det.location_data.relative_bounding_box
                box = (x + b.xmin * side, y + b.ymin * side, x + (b.xmin + b.width) * side,
                       y + (b.ymin + b.height) * side)
                scored.append((det.score[0], box))
        boxes: list[tuple[float, float, float, float]] = []
        for _, box in sorted(scored, key=lambda s: -s[0]):  # a face in two overlapping windows is one face
            if all(_overlap(box, b) <= self.SAME_FACE for b in boxes):
                boxes.append(box)
        return boxes

    def _fit(self, mesh: _Graph, image: np.ndarray, box: tuple[float, float, float, float]) -> Face | None:
        """The mesh fitted on an upscaled crop around ``box``, in the picture's pixels (None if it finds none)."""
        crop = _crop_around(box, self.CROP_SCALE, self.CROP_SIZE)
        result = mesh.process(crop.cut(image))
        for f in result.multi_face_landmarks or ():
            pts = _landmarks(f, self.CROP_SIZE, self.CROP_SIZE)
            if pts is not None:
                return Face(crop.to_original(pts).astype(np.float32))
        return None

    def _small_faces(self, image: np.ndarray, known: list[Face]) -> list[Face]:
        found: list[Face] = []
        for box in self._full_range_boxes(image):
            if any(_overlap(box, f.box) > self.SAME_FACE for f in known + found):
                continue
            face = self._fit(self._crop_mesh, image, box)
            if face is not None:
                found.append(face)
        return found

    def _follow(self, image: np.ndarray, known: list[Face]) -> list[Face]:
        """Each followed face in this frame, fitted on a crop around where it was in the last one."""
        h, w = image.shape[:2]
        followed: list[Face] = []
        for track in list(self._tracks):
            face = self._fit(track.mesh, image, track.face.box)
            x0, y0, x1, y1 = face.box if face is not None else (0, 0, 0, 0)
            gone = face is None or x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h or x1 - x0 < 2
            if gone or any(_overlap(face.box, f.box) > self.SAME_FACE for f in known + followed):
                self._end(track)  # lost, or the main mesh (or another track) has this face now
            else:
                track.face = face
                followed.append(face)
        return followed

    def _start_tracks(self, image: np.ndarray) -> list[Face]:
        """Faces the full-range detector finds, each fitted on a crop and followed from now on."""
        found: list[Face] = []
        for box in self._full_range_boxes(image):
            if len(self._tracks) >= self.max_faces:
                break
            if any(_overlap(box, f.box) > self.SAME_FACE for f in found):
                continue
            if self._spare:
                mesh = self._spare.pop()
            else:
                with _native_stderr_silenced():
                    mesh = _Graph(self._new_mesh(max_num_faces=1))
            face = self._fit(mesh, image, box)
            if face is None:
                mesh.reset()
                self._spare.append(mesh)
                continue
            self._tracks.append(_Track(mesh, face))
            found.append(face)
        return found

    def _end(self, track: _Track) -> None:
        self._tracks.remove(track)
        track.mesh.reset()
        self._spare.append(track.mesh)

    def close(self) -> None:
        graphs = [self._mesh, self._detector, self._crop_mesh, self._near_detector, *self._fewer.values()]
        graphs += [t.mesh for t in self._tracks] + self._spare
        for graph in graphs:
            if graph is not None:
                graph.close()
        self._tracks, self._spare, self._fewer, self._near_detector = [], [], {}, None

    def __enter__(self) -> FaceAnalyzer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
