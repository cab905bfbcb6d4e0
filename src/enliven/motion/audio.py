"""Audio and text driving on a CPU, with no learned model: speech → mouth, blinks and head motion.

Method (per output frame, 25 fps by default, audio resampled to 16 kHz mono):

- **Mouth opening** follows loudness: the frame's RMS level in dBFS, mapped from a noise floor (-45 dB)
  over a 33 dB range to a lip-open ratio 0.02 … 0.34, then smoothed with a fast attack and a slower
  release (jaws open quicker than they settle). Silence gives a closed mouth.
- **Mouth shape** from the spectrum: a high spectral centroid (fricatives: s, f, sh) narrows the opening
  and spreads the lips a little (smile); a low centroid with voicing (o, u) rounds them (pout).
- **Blinks** every 2.5–5.5 s (seeded, so a render is repeatable), 0.24 s each.
- **Head motion**: a slow sway (yaw, roll) plus a small nod on each loudness onset.

It is a heuristic, not lip reading: visemes are approximate. The audio is read in blocks, so long audio
runs in constant memory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from enliven.errors import EnlivenError
from enliven.face import geometry
from enliven.io.video import PacketDecoder, open_media
from enliven.motion import edits
from enliven.motion.frame import MotionFrame, MotionSequence

AUDIO_SUFFIXES = {".wav", ".mp3", ".flac", ".m4a", ".aac", ".ogg", ".opus"}
RATE = 16000
FLOOR_DB, RANGE_DB = -45.0, 33.0
LIP_CLOSED, LIP_WIDE = 0.02, 0.34
MAX_TEXT = 10_000  # characters of --text


def read_audio(path: str | os.PathLike, rate: int = RATE) -> Iterator[np.ndarray]:
    """Mono float32 samples at ``rate`` Hz, block by block. Damaged packets are skipped (and counted) as for
    video; audio damaged throughout is one EnlivenError."""
    with open_media(path, "audio") as container:
        if not container.streams.audio:
            raise EnlivenError(f"no audio stream in {path}")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        try:
            for frame in PacketDecoder(container, container.streams.audio[0], "audio", Path(path)).frames():
                for out in resampler.resample(frame):
                    yield out.to_ndarray().reshape(-1).astype(np.float32)
            for out in resampler.resample(None):
                yield out.to_ndarray().reshape(-1).astype(np.float32)
        except (av.FFmpegError, ValueError) as exc:  # the resampler refusing a damaged frame's layout or rate
            raise EnlivenError(f"cannot decode audio {path}: {exc}") from None


def audio_duration(path: str | os.PathLike) -> float:
    with open_media(path, "audio") as container:
        if not container.streams.audio:
            raise EnlivenError(f"no audio stream in {path}")
        stream = container.streams.audio[0]
        if stream.duration is not None:
            return float(stream.duration * stream.time_base)
        return float(container.duration or 0) / av.time_base


def _frames_of(samples: Iterator[np.ndarray], hop: int) -> Iterator[np.ndarray]:
    """Windows of 2·hop samples centred on each frame time, hop apart."""
    buffer = np.zeros(hop // 2, np.float32)  # half a hop of lead-in centres the first window on t = 0
    for block in samples:
        buffer = np.concatenate([buffer, block])
        while len(buffer) >= 2 * hop:
            yield buffer[: 2 * hop]
            buffer = buffer[hop:]
    if len(buffer) > hop // 2:
        yield np.pad(buffer, (0, max(0, 2 * hop - len(buffer))))


def speech_features(path: str | os.PathLike, fps: float) -> Iterator[tuple[float, float]]:
    """(level dBFS, spectral centroid Hz) per frame."""
    hop = int(round(RATE / fps))
    window = np.hanning(2 * hop).astype(np.float32)
    freqs = np.fft.rfftfreq(2 * hop, 1.0 / RATE)
    for chunk in _frames_of(read_audio(path), hop):
        rms = float(np.sqrt(np.mean(chunk.astype(np.float64) ** 2)))
        level = 20.0 * np.log10(max(rms, 1e-6))
        spectrum = np.abs(np.fft.rfft(chunk * window))
        centroid = float((spectrum * freqs).sum() / max(spectrum.sum(), 1e-9))
        yield level, centroid


def audio_motion(path: str | os.PathLike, base: np.ndarray | None = None, fps: float = 25.0,
                 seed: int = 0) -> MotionSequence:
    """Motion for a face (canonical ``base``) speaking the audio in ``path``."""
    base = geometry.face_model().canonical if base is None else np.asarray(base, np.float64)
    rest = edits.expression_ratios(base)
    rng = np.random.default_rng(seed)
    length = int(round(audio_duration(path) * fps)) or None

    def frames() -> Iterator[MotionFrame]:
        lip, prev_level = LIP_CLOSED, FLOOR_DB
        next_blink, nod = rng.uniform(1.0, 3.0), 0.0
        for i, (level, centroid) in enumerate(speech_features(path, fps)):
            t = i / fps
            loud = float(np.clip((level - FLOOR_DB) / RANGE_DB, 0.0, 1.0))
            target = LIP_CLOSED + (LIP_WIDE - LIP_CLOSED) * loud**0.8
            fricative = float(np.clip((centroid - 2500.0) / 2500.0, 0.0, 1.0)) * loud
            rounded = float(np.clip((900.0 - centroid) / 600.0, 0.0, 1.0)) * loud
            target *= 1.0 - 0.6 * fricative
            rate = 0.6 if target > lip else 0.35  # fast attack, slower release (per frame at 25 fps)
            lip += (target - lip) * rate
            if level - prev_level > 9.0 and loud > 0.3:  # an onset: a small nod
                nod = 1.0
            nod *= 0.8
            prev_level = level
            if t >= next_blink + 0.24:
                next_blink = t + rng.uniform(2.5, 5.5)
            blink = max(0.0, 1.0 - abs(t - (next_blink + 0.12)) / 0.12) if t >= next_blink else 0.0
            shape = edits.set_lip_open(base, lip)
            if fricative > 0.05:
                shape = edits.smile(shape, 0.25 * fricative)
            if rounded > 0.05:
                shape = edits.pout(shape, 0.5 * rounded)
            if blink > 0:
                for side, key in enumerate(("eye_right", "eye_left")):
                    shape = edits.set_eye_open(shape, side, rest[key] * (1.0 - blink))
            yaw = 3.0 * np.sin(2 * np.pi * 0.11 * t) + 1.5 * np.sin(2 * np.pi * 0.23 * t + 1.0)
            roll = 1.5 * np.sin(2 * np.pi * 0.07 * t + 2.0)
            pitch = 2.5 * nod + 1.0 * np.sin(2 * np.pi * 0.13 * t)
            rotation = geometry.rotation_from_angles(yaw, pitch, roll)
            yield MotionFrame(shape.astype(np.float32), rotation.astype(np.float32), 1.0, np.zeros(3, np.float32))

    reference = MotionFrame(base.astype(np.float32), np.eye(3, dtype=np.float32), 1.0, np.zeros(3, np.float32))
    return MotionSequence(
        frames(), fps=fps, length=length, reference=reference, measured=False, audio=Path(path), origin=str(path)
    )


def speak(text: str, wav: str | os.PathLike, voice: str = "en") -> Path:
    """Synthesise ``text`` to a WAV file with espeak-ng (a Debian package: ``apt-get install espeak-ng``)."""
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe is None:
        raise EnlivenError("--text needs espeak-ng: install it (Debian/Ubuntu: apt-get install espeak-ng)")
    if not text.strip():
        raise EnlivenError("--text is empty")
    if len(text) > MAX_TEXT:
        raise EnlivenError(f"--text is {len(text):,} characters; at most {MAX_TEXT:,} (about ten minutes of speech)")
    # The text goes in on stdin: as an argument, text starting with "-" would be read as an option.
    seconds = 60 + len(text) / 100  # espeak-ng speaks far faster than real time; past this it is stuck
    # espeak-ng starts PulseAudio's client even to write a file, and without XDG_RUNTIME_DIR (a server, a container,
    # cron) that makes a pulse-XXXX folder in TMPDIR (and a link to it in ~/.config/pulse) that nobody removes: it
    # gets a runtime folder of its own instead, removed with what is in it.
    with contextlib.ExitStack() as stack:
        env = None
        if not os.environ.get("XDG_RUNTIME_DIR"):
            runtime = stack.enter_context(tempfile.TemporaryDirectory(prefix="enliven-espeak-"))
            env = {**os.environ, "XDG_RUNTIME_DIR": runtime}
        try:
            done = subprocess.run([exe, "-v", voice, "-w", str(wav), "--stdin"], input=text, capture_output=True,
                                  text=True, timeout=seconds, env=env)
        except subprocess.TimeoutExpired:
            raise EnlivenError(f"espeak-ng did not finish within {seconds:.0f} s") from None
    if done.returncode != 0 or not Path(wav).is_file() or Path(wav).stat().st_size <= 44:
        why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}, no speech written"])[0]
        raise EnlivenError(f"espeak-ng failed (voice {voice!r}): {why}")
    return Path(wav)
