"""Import LivePortrait's motion templates (``.pkl``, Python pickle) into our ``.npz`` format.

A pickle can run arbitrary code when loaded, so this only happens when the user says so
(``--allow-pickle``), and only for files they trust.

Layouts LivePortrait's template writer has produced (all read here):

- its first release (2024-07-04, ``video2template.py``): a list ``[frames, landmarks]``, each frame a dict with
  ``n_frames``, ``frames_index``, ``scale``, ``R_d``, ``exp`` and ``t``, and no frame rate;
- from 2024-07-07: ``{"n_frames", "output_fps", "motion": [{"scale", "R_d", "exp", "t"}], "c_d_eyes_lst",
  "c_d_lip_lst"}`` (the example templates it ships, d1.pkl ... d8.pkl, are this);
- from 2024-07-19: ``R`` for ``R_d``, ``c_eyes_lst``/``c_lip_lst``, and until 2024-08-02 ``x_i_info_lst`` (the
  motion extractor's raw output as torch tensors, on whatever device made them);
- from 2024-08-19: each frame also holds ``kp`` (the driver's canonical keypoints) and ``x_s`` (its posed ones);
- the expression examples (wink.pkl, laugh.pkl ...) and the animals pipeline: no eye/lip ratio lists.

Per frame: scale (1, 1), R (1, 3, 3) acting on row vectors, exp (1, 21, 3), t (1, 3), all float32.
"""

from __future__ import annotations

import io
import math
import numbers
import os
import pickle

import numpy as np

from enliven.errors import EnlivenError
from enliven.face import geometry
from enliven.io.files import require_file
from enliven.motion.frame import MotionFrame, MotionSequence
from enliven.motion.template import KEYPOINT_FIELDS

PICKLE_REFUSED = (
    "{path} is a Python pickle, which can run code when loaded; if you trust it, pass --allow-pickle "
    "(or convert it once with `enliven motion import-pkl {path} -o motion.npz --allow-pickle`)"
)
NUM_KEYPOINTS = 21  # LivePortrait's motion extractor (models.yaml num_kp), human and animal alike
DEFAULT_FPS = 25.0  # LivePortrait plays a template without output_fps at its inference config's output_fps
FIRST_RELEASE_FPS = 30.0  # the first release's templates had no frame rate; its pipeline wrote videos at 30
# What LivePortrait reads of each frame: (the names it has been written under, newest first; shape less batch).
FRAME_FIELDS = {
    "scale": (("scale",), (1,)),
    "rotation": (("R", "R_d"), (3, 3)),
    "exp": (("exp",), (NUM_KEYPOINTS, 3)),
    "t": (("t",), (3,)),
}


class _Unpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that puts torch tensors on the CPU: templates of 2024-07-19 to 2024-08-02 carry the
    motion extractor's tensors as they were on the GPU that made them (``x_i_info_lst``), which plain unpickling
    refuses on a machine without that GPU. We never read them, but the file cannot be opened without them."""

    def find_class(self, module: str, name: str):
        if module == "torch.storage" and name == "_load_from_bytes":
            return _storage_on_cpu
        return super().find_class(module, name)


def _storage_on_cpu(blob: bytes):
    import torch

    # the user allowed this pickle to run code, so its nested torch pickle gets the same trust
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)


def _unpickle(path) -> object:
    try:
        with open(path, "rb") as fh:
            return _Unpickler(fh).load()
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file to the user
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EnlivenError(f"cannot read {path} as a LivePortrait template: {detail}") from None


def _unusable(path, what: str) -> EnlivenError:
    return EnlivenError(f"{path} is not a usable LivePortrait motion template: {what}")


def _layout(data: object, path) -> tuple[list, object, object]:
    """(the per-frame dicts, output_fps, n_frames) of any layout LivePortrait has written."""
    if isinstance(data, dict):
        motion = data.get("motion")
        if not isinstance(motion, (list, tuple)):
            raise EnlivenError(f"{path} is not a LivePortrait motion template (no 'motion' list)")
        return list(motion), data.get("output_fps", DEFAULT_FPS), data.get("n_frames")
    first_release = (
        isinstance(data, (list, tuple)) and len(data) == 2 and isinstance(data[0], (list, tuple)) and len(data[0]) > 0
        and all(isinstance(item, dict) and "exp" in item for item in data[0])
    )
    if first_release:  # [frames, the driver's landmarks]; the landmarks fed the retargeting flags only
        return list(data[0]), FIRST_RELEASE_FPS, data[0][0].get("n_frames")
    raise EnlivenError(f"{path} is not a LivePortrait motion template (no 'motion' list)")


def _count(value, held: int, path) -> int:
    """How many frames to play: LivePortrait plays ``n_frames`` of the ``motion`` list."""
    if value is None:
        return held
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise _unusable(path, f"n_frames is {value!r}, not a frame count")
    if value > held:
        raise _unusable(path, f"n_frames is {value} but it holds {held} frames")
    return int(value)


def _fps(value, path) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise _unusable(path, f"output_fps {value!r} is not a frame rate")
    return float(value)


def _array(item: dict, index: int, key: str, shape: tuple[int, ...], path) -> np.ndarray:
    """``item[key]`` as float32 of ``shape``, written with or without LivePortrait's batch axis of 1."""
    try:
        values = np.asarray(item[key], dtype=np.float32)
    except (TypeError, ValueError, RuntimeError):
        raise _unusable(path, f"'{key}' of frame {index} is not numbers") from None
    if values.shape not in (shape, (1, *shape)):
        raise _unusable(path, f"'{key}' of frame {index} has shape {tuple(values.shape)}, expected {(1, *shape)}")
    if not np.isfinite(values).all():
        raise _unusable(path, f"'{key}' of frame {index} is not finite")
    return values.reshape(shape)


def _frame(item: object, index: int, path) -> dict[str, np.ndarray]:
    """One frame's motion in ``MotionFrame.keypoints``' fields."""
    if not isinstance(item, dict):
        raise _unusable(path, f"frame {index} is not a dict of arrays")
    out, stored_as = {}, {}
    for field, (names, shape) in FRAME_FIELDS.items():
        key = next((name for name in names if name in item), None)
        if key is None:
            also = "".join(f" (or '{name}')" for name in names[1:])
            raise _unusable(path, f"frame {index} has no '{names[0]}'{also}")
        out[field], stored_as[field] = _array(item, index, key, shape, path), key
    rotation = out["rotation"].astype(np.float64)
    if np.abs(rotation @ rotation.T - np.eye(3)).max() > 1e-3 or np.linalg.det(rotation) <= 0:
        raise _unusable(path, f"'{stored_as['rotation']}' of frame {index} is not a rotation matrix")
    if out["scale"][0] <= 0:
        raise _unusable(path, f"'scale' of frame {index} is {out['scale'][0]:g}, not a positive scale")
    # LivePortrait drives with the SOURCE's canonical keypoints (x_d = s·(x_c,s·R + exp) + t) and never reads a
    # driver's own, which templates held only from 2024-08-19 on. Absent, they are NaN: the field stays (our
    # .npz stores every field of every frame) but cannot pass for keypoints if anything ever reads it.
    if "kp" in item:
        out["kp"] = _array(item, index, "kp", (NUM_KEYPOINTS, 3), path)
    else:
        out["kp"] = np.full((NUM_KEYPOINTS, 3), np.nan, np.float32)
    # Templates do not store the head's angles; they are R's (LivePortrait built R from them).
    yaw, pitch, roll = geometry.rotation_to_angles(rotation.T)  # R acts on row vectors: its transpose on columns
    out["angles"] = np.array([pitch, yaw, roll], np.float32)
    return {key: out[key] for key in KEYPOINT_FIELDS}


def load_liveportrait_pkl(path: str | os.PathLike, allow_pickle: bool = False) -> MotionSequence:
    """A LivePortrait template as keypoint-only motion (drives ``--engine keypoint``).

    The keypoint engine drives it as LivePortrait does: relative to the template's first frame, on the source's
    canonical keypoints. Ignored: the eye/lip open ratios (``c_eyes_lst``/``c_lip_lst``, formerly ``c_d_*``):
    LivePortrait reads them only under its eye/lip retargeting flags, which replace the driving expression with
    the MLPs' offsets; the expression they measured is in ``exp`` already. Also ignored: ``x_s`` and
    ``x_i_info_lst`` (the same motion again, posed or raw), ``frames_index`` and the first release's landmarks.
    """
    path = require_file(path)
    if not allow_pickle:
        raise EnlivenError(PICKLE_REFUSED.format(path=path))
    motion, fps, n_frames = _layout(_unpickle(path), path)
    if not motion:
        raise EnlivenError(f"{path} holds no motion frames")
    motion = motion[: _count(n_frames, len(motion), path)]
    fps = _fps(fps, path)
    canonical = geometry.face_model().canonical.astype(np.float32)
    frames = []
    for index, item in enumerate(motion):
        keypoints = _frame(item, index, path)
        # No landmarks in a LivePortrait template: a neutral face turned like the driver's head stands in.
        turned = keypoints["rotation"].T.copy()
        frames.append(MotionFrame(canonical, turned, 1.0, np.zeros(3, np.float32), keypoints=keypoints))
    return MotionSequence(
        frames, fps=fps, length=len(frames), measured=False, origin=str(path), has_landmarks=False
    )
