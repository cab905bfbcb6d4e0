"""Who drives, and in which shot: the tracking stage between a driving video's faces and alignment.

Real footage has cuts, several people, zoom, black frames and faces that leave the picture. A first pass over
the clip finds every face in every frame (MediaPipe in video mode, up to ``MAX_DRIVER_FACES``) and measures how
much the picture changes from frame to frame. From those, with no pixels kept:

- **Shots.** A cut is a frame whose picture changes a lot *and* whose faces do not continue from the frame
  before (a landmark jump, or faces appearing or vanishing). A big picture change with every face carrying on
  smoothly (a flash, a fast pan) is not a cut; neither is a slow fade.
- **People.** Within a shot, faces are linked frame to frame by position and size into tracklets. Tracklets are
  grouped into people across shots by an identity signature: the pose-normalised shape of the skull's rigid
  points (what the landmarks give) together with a tiny aligned colour thumbnail of the face (skin, hair,
  lighting — what tells two people apart when MediaPipe's shapes come out alike). Two tracklets on screen at
  the same time are never the same person.
- **The driver.** ``auto`` follows the person on screen for the most frames of the clip (the protagonist;
  ties go to whoever appears first); ``largest`` takes the largest face of each frame (no identity, the old
  behaviour); ``N`` the person whose face is the N-th largest (0 = largest) in the first frame with faces.
- **References.** Each shot's motion is measured from a reference frame of its own (``first``, ``neutral`` —
  the least expressive frame: mouth closed, eyes as open as usual, face shape nearest the shot's median,
  near frontal — or frame ``N``), so another camera angle or zoom is never read as expression or motion.
- **Lost.** Frames where the followed person is not seen, is too small to measure (under ``MIN_FACE_PX``
  wide) or is mostly outside the picture are marked lost; alignment holds and then eases the motion.

A second pass streams the followed person's motion frame by frame, each frame carrying its shot and that
shot's reference (``MotionFrame.shot``, ``MotionFrame.anchor``); engines that read pixels get a crop that
follows the tracked face, one box per shot. Landmarks wait between the passes in a temporary file, so memory
does not grow with the clip.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np
from tqdm import tqdm

from enliven.errors import EnlivenError, NoFaceError
from enliven.face import geometry
from enliven.face import landmarks as lm
from enliven.face.analyzer import FaceAnalyzer
from enliven.face.crop import face_crop
from enliven.face.landmarks import NUM_LANDMARKS
from enliven.io.files import WRITE_FAILURES
from enliven.io.video import VideoReader
from enliven.motion.frame import MotionFrame, TrackingSummary

MAX_DRIVER_FACES = 4  # faces looked for in each driving frame
DESCRIBE_AHEAD = 4  # frames the first pass's face mesh may run ahead of the description of its faces
SPLIT_FRAMES = 150  # a driving clip at least this long has its two halves read at once (see ``analyse``) ...
SPLIT_MAX_PIXELS = 1920 * 1080  # ... unless its frames are larger (each part holds a few frames in memory) ...
WARM_UP = 8  # ... the second half's face mesh starting this many frames early ...
# ... and the first part a little longer than half: the second one also decodes (without converting) the frames
# before its start, about a sixth of the work of each frame it reads, so both end together.
FIRST_PART = 0.54
MIN_FACE_PX = 20.0  # a face narrower than this is too small to read expression from
MIN_INSIDE = 0.85  # a face with fewer of its landmarks inside the picture is leaving it: lost

THUMB_SIZE = 32  # side of the grey thumbnail whose change tells cuts
CUT_CHANGE = 0.08  # mean absolute thumbnail change (0–1) from which a frame may be a cut
CONTINUE_SHIFT = 0.25  # a face continues into the next frame if it moved less than this many face widths ...
CONTINUE_SIZE = 1.2  # ... and changed width by less than this factor

LINK_SHIFT = 0.5  # within a shot, a face joins a tracklet it is this many face widths from ...
LINK_SIZE = 1.5  # ... and this factor in width from ...
LINK_GAP_S = 1.0  # ... when the tracklet was last seen at most this long ago

SIGNATURE_THUMB = 16  # side of the aligned colour thumbnail in the identity signature
# Identity distances are in units of these spreads (root mean square of both halves). Measured on two real people
# (Grace Hopper and Eileen Collins, each talking): the same person in one shot 0.15, the same person cut to a 2x
# close-up with the forehead out of the picture 1.1, the two people 2.9. Tracklets closer than SAME_PERSON are
# taken for one person.
SHAPE_SPREAD = 0.016  # canonical units (outer eye-corner distances)
LOOK_SPREAD = 0.05  # 0–1 colour values
SAME_PERSON = 1.7

DRIVER_CHOICES = ("auto", "largest")
REFERENCE_CHOICES = ("first", "neutral")


def parse_choice(value: str | int, choices: tuple[str, ...], what: str) -> str | int:
    """``value`` as one of ``choices`` or a non-negative integer, else one clear error."""
    text = str(value).strip().lower()
    if text in choices:
        return text
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < 0:
        raise EnlivenError(f"{what} must be {', '.join(choices)} or a number >= 0, got {value!r}")
    return number


@dataclass(frozen=True)
class TrackOptions:
    """How a driving video is read: whose motion (``driver_face``) and measured from which frame (``reference``)."""

    driver_face: str | int = "auto"
    reference: str | int = "neutral"

    def __post_init__(self) -> None:
        object.__setattr__(self, "driver_face", parse_choice(self.driver_face, DRIVER_CHOICES, "driver face"))
        object.__setattr__(self, "reference", parse_choice(self.reference, REFERENCE_CHOICES, "reference"))


# --- what the first pass keeps of each face --------------------------------------------------------------------


@dataclass
class Detection:
    """One face in one frame, as the first pass keeps it (landmarks themselves wait on disk, at ``slot``)."""

    frame: int
    slot: int
    centre: np.ndarray  # (2,) pixels
    width: float  # face width, pixels
    inside: float  # fraction of the landmarks inside the picture
    shape: np.ndarray  # rigid points' canonical (x, y): the landmark half of the identity signature
    look: np.ndarray  # aligned colour thumbnail (Lab, uint8): the appearance half (empty: not told apart)
    lip: float
    eyes: float  # mean eye open ratio
    turn: float  # |yaw| + |pitch|, degrees

    @property
    def usable(self) -> bool:
        return self.width >= MIN_FACE_PX and self.inside >= MIN_INSIDE


_NO_LOOK = np.zeros(0, np.uint8)


def describe_face(frame: int, slot: int, landmarks: np.ndarray, image: np.ndarray, identity: bool = True) -> Detection:
    """What tracking needs to know of a face found in ``image``; without ``identity`` (no people to tell apart:
    ``driver_face="largest"``) no colour thumbnail is cut for it, the larger part of the work."""
    pts = np.asarray(landmarks, np.float64)
    h, w = image.shape[:2]
    x0, y0 = pts[:, :2].min(0)
    x1, y1 = pts[:, :2].max(0)
    inside = np.mean((pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h))
    motion = MotionFrame.from_landmarks(pts)
    look = _NO_LOOK
    if identity:
        thumb = face_crop(pts, size=SIGNATURE_THUMB, scale=1.2, vy=0.0).cut(image)
        look = cv2.cvtColor(thumb, cv2.COLOR_RGB2LAB).ravel()  # uint8: a long clip's faces stay small in memory
    yaw, pitch, _ = motion.pose.angles()
    return Detection(
        frame=frame,
        slot=slot,
        centre=np.array([(x0 + x1) / 2, (y0 + y1) / 2]),
        width=float(x1 - x0),
        inside=float(inside),
        shape=motion.shape[list(lm.RIGID), :2].astype(np.float32).ravel(),
        look=look,
        lip=float(geometry.lip_open_ratio(pts)),
        eyes=float(np.mean(geometry.eye_open_ratios(pts))),
        turn=abs(yaw) + abs(pitch),
    )


def picture_thumb(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


class LandmarkStore:
    """Landmarks of every face of the first pass, in a temporary file (deleted on close), read back by slot.

    Read with ``pread``, not through a memory map: mapped, every page of the file read would count in the
    process's resident memory (84 MB for ten minutes of one face), and memory would grow with the clip."""

    _BYTES = NUM_LANDMARKS * 3 * 4  # one face's landmarks, float32

    def __init__(self) -> None:
        with _disk_errors(creating=True):
            # A megabyte of buffer: written at once every 180 faces rather than every face or two (each write lets
            # another thread take the GIL while the first pass's two parts run).
            self._file = tempfile.TemporaryFile(prefix="enliven-faces-", buffering=1 << 20)
        self._count = 0
        self._lock = threading.Lock()

    def add(self, landmarks: np.ndarray) -> int:
        with self._lock, _disk_errors():  # the first pass's two halves add at once
            self._file.write(np.ascontiguousarray(landmarks, np.float32).tobytes())
            self._count += 1
            return self._count - 1

    def __getitem__(self, slot: int) -> np.ndarray:
        if not 0 <= slot < self._count:
            raise IndexError(f"no landmarks at slot {slot} of {self._count}")
        with _disk_errors(), self._lock:
            self._file.flush()  # what is still in the buffer (nothing to do, no system call, when it is empty)
            if hasattr(os, "pread"):
                data = os.pread(self._file.fileno(), self._BYTES, slot * self._BYTES)
            else:  # Windows
                self._file.seek(slot * self._BYTES)
                data = self._file.read(self._BYTES)
                self._file.seek(0, os.SEEK_END)
        return np.frombuffer(data, np.float32).reshape(NUM_LANDMARKS, 3).copy()

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:  # its buffer could not be flushed (the disk is full): the file is deleted all the same
            pass


@contextlib.contextmanager
def _disk_errors(creating: bool = False) -> Iterator[None]:
    """A full or failing disk under the temporary folder as one clear line. ``creating``: any failure to make
    the file counts (on a full disk Python finds "no usable temporary directory" at all)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in WRITE_FAILURES and not creating:
            raise
        folder = os.environ.get("TMPDIR") or tempfile.tempdir or "the temporary folder"
        raise EnlivenError(
            f"cannot write the driver's landmarks to a temporary file in {folder}: {exc.strerror} "
            "(free some space there, or point TMPDIR at another folder)"
        ) from None


# --- pure decisions over what the first pass found (unit-tested without video) -------------------------------------


def _close(a: Detection, b: Detection) -> bool:
    return bool(
        np.linalg.norm(b.centre - a.centre) < CONTINUE_SHIFT * a.width
        and 1 / CONTINUE_SIZE < b.width / max(a.width, 1e-6) < CONTINUE_SIZE
    )


def _continues(before: list[Detection], after: list[Detection]) -> bool:
    """The faces of ``before`` and ``after`` pair up, each moved and resized only a little (and there are faces)."""
    if not before or not after:
        return False
    return all(any(_close(a, b) for b in after) for a in before) and all(
        any(_close(a, b) for a in before) for b in after
    )


def drop_ghosts(found: list[Detection]) -> list[Detection]:
    """Faces minus those whose centre lies inside a larger face. MediaPipe's video mode keeps tracking a face's old
    place for a while after a cut, and finds a "face" there on part of the new picture; two real faces do not
    sit one inside the other."""
    kept = []
    for d in sorted(found, key=lambda d: -d.width):
        if all(np.abs(d.centre - k.centre).max() > k.width / 2 for k in kept):
            kept.append(d)
    return kept


def find_cuts(change: np.ndarray, faces: list[list[Detection]]) -> list[int]:
    """Frames that start a new shot (frame 0 always does): a big picture change where the faces jump."""
    cuts = [0]
    for t in range(1, len(faces)):
        if change[t] >= CUT_CHANGE and not _continues(faces[t - 1], faces[t]):
            cuts.append(t)
    return cuts


@dataclass
class Tracklet:
    shot: int
    detections: list[Detection] = field(default_factory=list)
    person: int = -1

    # Read only once linking is done (cached: grouping compares every pair of tracklets).
    @functools.cached_property
    def frames(self) -> set[int]:
        return {d.frame for d in self.detections}

    @functools.cached_property
    def signature(self) -> tuple[np.ndarray, np.ndarray]:
        chosen = [d for d in self.detections if d.usable] or self.detections
        return np.mean([d.shape for d in chosen], 0), np.mean([d.look for d in chosen], 0) / 255.0


def link_tracklets(faces: list[list[Detection]], cuts: list[int], fps: float) -> list[Tracklet]:
    """Faces linked frame to frame by position and size, never across a cut."""
    bounds = cuts + [len(faces)]
    tracklets: list[Tracklet] = []
    gap = max(1, int(round(LINK_GAP_S * fps)))
    for shot, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])):
        active: list[Tracklet] = []
        for t in range(start, end):
            pairs = []
            for i, d in enumerate(faces[t]):
                for j, tr in enumerate(active):
                    last = tr.detections[-1]
                    if t - last.frame > gap:
                        continue
                    shift = np.linalg.norm(d.centre - last.centre) / max(last.width, 1e-6)
                    ratio = d.width / max(last.width, 1e-6)
                    if shift < LINK_SHIFT and 1 / LINK_SIZE < ratio < LINK_SIZE:
                        pairs.append((shift, i, j))
            taken_d, taken_t = set(), set()
            for _, i, j in sorted(pairs):
                if i in taken_d or j in taken_t:
                    continue
                active[j].detections.append(faces[t][i])
                taken_d.add(i)
                taken_t.add(j)
            for i, d in enumerate(faces[t]):
                if i not in taken_d:
                    active.append(Tracklet(shot, [d]))
                    tracklets.append(active[-1])
    return tracklets


def identity_distance(a: Tracklet, b: Tracklet) -> float:
    """How unlike two tracklets' people are (see SAME_PERSON for what the values mean)."""
    (shape_a, look_a), (shape_b, look_b) = a.signature, b.signature
    shape = np.sqrt(np.mean((shape_a - shape_b) ** 2)) / SHAPE_SPREAD
    look = np.sqrt(np.mean((look_a - look_b) ** 2)) / LOOK_SPREAD
    return float(np.sqrt((shape**2 + look**2) / 2))


def group_people(tracklets: list[Tracklet]) -> int:
    """Give each tracklet a person number (longest tracklets first); returns how many people."""
    people: list[list[Tracklet]] = []
    for tr in sorted(tracklets, key=lambda t: -len(t.detections)):
        best, best_distance = None, SAME_PERSON
        for p, members in enumerate(people):
            if any(tr.frames & m.frames for m in members):  # on screen together: two people
                continue
            distance = min(identity_distance(tr, m) for m in members)
            if distance < best_distance:
                best, best_distance = p, distance
        if best is None:
            people.append([tr])
            tr.person = len(people) - 1
        else:
            people[best].append(tr)
            tr.person = best
    return len(people)


def choose_driver(tracklets: list[Tracklet], faces: list[list[Detection]], driver_face: str | int) -> int:
    """The followed person's number for ``auto`` or ``N`` (see the module docstring)."""
    if driver_face == "auto":
        frames: dict[int, int] = {}
        first: dict[int, int] = {}
        for tr in tracklets:
            frames[tr.person] = frames.get(tr.person, 0) + len(tr.detections)
            first[tr.person] = min(first.get(tr.person, 1 << 30), tr.detections[0].frame)
        return max(frames, key=lambda p: (frames[p], -first[p]))
    start = next(t for t, found in enumerate(faces) if found)
    ranked = sorted(faces[start], key=lambda d: -d.width)
    if driver_face >= len(ranked):
        raise EnlivenError(f"driver face {driver_face} asked for, but the first frame with faces has {len(ranked)}")
    slot = ranked[driver_face].slot
    return next(tr.person for tr in tracklets if any(d.slot == slot for d in tr.detections))


def expressiveness(shot: list[Detection], shapes: np.ndarray) -> np.ndarray:
    """How far each frame of a shot is from a neutral face: the mouth open, the eyes away from their usual
    opening, the expression points away from the shot's median shape, and the head turned from frontal.
    ``shapes``: the frames' canonical expression points (N, K, 3). Each term is scaled so that a clearly
    visible change (a parted mouth, a blink, a raised brow, a 15° turn) weighs about 1."""
    lips = np.array([d.lip for d in shot])
    eyes = np.array([d.eyes for d in shot])
    turn = np.array([d.turn for d in shot])
    median = np.median(shapes, axis=0)
    shape_change = np.linalg.norm(shapes - median, axis=-1).mean(-1)
    return lips / 0.1 + np.abs(eyes - np.median(eyes)) / 0.1 + shape_change / 0.03 + turn / 15.0


EXPRESSION_POINTS = sorted(
    set(lm.INNER_LIP_UPPER + lm.INNER_LIP_LOWER + lm.OUTER_LIP_UPPER + lm.OUTER_LIP_LOWER + lm.RIGHT_BROW
        + lm.LEFT_BROW + lm.RIGHT_EYE_UPPER + lm.RIGHT_EYE_LOWER + lm.LEFT_EYE_UPPER + lm.LEFT_EYE_LOWER)
)


# --- the driving clip, analysed ---------------------------------------------------------------------------------


@dataclass
class DriverTrack:
    """The first pass's result: per frame the followed face's landmark slot (or -1 when lost) and shot, and per
    shot its reference frame (-1 when the followed person is not in it)."""

    fps: float
    followed: np.ndarray  # (T,) slot or -1
    shot_of: np.ndarray  # (T,) shot index
    references: list[int]  # per shot: reference frame or -1
    people: int
    person: int
    store: LandmarkStore
    on_screen: float  # fraction of frames where the followed person is seen
    has_audio: bool

    @property
    def frames(self) -> int:
        return len(self.followed)

    @property
    def shots(self) -> int:
        return len(self.references)

    def summary(self) -> TrackingSummary:
        if self.person < 0:
            followed = "the largest face in each frame"
        else:
            followed = f"person {self.person + 1} of {self.people}, seen in {self.on_screen:.0%} of frames"
        return TrackingSummary(self.shots, self.people, followed)

    def landmarks(self, frame: int) -> np.ndarray:
        """The followed face's landmarks in ``frame`` (which must have it)."""
        return self.store[int(self.followed[frame])]


def follow(
    faces: list[list[Detection]],
    change: np.ndarray,
    fps: float,
    options: TrackOptions,
    shapes_of: Callable[[list[int]], np.ndarray],
) -> tuple[np.ndarray, np.ndarray, list[int], int, int]:
    """Shots, the followed face per frame and each shot's reference. ``shapes_of(slots)``: canonical expression
    points of those faces (N, K, 3), for the neutral reference. Returns (followed slots, shot per frame,
    references, people, person)."""
    n = len(faces)
    cuts = find_cuts(change, faces)
    shot_of = np.zeros(n, np.int32)
    for s, start in enumerate(cuts):
        shot_of[start:] = s
    followed = np.full(n, -1, np.int64)
    if options.driver_face == "largest":
        people, person = 0, -1
        for t, found in enumerate(faces):
            usable = [d for d in found if d.usable]
            if usable:
                followed[t] = max(usable, key=lambda d: d.width).slot
        chosen = {d.slot: d for found in faces for d in found}
    else:
        tracklets = link_tracklets(faces, cuts, fps)
        people = group_people(tracklets)
        person = choose_driver(tracklets, faces, options.driver_face)
        chosen = {}
        for tr in tracklets:
            if tr.person == person:
                for d in tr.detections:
                    if d.usable:
                        followed[d.frame] = d.slot
                        chosen[d.slot] = d
    references = []
    for s, start in enumerate(cuts):
        end = cuts[s + 1] if s + 1 < len(cuts) else n
        seen = [chosen[followed[t]] for t in range(start, end) if followed[t] >= 0]
        references.append(_reference(seen, options.reference, shapes_of))
    return followed, shot_of, references, people, person


def _reference(seen: list[Detection], rule: str | int, shapes_of: Callable[[list[int]], np.ndarray]) -> int:
    if not seen:
        return -1
    if rule == "first":
        return seen[0].frame
    if isinstance(rule, int):
        for d in seen:
            if d.frame == rule:
                return rule
    scores = expressiveness(seen, shapes_of([d.slot for d in seen]))
    return seen[int(np.argmin(scores))].frame


class Stopped(Exception):
    """The first pass was asked to stop (``analyse``'s ``stop``): its result is no longer wanted."""


class _Either(threading.Event):
    """An event that also counts as set while ``other`` (another event, or None) is."""

    def __init__(self, other: threading.Event | None):
        super().__init__()
        self._other = other

    def is_set(self) -> bool:
        return super().is_set() or (self._other is not None and self._other.is_set())


def _read_part(
    reader: VideoReader, start: int, end: int | None, store: LandmarkStore, bar: tqdm, stop: threading.Event | None,
    identity: bool = True,
) -> tuple[list[list[Detection]], list[float]]:
    """Frames ``start`` (inclusive) to ``end`` (exclusive; None: the last) of the first pass: each frame's faces
    and its picture change from the frame before (0 for the clip's first frame)."""
    faces: list[list[Detection]] = []
    change: list[float] = []
    previous = None

    def describe(t: int, seen: list, image: np.ndarray) -> list[Detection]:
        return drop_ghosts([describe_face(t, store.add(f.landmarks), f.landmarks, image, identity) for f in seen])

    # The face mesh runs here; what tracking keeps of each face is worked out on a thread of its own, a few frames
    # behind. A part that starts inside the clip first runs the mesh over the WARM_UP frames before ``start`` (found
    # afresh, a face's first landmarks are coarse: by ``start`` they are followed as one mesh would follow them),
    # and the frame before ``start`` gives the picture change.
    described: deque[Future] = deque()
    first = max(start - WARM_UP, 0)
    with FaceAnalyzer(static=False, max_faces=MAX_DRIVER_FACES) as analyzer, ThreadPoolExecutor(
        1, thread_name_prefix="enliven-describe"
    ) as describer:
        for t, image in enumerate(reader.read(first), first):
            if stop is not None and stop.is_set():
                raise Stopped
            if end is not None and t >= end:
                break
            thumb = picture_thumb(image)
            step = 0.0 if previous is None else float(np.abs(thumb - previous).mean())
            previous = thumb
            seen = analyzer.detect(image, look_again=step >= CUT_CHANGE)  # a cut may bring new faces
            if t < start:  # warming the face mesh up
                continue
            change.append(step)
            described.append(describer.submit(describe, t, seen, image))
            while len(described) > DESCRIBE_AHEAD or (described and described[0].done()):
                faces.append(described.popleft().result())
            bar.update()
        faces.extend(future.result() for future in described)
    return faces, change


def analyse(
    path: str | os.PathLike, options: TrackOptions, progress: bool = False, stop: threading.Event | None = None
) -> DriverTrack:
    """First pass: every face of every frame of the driving video, then who is followed in which shot. ``stop``:
    set from another thread, the pass ends at its next frame by raising ``Stopped``.

    A clip of ``SPLIT_FRAMES`` frames or more (of at most ``SPLIT_MAX_PIXELS``) is read in two parts at once
    (``FIRST_PART`` of it, then the rest), each on a thread with its own decoder and face mesh: one face mesh keeps
    a core busy only about two thirds of the time (its graph hands every frame back and forth with Python). The
    second part's mesh starts ``WARM_UP`` frames before its first frame, so by then it follows the faces as one
    mesh reading on would (landmarks within about a pixel; the first part's are the same as one reading's). A
    part that fails ends the other at its next frame; its error is the one raised.
    """
    reader = VideoReader(path)
    store = LandmarkStore()
    bar = tqdm(total=reader.frame_count or None, desc="reading the driver", unit="frame", disable=not progress,
               leave=False, dynamic_ncols=True)
    identity = options.driver_face != "largest"  # people are told apart by their looks only for the others
    two_parts = reader.frame_count >= SPLIT_FRAMES and reader.width * reader.height <= SPLIT_MAX_PIXELS
    half = int(reader.frame_count * FIRST_PART) if two_parts else None
    try:
        with bar:
            if half is None:
                faces, change = _read_part(reader, 0, None, store, bar, stop, identity)
            else:
                ending = _Either(stop)  # set when a part fails: the other one ends at its next frame too

                def part(start: int, end: int | None):
                    try:
                        return _read_part(reader, start, end, store, bar, ending, identity)
                    except BaseException:
                        ending.set()
                        raise

                with ThreadPoolExecutor(1, thread_name_prefix="enliven-driver-part") as other:
                    second = other.submit(part, half, None)
                    try:
                        faces, change = part(0, half)
                    except Stopped:
                        second.result()  # the second part's failure, if that is what stopped this one
                        raise
                    more_faces, more_change = second.result()
                faces, change = faces + more_faces, change + more_change
        if not any(faces):
            raise NoFaceError(f"no face found in any frame of {reader.path}")

        def shapes_of(slots: list[int]) -> np.ndarray:
            return np.stack([MotionFrame.from_landmarks(store[s]).shape[EXPRESSION_POINTS] for s in slots])

        followed, shot_of, references, people, person = follow(faces, np.array(change), reader.fps, options, shapes_of)
    except BaseException:
        store.close()
        raise
    on_screen = float(np.mean(followed >= 0)) if len(followed) else 0.0
    return DriverTrack(reader.fps, followed, shot_of, references, people, person, store, on_screen, reader.has_audio)
