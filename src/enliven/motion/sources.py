"""Where motion comes from: driving videos and images, analysed with the face mesh."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from enliven.errors import NoFaceError
from enliven.face.analyzer import FaceAnalyzer
from enliven.face.crop import Crop, CropSpec
from enliven.io.video import VideoReader
from enliven.motion.frame import MotionFrame, MotionSequence


def video_motion(path: str | os.PathLike, driving_crop: CropSpec | None = None) -> MotionSequence:
    """Stream a driving video's motion (largest face, tracked frame to frame).

    A frame where the face is lost repeats the last good motion, marked ``valid=False``; frames before
    the first detection repeat the first good one. With ``driving_crop`` every frame also carries the
    driver's face crop; the crop box is fixed at the first detection, so head motion stays visible in
    it (LivePortrait uses one box for the whole clip too; we cannot look ahead while streaming).
    """
    reader = VideoReader(path)

    def frames() -> Iterator[MotionFrame]:
        pending = 0
        last: MotionFrame | None = None
        box: Crop | None = None
        with FaceAnalyzer(static=False) as analyzer:
            for image in reader:
                faces = analyzer.detect(image)
                if not faces:
                    if last is None:
                        pending += 1
                    else:
                        yield last.lost()
                    continue
                last = MotionFrame.from_landmarks(faces[0].landmarks)
                if driving_crop is not None:
                    box = box or driving_crop.crop(faces[0].landmarks)
                    last = replace(last, crop=box.cut(image))
                for _ in range(pending):
                    yield last.lost()
                pending = 0
                yield last
        if last is None:
            raise NoFaceError(f"no face found in any frame of {reader.path}")

    return MotionSequence(
        frames(), fps=reader.fps, length=reader.frame_count or None, audio=Path(path) if reader.has_audio else None,
        origin=str(path),
    )
