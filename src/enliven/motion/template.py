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


def save_template(path: str | os.PathLike, sequence: MotionSequence,
                  frames: Iterable[MotionFrame] | None = None) -> int:
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


# What a template holds: per-frame arrays (shape after the frame axis), the sequence's reference frame, and per
# shot its anchor (shape after the shot axis). -1 in a shape: any length. Keypoint fields vary by model size.
_PER_FRAME = {"shape": (-1, 3), "rotation": (3, 3), "scale": (), "translation": (3,), "valid": ()}
_REFERENCE = {"reference_shape": (-1, 3), "reference_rotation": (3, 3), "reference_scale": (),
              "reference_translation": (3,)}
_PER_SHOT = {"anchor_valid": (), "anchor_shape": (-1, 3), "anchor_rotation": (3, 3), "anchor_scale": (),
             "anchor_translation": (3,)}
MAX_FPS = 1000.0  # above any camera's rate a template could come from; beyond it the number is damage


def _fits(array: np.ndarray, shape: tuple[int, ...]) -> bool:
    return array.ndim == len(shape) and all(want in (-1, got) for want, got in zip(shape, array.shape))


def _checked(data: dict[str, np.ndarray], path) -> dict[str, np.ndarray]:
    """``data`` if it is a whole, finite template; else one clear error naming what is wrong. A damaged or
    hand-edited file must fail here, not as a crash deep inside an engine."""

    def damaged(why: str) -> EnlivenError:
        return EnlivenError(f"motion template {path} is damaged: {why}")

    for key, array in data.items():
        if array.dtype.kind not in "biuf" and key != "format":
            raise damaged(f"'{key}' holds {array.dtype} values, not numbers")
    missing = [k for k in ("fps", "measured", *_PER_FRAME, *_REFERENCE) if k not in data]
    if missing:
        raise damaged(f"no {', '.join(repr(k) for k in missing)}")
    if data["fps"].ndim or not 0 < float(data["fps"]) <= MAX_FPS:  # NaN fails the comparison too
        raise damaged(f"its frame rate {data['fps']} is not between 0 and {MAX_FPS:g}")
    n = data["shape"].shape[0] if data["shape"].ndim else 0
    if n == 0:
        raise EnlivenError(f"motion template {path} holds no frames")
    shots = int(data["anchor_valid"].shape[0]) if "anchor_valid" in data and data["anchor_valid"].ndim else 0
    if "anchor_valid" in data and shots == 0:
        raise damaged("it has no shots")
    groups = [(_PER_FRAME, n, "frames"), (_REFERENCE, None, ""), (_PER_SHOT if "anchor_valid" in data else {},
                                                                  shots, "shots")]
    groups.append(({k: None for k in data if k.startswith("kp_")}, n, "frames"))
    groups.append(({k: None for k in data if k.startswith("anchor_kp_")}, shots, "shots"))
    points = data["shape"].shape[1] if data["shape"].ndim == 3 else -1
    for fields, count, unit in groups:
        for key, shape in fields.items():
            if key not in data:
                raise damaged(f"no {key!r}")
            array = data[key]
            if count is not None and (array.ndim == 0 or array.shape[0] != count):
                raise damaged(f"'{key}' has {array.shape[0] if array.ndim else 0} rows for {count} {unit}")
            rest = array.shape[1:] if count is not None else array.shape
            if shape is not None and not _fits(array[0] if count is not None else array, shape):
                raise damaged(f"'{key}' has shape {tuple(array.shape)}")
            if shape is not None and shape[:1] == (-1,) and rest[0] != points:
                raise damaged(f"'{key}' has {rest[0]} points where the frames have {points}")
            # LivePortrait motion imported from a .pkl has no canonical keypoints: NaN there means "none".
            values = np.nan_to_num(array, nan=0.0) if key.endswith("kp_kp") else array
            if array.dtype.kind == "f" and not np.isfinite(values).all():
                raise damaged(f"'{key}' holds NaN or infinite values")
    if "shot" in data and (data["shot"].shape != (n,) or data["shot"].dtype.kind not in "iu"):
        raise damaged("its shots do not match its frames")
    return data


def load_template(path: str | os.PathLike) -> MotionSequence:
    path = require_file(path)
    try:
        # our own handle: np.load leaves the file it opened to the garbage collector when the zip is damaged
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
            data = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, MemoryError) as exc:
        raise EnlivenError(f"not a motion template (.npz) {path}: {exc}") from None
    if "format" not in data or data["format"].dtype.kind != "U" or str(data["format"]) != FORMAT:
        raise EnlivenError(f"not an enliven motion template: {path}")
    version = int(data["schema_version"]) if "schema_version" in data and data["schema_version"].ndim == 0 else -1
    if not 1 <= version <= SCHEMA_VERSION:
        why = f"has schema {version}; this enliven reads 1 to {SCHEMA_VERSION}" if version > 0 else "has no schema"
        raise EnlivenError(f"motion template {path} {why}")
    data = _checked(data, path)
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
