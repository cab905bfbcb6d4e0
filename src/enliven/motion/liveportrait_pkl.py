"""Import LivePortrait's motion templates (``.pkl``, Python pickle) into our ``.npz`` format.

A pickle can run arbitrary code when loaded, so this only happens when the user says so
(``--allow-pickle``), and only for files they trust.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from enliven.errors import EnlivenError
from enliven.face import geometry
from enliven.io.files import require_file
from enliven.motion.frame import MotionFrame, MotionSequence

PICKLE_REFUSED = (
    "{path} is a Python pickle, which can run code when loaded; if you trust it, pass --allow-pickle "
    "(or convert it once with `enliven motion import-pkl {path} -o motion.npz --allow-pickle`)"
)


def _first(d: dict, *keys: str):
    for key in keys:
        if key in d:
            return d[key]
    raise EnlivenError(f"LivePortrait template lacks {' / '.join(keys)}")


def load_liveportrait_pkl(path: str | os.PathLike, allow_pickle: bool = False) -> MotionSequence:
    """A LivePortrait template as keypoint-only motion (drives ``--engine keypoint``)."""
    path = require_file(path)
    if not allow_pickle:
        raise EnlivenError(PICKLE_REFUSED.format(path=path))
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file to the user
        raise EnlivenError(f"cannot read {path} as a LivePortrait template: {exc}") from None
    if not isinstance(data, dict) or "motion" not in data:
        raise EnlivenError(f"{path} is not a LivePortrait motion template (no 'motion' list)")
    canonical = geometry.face_model().canonical.astype(np.float32)
    frames = []
    for item in data["motion"]:
        rot_lp = np.asarray(_first(item, "R", "R_d"), np.float32).reshape(3, 3)  # row-vector form
        yaw, pitch, roll = geometry.rotation_to_angles(rot_lp.T.astype(np.float64))
        keypoints = {
            "kp": np.asarray(item["kp"], np.float32).reshape(-1, 3),
            "exp": np.asarray(item["exp"], np.float32).reshape(-1, 3),
            "rotation": rot_lp,
            "scale": np.asarray(item["scale"], np.float32).reshape(1),
            "t": np.asarray(item["t"], np.float32).reshape(3),
            "angles": np.array([pitch, yaw, roll], np.float32),
        }
        # No landmarks in a LivePortrait template: a neutral face turned like the driver's head stands in.
        frames.append(MotionFrame(canonical, rot_lp.T.copy(), 1.0, np.zeros(3, np.float32), keypoints=keypoints))
    if not frames:
        raise EnlivenError(f"{path} holds no motion frames")
    fps = float(data.get("output_fps", 25))
    return MotionSequence(
        frames, fps=fps, length=len(frames), measured=False, origin=str(path), has_landmarks=False
    )
