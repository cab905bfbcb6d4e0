"""Built-in motion presets: keyframed expression and head-pose tracks, played on any face.

A preset is a set of tracks, each a list of ``(seconds, value)`` keyframes eased with a cosine:

- ``blink``: 0 eyes as in the source … 1 fully closed (both eyes)
- ``lip_open``: inner-lip gap / mouth width (absolute; ``None`` = the source's own opening)
- ``smile``: 0 none … 1 broad (negative frowns)
- ``yaw``, ``pitch``, ``roll``: head rotation in degrees, relative to the source's pose

Presets are built on the face they animate (its canonical shape), so absolute targets such as
``lip_open`` 0.3 are met exactly on that face.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from enliven.errors import EnlivenError
from enliven.face import geometry
from enliven.motion import edits
from enliven.motion.frame import MotionFrame, MotionSequence

Keyframes = list[tuple[float, float | None]]


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    duration: float
    tracks: dict[str, Keyframes] = field(default_factory=dict)

    def value(self, track: str, t: float, rest: float = 0.0) -> float:
        keys = [(kt, rest if kv is None else kv) for kt, kv in self.tracks.get(track, [])]
        if not keys:
            return rest
        times = [k[0] for k in keys]
        if t <= times[0]:
            return keys[0][1]
        if t >= times[-1]:
            return keys[-1][1]
        i = int(np.searchsorted(times, t, side="right")) - 1
        (t0, v0), (t1, v1) = keys[i], keys[i + 1]
        u = (t - t0) / (t1 - t0)
        return v0 + (v1 - v0) * (1 - np.cos(np.pi * u)) / 2


def _blinks(*starts: float, length: float = 0.24) -> Keyframes:
    keys: Keyframes = [(0.0, 0.0)]
    for s in starts:
        keys += [(s, 0.0), (s + length / 2, 1.0), (s + length, 0.0)]
    return keys


def _syllables(start: float, values: list[float], step: float = 0.18) -> Keyframes:
    keys: Keyframes = [(0.0, None), (start, None)]
    for i, v in enumerate(values):
        keys.append((start + (i + 1) * step, v))
    keys.append((start + (len(values) + 1) * step, None))
    return keys


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "demo",
            "5 s: a nod, blinks, a few spoken syllables and a smile",
            5.0,
            {
                "pitch": [(0.0, 0.0), (0.5, 0.0), (0.9, 7.0), (1.3, -3.0), (1.7, 4.0), (2.1, 0.0)],
                "yaw": [(0.0, 0.0), (2.2, 0.0), (2.8, -6.0), (3.6, 5.0), (4.4, 0.0)],
                "roll": [(0.0, 0.0), (2.2, 0.0), (3.0, -3.0), (4.0, 2.0), (4.8, 0.0)],
                "blink": _blinks(0.3, 2.0, 4.3),
                "lip_open": _syllables(2.2, [0.22, 0.05, 0.28, 0.1, 0.18, 0.02, 0.25], step=0.16),
                "smile": [(0.0, 0.0), (3.6, 0.0), (4.1, 0.9), (4.7, 0.9), (5.0, 0.6)],
            },
        ),
        Preset("blink", "3 s: three blinks", 3.0, {"blink": _blinks(0.4, 1.4, 2.3)}),
        Preset(
            "talk", "4 s: syllable-like mouth motion", 4.0,
            {"lip_open": _syllables(0.2, [0.2, 0.06, 0.26, 0.1, 0.3, 0.04, 0.22, 0.12, 0.28, 0.05, 0.2, 0.08, 0.24,
                                          0.1, 0.18, 0.06, 0.22, 0.1, 0.15, 0.05])},
        ),
        Preset("nod", "3 s: two nods", 3.0,
               {"pitch": [(0.0, 0.0), (0.5, 8.0), (1.0, -2.0), (1.6, 8.0), (2.2, -2.0), (2.8, 0.0)]}),
        Preset("smile", "3 s: a smile that comes and goes", 3.0,
               {"smile": [(0.0, 0.0), (0.8, 1.0), (2.0, 1.0), (2.8, 0.0)]}),
        Preset(
            "mouth", "2 s: mouth from closed to lip-open ratio 0.3 and closed again", 2.0,
            {"lip_open": [(0.0, 0.0), (1.0, 0.3), (2.0, 0.0)]},
        ),
    ]
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise EnlivenError(f"unknown motion preset {name!r}; available: {', '.join(PRESETS)}")
    return PRESETS[name]


def apply_tracks(preset: Preset, base: np.ndarray, t: float) -> MotionFrame:
    """The preset's motion frame at time ``t`` for a face whose canonical shape is ``base``."""
    rest = edits.expression_ratios(base)
    shape = base
    if "lip_open" in preset.tracks:
        shape = edits.set_lip_open(shape, preset.value("lip_open", t, rest["lip"]))
    if "smile" in preset.tracks:
        shape = edits.smile(shape, preset.value("smile", t))
    if "blink" in preset.tracks:
        closed = preset.value("blink", t)
        for side, key in enumerate(("eye_right", "eye_left")):
            shape = edits.set_eye_open(shape, side, rest[key] * (1.0 - closed))
    rotation = geometry.rotation_from_angles(preset.value("yaw", t), preset.value("pitch", t), preset.value("roll", t))
    return MotionFrame(shape.astype(np.float32), rotation.astype(np.float32), 1.0, np.zeros(3, np.float32))


def preset_motion(name: str, base: np.ndarray | None = None, fps: float = 25.0) -> MotionSequence:
    """A preset as a motion sequence built on ``base`` (default: the canonical face model)."""
    preset = get_preset(name)
    base = geometry.face_model().canonical if base is None else np.asarray(base, np.float64)
    n = max(1, int(round(preset.duration * fps)))

    def frames() -> Iterator[MotionFrame]:
        for i in range(n):
            yield apply_tracks(preset, base, i / fps)

    reference = MotionFrame(base.astype(np.float32), np.eye(3, dtype=np.float32), 1.0, np.zeros(3, np.float32))
    return MotionSequence(frames(), fps=fps, length=n, reference=reference, measured=False, origin=f"preset:{name}")
