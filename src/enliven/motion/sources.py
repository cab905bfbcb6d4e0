"""Where motion comes from: one door (``open_driving``) for every kind of driving input — presets, speech, templates,
LivePortrait ``.pkl`` files, driving pictures and videos (analysed with the face mesh and tracked, see
``motion.tracking``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from enliven.errors import EnlivenError, NoFaceError
from enliven.face.analyzer import FaceAnalyzer
from enliven.face.crop import CropSpec
from enliven.io.images import is_image_path, read_image
from enliven.io.video import VideoReader
from enliven.motion import edits
from enliven.motion.audio import AUDIO_SUFFIXES, audio_motion
from enliven.motion.frame import MotionFrame, MotionSequence
from enliven.motion.liveportrait_pkl import load_liveportrait_pkl
from enliven.motion.presets import preset_motion
from enliven.motion.template import load_template
from enliven.motion.tracking import TrackOptions, analyse

PRESET_PREFIX = "preset:"


def video_motion(
    path: str | os.PathLike,
    driving_crop: CropSpec | None = None,
    options: TrackOptions = TrackOptions(),
    progress: bool = False,
    anchor_crops: bool = True,
    stop: threading.Event | None = None,
) -> MotionSequence:
    """A driving video's motion, of one person, shot by shot.

    The whole clip is read once first (faces, shots, who to follow, each shot's reference frame; a progress bar
    "reading the driver" when ``progress``); the motion then streams frame by frame, each frame carrying its shot
    and that shot's reference (``MotionFrame.shot``/``anchor``). Frames where the followed person is not seen
    repeat the last good motion, marked ``valid=False`` (frames before the first sighting repeat the first one).
    With ``driving_crop`` every frame also carries the driver's face crop, cut with one box per shot (at the
    shot's reference frame), so head motion stays visible in it (LivePortrait's one box per clip, made per shot),
    with the driver's landmarks in its pixels (``crop_landmarks``); each shot's reference frame (``anchor``) gets
    its crop too when ``anchor_crops`` (a second decoder reads ahead to it: engines that measure motion from
    pixels need it, the mesh engine's mouth does not). ``stop``: the first pass ends early when it is set
    (``tracking.analyse``).
    """
    track = analyse(path, options, progress, stop)
    anchors = [None if r < 0 else MotionFrame.from_landmarks(track.landmarks(r)) for r in track.references]
    boxes = [None if r < 0 or driving_crop is None else driving_crop.crop(track.landmarks(r)) for r in track.references]
    first_seen = int((track.followed >= 0).argmax())

    def cut(t: int, image: np.ndarray) -> np.ndarray | None:
        """Frame ``t``'s crop, if it has one (on the decoder's thread)."""
        if t >= track.frames or track.followed[t] < 0 or boxes[int(track.shot_of[t])] is None:
            return None
        return boxes[int(track.shot_of[t])].cut(image)

    def frames() -> Iterator[MotionFrame]:
        crops = iter(VideoReader(path).read(then=cut)) if driving_crop is not None else None
        ahead = _FrameSeeker(path) if driving_crop is not None and anchor_crops else None
        last: MotionFrame | None = None
        try:
            for t in range(track.frames):
                crop = next(crops, None) if crops is not None else None
                shot = int(track.shot_of[t])
                if ahead is not None and anchors[shot] is not None and anchors[shot].crop is None:
                    reference = ahead.frame(track.references[shot])
                    if reference is not None:
                        points = boxes[shot].to_crop(track.landmarks(track.references[shot])).astype(np.float32)
                        anchors[shot] = replace(anchors[shot], crop=boxes[shot].cut(reference), crop_landmarks=points)
                if track.followed[t] < 0:  # not seen: the last motion, or the first one before any sighting
                    held = last or MotionFrame.from_landmarks(track.landmarks(first_seen))
                    yield replace(held, shot=shot, crop=None, crop_landmarks=None).lost()
                    continue
                points = track.landmarks(t)
                last = replace(MotionFrame.from_landmarks(points), shot=shot, anchor=anchors[shot])
                if crop is not None:
                    last = replace(last, crop=crop, crop_landmarks=boxes[shot].to_crop(points).astype(np.float32))
                yield last
        finally:
            if crops is not None:
                crops.close()
            if ahead is not None:
                ahead.close()
            track.store.close()

    return MotionSequence(
        frames(),
        fps=track.fps,
        length=track.frames,
        audio=Path(path) if track.has_audio else None,
        origin=str(path),
        tracking=track.summary(),
    )


class _FrameSeeker:
    """Frames of a video by increasing index, decoded once in order."""

    def __init__(self, path: str | os.PathLike):
        self._frames = iter(VideoReader(path))
        self._index = -1
        self._image = None

    def frame(self, index: int):
        while self._index < index:
            self._image = next(self._frames, None)
            self._index += 1
            if self._image is None:
                return None
        return self._image if self._index == index else None

    def close(self) -> None:
        self._frames.close()


def image_motion(path: str | os.PathLike, base_shape: np.ndarray, driving_crop: CropSpec | None) -> MotionSequence:
    """One-frame motion carrying a driving image's expression onto ``base_shape``.

    A single picture has no neutral frame to measure change from, so its expression is carried over as
    the open ratios the edits target (eyes, lips), never as landmark offsets: the driver's face shape
    cannot leak in, and the source's head pose is kept (as LivePortrait does for image driving).
    """
    image = read_image(path)
    with FaceAnalyzer(static=True) as analyzer:
        faces = analyzer.detect(image)
    if not faces:
        raise NoFaceError(f"no face found in driving image {path}")
    driver = MotionFrame.from_landmarks(faces[0].landmarks)
    target = edits.expression_ratios(driver.shape.astype(np.float64))
    shape = edits.set_lip_open(base_shape, target["lip"])
    shape = edits.set_eye_open(shape, 0, target["eye_right"])
    shape = edits.set_eye_open(shape, 1, target["eye_left"])
    identity = (np.eye(3, dtype=np.float32), 1.0, np.zeros(3, np.float32))
    reference = MotionFrame(base_shape.astype(np.float32), *identity)
    crop = crop_landmarks = None
    if driving_crop is not None:
        box = driving_crop.crop(faces[0].landmarks)
        crop, crop_landmarks = box.cut(image), box.to_crop(faces[0].landmarks).astype(np.float32)
    frame = MotionFrame(shape.astype(np.float32), *identity, crop=crop, crop_landmarks=crop_landmarks)
    return MotionSequence([frame], fps=25.0, length=1, reference=reference, measured=False, origin=str(path))


def open_driving(
    driving: str | os.PathLike,
    base_shape: np.ndarray | None = None,
    driving_crop: CropSpec | None = None,
    allow_pickle: bool = False,
    tracking: TrackOptions = TrackOptions(),
    progress: bool = False,
    anchor_crops: bool = True,
    stop: threading.Event | None = None,
) -> MotionSequence:
    """Motion from a driving input: ``preset:NAME``, a template ``.npz``, a LivePortrait ``.pkl`` (only with
    ``allow_pickle``), an image or a video.

    ``base_shape``: the source's canonical face (presets and driving images are built on it);
    ``driving_crop``: attach the driver's face crop to each frame (engines that read pixels); ``tracking``: whose
    motion a video gives and from which reference frames (``motion.tracking``); ``progress``: a bar while a
    video is read; ``anchor_crops``: each shot's reference frame gets its crop too (``video_motion``); ``stop``: a
    video's first pass ends early when it is set.
    """
    text = str(driving)
    if text.startswith(PRESET_PREFIX):
        return preset_motion(text[len(PRESET_PREFIX) :], base_shape)
    path = Path(driving)
    if not path.exists():
        raise EnlivenError(f"no such file: {path} (for a built-in motion use preset:NAME)")
    if path.suffix.lower() in AUDIO_SUFFIXES:
        return audio_motion(path, base_shape)
    if path.suffix.lower() == ".npz":
        return load_template(path)
    if path.suffix.lower() == ".pkl":
        return load_liveportrait_pkl(path, allow_pickle)
    if is_image_path(path):
        if base_shape is None:
            raise EnlivenError("a driving image needs a source face to carry its expression to")
        return image_motion(path, base_shape, driving_crop)
    return video_motion(path, driving_crop, tracking, progress, anchor_crops, stop)


def built_on_the_face(driving: str | os.PathLike) -> bool:
    """Whether ``driving``'s motion is built on each source face's own shape (presets, driving pictures, speech),
    rather than one motion shared by every face (a video or a template)."""
    text = str(driving)
    return text.startswith(PRESET_PREFIX) or is_image_path(text) or Path(text).suffix.lower() in AUDIO_SUFFIXES
