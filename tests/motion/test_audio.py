"""Audio and text driving: loud speech opens the mouth, silence closes it, measured back on the render."""

from __future__ import annotations

import os
import shutil
import sys
import tracemalloc
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from enliven import api
from enliven.errors import EnlivenError
from enliven.face.analyzer import FaceAnalyzer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import read_frames, vowels_and_silence

RATE = 16000


def test_mouth_follows_loudness(tmp_path, portrait_path):
    wav = tmp_path / "speech.wav"
    signal = vowels_and_silence(wav)
    out = tmp_path / "talk.mp4"
    result = api.animate(portrait_path, wav, out, progress=False)
    frames = read_frames(out)
    assert result.frames == len(frames) == 100  # 4 s at 25 fps
    with av.open(str(out)) as c:
        assert c.streams.audio, "the speech is muxed into the output"
    with FaceAnalyzer(static=False) as analyzer:
        lips = np.array([analyzer.detect(f)[0].lip_open for f in frames])
    hop = RATE // 25
    loudness = np.array([np.sqrt(np.mean(signal[i * hop : (i + 1) * hop] ** 2)) for i in range(len(frames))])
    corr = np.corrcoef(lips, loudness)[0, 1]
    assert corr >= 0.6, f"mouth opening vs loudness: correlation {corr:.2f}"
    silent, loud = loudness < 1e-4, loudness > np.percentile(loudness, 75)
    assert lips[silent].mean() < 0.08 and lips[loud].mean() > lips[silent].mean() + 0.1


def _long_wav(path: Path, seconds: int) -> None:
    """``seconds`` of 16 kHz mono 16-bit PCM: 0.5 s tone bursts (440 Hz) every 2 s over silence, written a second at
    a time so the test itself never holds the whole signal."""
    t = np.arange(RATE) / RATE
    loud = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t) * (t < 0.5)).astype("<i2").tobytes()
    quiet = np.zeros(RATE, "<i2").tobytes()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        for second in range(seconds):
            out.writeframes(loud if second % 2 == 0 else quiet)


def _peak_while_reading(path: Path) -> tuple[int, int, float, float]:
    """(frames, peak bytes traced while the features stream by, quietest level, loudest level)."""
    from enliven.motion.audio import speech_features

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        count, low, high = 0, np.inf, -np.inf
        for level, _ in speech_features(path, fps=25):  # consumed one at a time, as audio_motion does
            count, low, high = count + 1, min(low, level), max(high, level)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return count, peak, low, high


def test_long_audio_is_streamed_in_blocks(tmp_path):
    # Ten minutes decode to 600 s x 16000 x 4 bytes = 38.4 MB of float32 samples. Read in blocks, the memory
    # traced while the features stream by must not grow with the length: a tenth of one minute's decoded size
    # (384 kB; blocks of a few thousand samples peak near 80 kB) bounds both files, and ten times the audio may
    # cost at most 1 MB more than one minute. Decoding the whole file first peaks at 7.8 MB for one minute.
    short, long = tmp_path / "one.wav", tmp_path / "ten.wav"
    _long_wav(short, 60)
    _long_wav(long, 600)
    n_short, peak_short, *_ = _peak_while_reading(short)
    n_long, peak_long, low, high = _peak_while_reading(long)
    assert (n_short, n_long) == (60 * 25, 600 * 25)  # every frame of both files was read
    assert low < -60 and high > -20  # silences and bursts were both heard, to the end
    decoded_minute = 60 * RATE * 4
    assert peak_short < decoded_minute / 10 and peak_long < decoded_minute / 10, (peak_short, peak_long)
    assert peak_long - peak_short < 1_000_000, (
        f"1 min peaks at {peak_short / 1e6:.2f} MB, 10 min at {peak_long / 1e6:.2f} MB"
    )


def test_text_is_spoken_and_animated(tmp_path, portrait_path):
    if shutil.which("espeak-ng") is None and not os.environ.get("CI"):
        pytest.skip("espeak-ng is not installed here (.ci/run installs it)")
    out = tmp_path / "hello.mp4"
    result = api.animate_text(portrait_path, "Hello there, how are you today?", out, progress=False)
    frames = read_frames(out)
    assert result.frames == len(frames) > 25
    with av.open(str(out)) as c:
        assert c.streams.audio
    with FaceAnalyzer(static=False) as analyzer:
        lips = [analyzer.detect(f)[0].lip_open for f in frames]
    assert max(lips) - min(lips) > 0.1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".enliven-tts")]  # the temporary speech is gone


def test_speaking_leaves_nothing_in_the_temporary_folder(tmp_path, monkeypatch):
    """Without XDG_RUNTIME_DIR (a server, a container, cron), espeak-ng's PulseAudio client makes a pulse-XXXX folder
    in TMPDIR that would stay after every run (the fuzz suite found it)."""
    if shutil.which("espeak-ng") is None and not os.environ.get("CI"):
        pytest.skip("espeak-ng is not installed here (.ci/run installs it)")
    from enliven.motion.audio import speak

    temporary, home = tmp_path / "tmp", tmp_path / "home"
    temporary.mkdir(), home.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr("tempfile.tempdir", str(temporary))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    # A fresh home: PulseAudio reuses a folder an earlier run linked from ~/.config/pulse while that folder lasts,
    # so with the user's home this would pass or fail by what ran before.
    monkeypatch.setenv("HOME", str(home))
    speak("Hello there.", tmp_path / "hello.wav")
    assert (tmp_path / "hello.wav").stat().st_size > 10_000
    assert list(temporary.iterdir()) == []
    assert list(home.rglob("*")) == []


def test_missing_speech_synthesiser_is_a_clear_error(tmp_path, portrait_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(EnlivenError, match="needs espeak-ng"):
        api.animate_text(portrait_path, "Hello", tmp_path / "o.mp4")
    assert not list(tmp_path.iterdir())
