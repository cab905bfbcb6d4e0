"""Shared fixtures: the bundled portrait, and driving clips rendered once per session."""

from __future__ import annotations

import fnmatch
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from enliven import api
from enliven.face.analyzer import FaceAnalyzer
from enliven.io.images import read_image

# The parity checks in tools/parity/ (shared with tools/parity/compare.py, which prints the README's parity
# figures) are imported by name in the engine tests.
PARITY_TOOLS = Path(__file__).resolve().parents[1] / "tools" / "parity"
if str(PARITY_TOOLS) not in sys.path:
    sys.path.insert(0, str(PARITY_TOOLS))


@pytest.fixture(scope="session")
def portrait_path() -> Path:
    return api.bundled_portrait()


@pytest.fixture(scope="session")
def portrait(portrait_path) -> np.ndarray:
    return read_image(portrait_path)


@pytest.fixture(scope="session")
def portrait_face(portrait):
    with FaceAnalyzer(static=True) as analyzer:
        return analyzer.detect(portrait)[0]


@pytest.fixture(scope="session")
def prepared(portrait, portrait_face):
    """The mesh engine prepared on the bundled portrait: (engine, state, the face's landmarks in the crop)."""
    from enliven import engines
    from enliven.face.crop import face_crop

    crop = face_crop(portrait_face.landmarks)
    engine = engines.create("mesh")
    landmarks = crop.to_crop(portrait_face.landmarks)
    return engine, engine.prepare(crop.cut(portrait), landmarks), landmarks


@pytest.fixture(scope="module")
def one_torch_thread():
    """For tiny random networks (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``): they gain nothing
    from threads, and on a shared machine they lose a lot to contention."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """A folder in the official LivePortrait layout holding tiny random-initialised networks (the keypoint engine's
    test weights; the real ones cannot be downloaded here)."""
    import torch

    from enliven.engines.keypoint import build_modules, save_official, tiny_config

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("lp") / "liveportrait"
    save_official(build_modules(tiny_config()), root, config=tiny_config())
    return root.parent


@pytest.fixture(scope="session")
def driving_video(tmp_path_factory, portrait_path) -> Path:
    """A real-looking talking/nodding face clip (our own render of the portrait) with a tone as audio."""
    folder = tmp_path_factory.mktemp("driving")
    silent = folder / "silent.mp4"
    api.demo(silent, progress=False)
    out = folder / "driver.mp4"
    add_tone(silent, out)
    return out


def add_tone(video: Path, out: Path, freq: float = 440.0, rate: int = 16000) -> None:
    """Copy ``video``'s picture into ``out`` with a sine tone as its audio track."""
    with av.open(str(video)) as src, av.open(str(out), "w") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        aout = dst.add_stream("aac", rate=rate, layout="mono")
        n = 0
        for frame in src.decode(vin):
            for p in vout.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")):
                dst.mux(p)
            n += 1
        for p in vout.encode():
            dst.mux(p)
        seconds = n / float(vin.average_rate)
        t = np.arange(int(seconds * rate)) / rate
        samples = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        for start in range(0, len(samples), 1024):
            chunk = samples[start : start + 1024][None, :]
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate = rate
            for p in aout.encode(frame):
                dst.mux(p)
        for p in aout.encode(None):
            dst.mux(p)


def vowels_and_silence(path: Path, seconds: float = 4.0, rate: int = 16000) -> np.ndarray:
    """Syllables of a vowel-like sound (150 Hz voice, formants near 700 and 1200 Hz) between silences, written to
    ``path`` as 16-bit PCM; returns the samples."""
    t = np.arange(int(seconds * rate)) / rate
    voice = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 12))
    formants = 1.0 + 0.8 * np.sin(2 * np.pi * 700 * t) + 0.5 * np.sin(2 * np.pi * 1200 * t)
    envelope = np.clip(np.sin(2 * np.pi * 0.75 * t), 0, None) ** 0.7 * (t > 0.4)  # on/off every 0.67 s
    signal = (0.25 * envelope * voice * formants / 4).astype(np.float32)
    write_sound(path, signal, rate, "pcm_s16le", chunk=1600)
    return signal


def write_sound(path: Path, samples: np.ndarray, rate: int, codec: str, chunk: int = 1024) -> None:
    """Mono float samples written to ``path`` as a file of one ``codec`` audio stream."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        for start in range(0, len(samples), chunk):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + chunk], format="flt", layout="mono")
            frame.sample_rate = rate
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)


def fake_hub_fetch(hub: dict[str, list[str]], calls: list | None = None):
    """A stand-in for ``huggingface_hub.snapshot_download`` (``weights.download``'s ``fetch``): each repository of
    ``hub`` holds the listed paths; the ones matching the allow patterns (fnmatch, as the Hub matches them) are
    written into ``local_dir``. ``calls`` collects the repositories asked for."""

    def fetch(repo_id, allow_patterns, local_dir):
        if calls is not None:
            calls.append(repo_id)
        for path in hub[repo_id]:
            if any(fnmatch.fnmatch(path, pattern) for pattern in allow_patterns):
                target = Path(local_dir) / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(f"{repo_id}/{path}")
        return local_dir

    return fetch


def read_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def write_still_video(path: Path, image: np.ndarray, frames: int, fps: int = 25) -> None:
    with av.open(str(path), "w") as dst:
        stream = dst.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
        stream.options = {"crf": "0"}
        for _ in range(frames):
            for p in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                dst.mux(p)
        for p in stream.encode():
            dst.mux(p)


def pytest_terminal_summary(terminalreporter):
    """The fuzz suite's counts (tests/fuzz): cases per class, how each ended, what failed. The hook lives here
    because a second conftest.py would shadow this one for the tests that import helpers from it."""
    harness = sys.modules.get("fuzz_harness")
    if harness is None or not sum(harness.TALLY.counts.values()):
        return
    terminalreporter.section("fuzz")
    for line in harness.TALLY.lines():
        terminalreporter.write_line(line)
    for outcome in harness.TALLY.failures[:40]:
        terminalreporter.write_line(outcome.describe())
