"""Keeping the output's motion continuous when the driver's is not: lost faces, cuts, and soft limits.

Motion here is a flat vector of offsets from the rest pose (zero = the source as it is): an expression part and a
head part, in whatever units the caller uses (canonical landmark offsets and a rotation vector for the landmark
path, LivePortrait's expression and pose for the keypoint engine), so one rule serves every engine:

- a face lost for a moment holds its last motion; after ``hold`` seconds it eases to rest over ``release``
  seconds (a black frame or a glance away is not a reason to reset, a face gone for good is);
- when motion comes back (the face returns, or a cut starts a new shot measured from its own reference), the
  output does not jump to it: it starts where it was and cross-fades into the live motion over ``blend`` seconds.

All easing uses smoothstep, so the motion's speed is continuous too (no visible kick at either end).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ZOOM_LIMIT = 0.1  # a still portrait follows the driver's zoom into about 0.9–1.1 (log of the scale ratio) ...
SHIFT_LIMIT = 0.1  # ... and its shift into ±10 % of the face's width ...
CAMERA_LAG_S = 0.1  # ... gliding there (two smoothing stages of this time constant each)
HOLD_S = 0.5  # a lost face's last motion is held this long ...
RELEASE_S = 0.5  # ... then eased to rest over this long
BLEND_S = 0.4  # returning motion, or a new shot's, is blended into over this long


def smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def soft_clip(x: np.ndarray | float, limit: float, start: float | None = None) -> np.ndarray | float:
    """``x`` unchanged up to ``start`` in magnitude (default: half the limit), then bent smoothly (tanh) so it
    never passes ``limit``: continuous with a continuous slope, so a demand that grows slowly gives an output that
    grows slowly. ``start`` at or past ``limit`` leaves a margin of 5 % of ``start`` to bend into."""
    x = np.asarray(x, np.float64)
    start = 0.5 * limit if start is None else start
    room = max(limit - start, 0.05 * start, 1e-9)
    over = np.abs(x) - start
    bent = np.sign(x) * (start + room * np.tanh(np.maximum(over, 0.0) / room))
    out = np.where(over > 0, bent, x)
    return float(out) if out.ndim == 0 else out


class CameraFollow:
    """How a still portrait follows the driver's camera: zoom and shift eased into natural limits (``soft_clip``)
    and low-passed, so a sudden camera move (a slide, a whip pan) becomes a glide: an eased-in shift of 10 % of the
    face taken in one frame would read as the head jerking. Call once per frame with live motion, in order."""

    def __init__(self, fps: float, lag: float = CAMERA_LAG_S):
        self.alpha = 1.0 - float(np.exp(-1.0 / (max(fps, 1e-6) * max(lag, 1e-6))))
        self._stages: list[np.ndarray] | None = None

    def __call__(self, zoom: float, shift: np.ndarray, face_width: float) -> tuple[float, np.ndarray]:
        """``zoom``: log scale ratio; ``shift``: (3,) in the units of ``face_width``. Depth is left as it is."""
        limited = np.concatenate([[soft_clip(zoom, ZOOM_LIMIT)], soft_clip(shift[:2], SHIFT_LIMIT * face_width)])
        if self._stages is None:
            self._stages = [limited.copy(), limited.copy()]
        first, second = self._stages
        first += self.alpha * (limited - first)
        second += self.alpha * (first - second)
        return float(second[0]), np.concatenate([second[1:], np.asarray(shift, np.float64)[2:]])


@dataclass(frozen=True)
class ContinuityOptions:
    hold: float = HOLD_S
    release: float = RELEASE_S
    blend: float = BLEND_S


class Continuity:
    """Stateful: call once per frame, in order, with the live motion vector (None where the face is lost) and
    the frame's shot number; returns the motion to render (``size`` values; zeros are the rest pose)."""

    def __init__(self, size: int, fps: float, options: ContinuityOptions = ContinuityOptions()):
        self.fps = fps
        self.options = options
        self._output = np.zeros(size)  # what was rendered last (rest before the first frame)
        self._held: np.ndarray | None = None  # while the face is lost: the output when it was lost
        self._lost = 0  # frames since the face was lost
        self._from: np.ndarray | None = None  # while blending: the output when motion came back
        self._since = 0  # frames since then
        self._shot: int | None = None
        self._started = False

    def __call__(self, live: np.ndarray | None, shot: int = 0) -> np.ndarray:
        if live is None:
            out = self._without_motion()
        else:
            out = self._with_motion(np.asarray(live, np.float64), shot)
        self._output = out
        return out

    def _without_motion(self) -> np.ndarray:
        if self._held is None:
            self._held, self._lost = self._output, 0
        self._lost += 1
        seconds = self._lost / self.fps
        return self._held * (1.0 - smoothstep((seconds - self.options.hold) / max(self.options.release, 1e-6)))

    def _with_motion(self, live: np.ndarray, shot: int) -> np.ndarray:
        returning = self._held is not None
        cut = self._shot is not None and shot != self._shot
        first = not self._started
        self._shot, self._held, self._started = shot, None, True
        if returning or cut:  # start from where the output is (rest, if the face was never seen before)
            self._from, self._since = self._output, 0
        elif first:
            return live  # the clip starts here: there is no earlier output to continue from
        if self._from is None:
            return live
        # A cross-fade from the output as it was, not an offset that carries the live motion's every change from
        # the start: a face tracker settles for a few frames after a cut, and that settling should not show.
        weight = 1.0 - smoothstep(self._since / max(self.options.blend * self.fps, 1e-6))
        self._since += 1
        if weight <= 0.0:
            self._from = None
            return live
        return weight * self._from + (1.0 - weight) * live
