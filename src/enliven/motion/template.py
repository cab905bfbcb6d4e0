"""Motion templates: a versioned ``.npz`` of plain arrays (never pickle), reusable as a driving input."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable

import numpy as np

from enliven.errors import EnlivenError
from enliven.io.files import atomic_output, require_file
from enliven.motion.frame import MotionFrame, MotionSequence

FORMAT = "enliven-motion"
SCHEMA_VERSION = 2  # 2: shots and each shot's reference frame (anchor); 1 is still read
KEYPOINT_FIELDS = ("kp", "exp", "rotation", "scale", "t", "angles")


def save_template(path: str | os.PathLike, sequence: MotionSequence, frames: Iterable[MotionFrame] | None = None) -> int:
    """Write every frame of ``sequence`` (or ``frames``, an iterator over it) to ``path``; returns the count."""
    frames = list(sequence if frames is None else frames)
    if not frames:
        raise EnlivenError("no motion to save: the driving input has no frames")
    reference = sequence.reference or frames[0]
    arrays = {
        "format": np.array(FORMAT),
        "schema_version": np.int32(SCHEMA_VERSION),
        "fps": np.float64(sequence.fps),
        "measured": np.bool_(sequence.measured),
        "shape": np.stack([f.shape for f in frames]),
        "rotation": np.stack([f.rotation for f in frames]),
        "scale": np.array([f.scale for f in frames], np.float32),
        "translation": np.stack([f.translation for f in frames]),
        "valid": np.array([f.valid for f in frames]),
        "reference_shape": reference.shape,
        "reference_rotation": reference.rotation,
        "reference_scale": np.float32(reference.scale),
        "reference_translation": reference.translation,
        "has_landmarks": np.bool_(sequence.has_landmarks),
    }
    arrays.update(_anchor_arrays(frames))
    if all(f.keypoints is not None for f in frames):  # LivePortrait motion rides along (arrays "kp_*")
        for key in KEYPOINT_FIELDS:
            arrays[f"kp_{key}"] = np.stack([np.asarray(f.keypoints[key], np.float32) for f in frames])
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return len(frames)


def _anchor_arrays(frames: list[MotionFrame]) -> dict[str, np.ndarray]:
    """Each frame's shot, and each shot's reference frame (``MotionFrame.anchor``; a shot without one has
    ``anchor_valid`` False and zeros)."""
    shots = np.array([f.shot for f in frames], np.int32)
    count = int(shots.max()) + 1
    anchors: list[MotionFrame | None] = [None] * count
    for f in frames:
        anchors[f.shot] = anchors[f.shot] or f.anchor
    blank = MotionFrame(np.zeros_like(frames[0].shape), np.eye(3, dtype=np.float32), 1.0, np.zeros(3, np.float32))
    filled = [a or blank for a in anchors]
    arrays = {
        "shot": shots,
        "anchor_valid": np.array([a is not None for a in anchors]),
        "anchor_shape": np.stack([a.shape for a in filled]),
        "anchor_rotation": np.stack([a.rotation for a in filled]),
        "anchor_scale": np.array([a.scale for a in filled], np.float32),
        "anchor_translation": np.stack([a.translation for a in filled]),
    }
    given = [a for a in anchors if a is not None]
    if given and all(a.keypoints is not None for a in given):  # LivePortrait's motion of each reference frame
        blank_kp = {key: np.zeros_like(np.asarray(v, np.float32)) for key, v in given[0].keypoints.items()}
        for key in KEYPOINT_FIELDS:
            arrays[f"anchor_kp_{key}"] = np.stack([np.asarray((a.keypoints if a else blank_kp)[key], np.float32)
                                                   for a in anchors])
    return arrays


def _anchors(data: dict[str, np.ndarray]) -> list[MotionFrame | None]:
    if "anchor_valid" not in data:  # schema 1: one reference for the whole template
        return [None]
    has_keypoints = all(f"anchor_kp_{key}" in data for key in KEYPOINT_FIELDS)
    return [
        MotionFrame(
            data["anchor_shape"][s], data["anchor_rotation"][s], float(data["anchor_scale"][s]),
            data["anchor_translation"][s],
            keypoints={key: data[f"anchor_kp_{key}"][s] for key in KEYPOINT_FIELDS} if has_keypoints else None,
        ) if valid else None
        for s, valid in enumerate(data["anchor_valid"])
    ]


def load_template(path: str | os.PathLike) -> MotionSequence:
    path = require_file(path)
    try:
        data = dict(np.load(path, allow_pickle=False))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise EnlivenError(f"not a motion template (.npz) {path}: {exc}") from None
    if str(data.get("format", "")) != FORMAT:
        raise EnlivenError(f"not an enliven motion template: {path}")
    version = int(data["schema_version"])
    if version > SCHEMA_VERSION:
        raise EnlivenError(f"motion template {path} has schema {version}; this enliven reads up to {SCHEMA_VERSION}")
    n = len(data["shape"])
    has_keypoints = all(f"kp_{key}" in data for key in KEYPOINT_FIELDS)
    anchors = _anchors(data)
    shots = data["shot"] if "shot" in data else np.zeros(n, np.int32)
    if len(shots) != n or shots.min(initial=0) < 0 or shots.max(initial=0) >= len(anchors):
        raise EnlivenError(f"motion template {path} is damaged: its shots do not match its frames")
    frames = [
        MotionFrame(
            data["shape"][i],
            data["rotation"][i],
            float(data["scale"][i]),
            data["translation"][i],
            bool(data["valid"][i]),
            keypoints={key: data[f"kp_{key}"][i] for key in KEYPOINT_FIELDS} if has_keypoints else None,
            shot=int(shots[i]),
            anchor=anchors[int(shots[i])],
        )
        for i in range(n)
    ]
    reference = MotionFrame(
        data["reference_shape"], data["reference_rotation"], float(data["reference_scale"]),
        data["reference_translation"],
    )
    return MotionSequence(
        frames,
        fps=float(data["fps"]),
        length=n,
        reference=reference,
        measured=bool(data["measured"]),
        origin=str(path),
        has_landmarks=bool(data.get("has_landmarks", True)),
    )
