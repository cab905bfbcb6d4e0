"""Where motion comes from: driving videos, analysed with the face mesh and tracked (see ``motion.tracking``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from enliven.face.crop import CropSpec
from enliven.io.video import VideoReader
from enliven.motion.frame import MotionFrame, MotionSequence
from enliven.motion.tracking import TrackOptions, analyse


def video_motion(
    path: str | os.PathLike,
    driving_crop: CropSpec | None = None,
    options: TrackOptions = TrackOptions(),
    progress: bool = False,
    anchor_crops: bool = True,
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
    pixels need it, the mesh engine's mouth does not).
    """
    track = analyse(path, options, progress)
    anchors = [None if r < 0 else MotionFrame.from_landmarks(track.landmarks(r)) for r in track.references]
    boxes = [None if r < 0 or driving_crop is None else driving_crop.crop(track.landmarks(r)) for r in track.references]
    first_seen = int((track.followed >= 0).argmax())

    def frames() -> Iterator[MotionFrame]:
        pictures = iter(VideoReader(path)) if driving_crop is not None else None
        ahead = _FrameSeeker(path) if driving_crop is not None and anchor_crops else None
        last: MotionFrame | None = None
        try:
            for t in range(track.frames):
                image = next(pictures, None) if pictures is not None else None
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
                if boxes[shot] is not None and image is not None:
                    box = boxes[shot]
                    last = replace(last, crop=box.cut(image), crop_landmarks=box.to_crop(points).astype(np.float32))
                yield last
        finally:
            if pictures is not None:
                pictures.close()
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
