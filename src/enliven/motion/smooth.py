"""One-euro filter (Casiez et al. 2012): strong smoothing when still, little lag when moving fast.

Applied to whole landmark arrays, with one cutoff per landmark from that landmark's speed, so a blink
stays crisp while a still face stops shimmering.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

import numpy as np

from enliven.motion.frame import MotionFrame


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Streaming filter for arrays of shape (N, D); speeds are norms over the last axis."""

    def __init__(self, fps: float, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0):
        self.dt = 1.0 / fps
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x
        dx = (x - self._x) / self.dt
        self._dx = self._dx + _alpha(self.d_cutoff, self.dt) * (dx - self._dx)
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True)
        a = _alpha(self.min_cutoff + self.beta * speed, self.dt)
        self._x = self._x + a * (x - self._x)
        return self._x.copy()


def smooth_motion(frames: Iterable[MotionFrame], fps: float, min_cutoff: float = 1.0,
                  beta: float = 5.0) -> Iterator[MotionFrame]:
    """One-euro smoothing of the motion itself (canonical shape in eye-distance units, rotation, scale, shift).

    Used where the target landmarks cannot be smoothed because the source moves too (video sources)."""
    shape_f = OneEuroFilter(fps, min_cutoff, beta)
    pose_f = OneEuroFilter(fps, min_cutoff, beta)
    for frame in frames:
        shape = shape_f(frame.shape)
        rel_t = frame.translation / max(frame.scale, 1e-6)
        pose = pose_f(np.concatenate([frame.rotation.reshape(9), rel_t, [np.log(max(frame.scale, 1e-6))]])[None])[0]
        u, _, vt = np.linalg.svd(pose[:9].reshape(3, 3))
        rotation = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt  # nearest rotation
        scale = float(np.exp(pose[12]))
        yield replace(
            frame,
            shape=shape.astype(np.float32),
            rotation=rotation.astype(np.float32),
            scale=scale,
            translation=(pose[9:12] * scale).astype(np.float32),
        )
