"""The inside of the mouth in the mesh engine: the driver's teeth when its pixels come with the motion, drawn teeth
when they do not, the source's own teeth kept, no seam at the lips, a still interior on a still driver.

Pictures: Grace Hopper (US Navy photo, public domain, shipped with matplotlib), whose mouth is shut, and the bundled
portrait (Eileen Collins, NASA, public domain), whose smile shows its teeth. What is rendered is read back with
MediaPipe (a fresh analyser, not the engine's targets) wherever a test asks where the output's mouth is.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from enliven import api, engines
from enliven.errors import EnlivenError
from enliven.face import geometry
from enliven.face import landmarks as lm
from enliven.face.analyzer import FaceAnalyzer
from enliven.face.crop import face_crop
from enliven.io.images import read_image, write_image
from enliven.motion import edits
from enliven.motion.frame import MotionFrame

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import read_frames, vowels_and_silence

INNER = list(lm.INNER_LIP_UPPER) + list(lm.INNER_LIP_LOWER[::-1][1:-1])
CHEEKS = (50, 280, 205, 425, 187, 411)


def _luma(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _hopper() -> np.ndarray:
    matplotlib = pytest.importorskip("matplotlib")
    hopper = read_image(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))
    part = hopper[107:357, 139:389]
    return cv2.resize(part, (512, 512), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def analyzer():
    with FaceAnalyzer(static=True) as found:
        yield found


@pytest.fixture(scope="module")
def hopper_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hopper") / "hopper.png"
    write_image(path, _hopper())
    return path


def _inside(picture: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The pixels inside the inner-lip contour ``points`` gives (N, 3)."""
    mask = np.zeros(picture.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points[INNER, :2]).astype(np.int32)], 1)
    return picture[mask.astype(bool)]


def _skin(picture: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The cheeks' colour (median over 5×5 patches), the light the mouth's inside is judged against."""
    patches = [picture[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3].reshape(-1, 3)
               for x, y in points[list(CHEEKS), :2]]
    return np.median(np.concatenate(patches), axis=0).astype(np.float64)


def _saturation(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, np.float64)
    return (rgb.max(-1) - rgb.min(-1)) / np.maximum(rgb.max(-1), 1.0)


def _teethlike(pixels: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Which pixels look like teeth in this picture's light: nearly as light as the cheeks or lighter (the back of
    a mouth is far darker) and clearly greyer than them (lips and skin are red; a warm photo tints everything, so
    this is judged against the cheeks' own saturation)."""
    return (_luma(pixels) >= 0.9 * _luma(skin)) & (_saturation(pixels) <= 0.7 * _saturation(skin))


def _teeth_share(picture: np.ndarray, points: np.ndarray) -> float:
    """Fraction of the inner mouth that looks like teeth."""
    inside = _inside(picture, points)
    assert len(inside) > 30, "the mouth must be open for this measure"
    return float(_teethlike(inside, _skin(picture, points)).mean())


def _lip_line_gradient(picture: np.ndarray, points: np.ndarray) -> float:
    """Mean luma step across the inner-lip line, 2 pixels either side, along its normal (luma per pixel)."""
    gray = _luma(picture).astype(np.float32)
    loop = points[INNER, :2]
    steps = []
    for k in range(len(loop)):
        a, b = loop[k - 1], loop[(k + 1) % len(loop)]
        tangent = (b - a) / max(np.linalg.norm(b - a), 1e-6)
        normal = np.array([-tangent[1], tangent[0]])
        for t in np.linspace(0.0, 1.0, 5, endpoint=False):
            p = loop[k] + t * (loop[(k + 1) % len(loop)] - loop[k])
            here, there = p + 2 * normal, p - 2 * normal
            values = cv2.remap(gray, np.float32([[here[0], there[0]]]), np.float32([[here[1], there[1]]]),
                               cv2.INTER_LINEAR)[0]
            steps.append(abs(float(values[0] - values[1])) / 4.0)
    return float(np.mean(steps))


@pytest.fixture(scope="module")
def driven_by_a_smile(tmp_path_factory, hopper_path, analyzer):
    """Hopper driven by the bundled portrait's smiling picture, with each mouth mode: mode → (picture, landmarks)."""
    folder = tmp_path_factory.mktemp("smile")
    out = {}
    for mode in ("auto", "synth", "source"):
        path = folder / f"{mode}.png"
        api.animate(hopper_path, api.bundled_portrait(), path, progress=False, engine_options={"mouth": mode})
        picture = read_image(path)
        out[mode] = picture, analyzer.detect(picture)[0].landmarks
    return out


def test_an_open_mouthed_driver_puts_its_teeth_between_the_lips(driven_by_a_smile, portrait, analyzer):
    """The smiling driver's teeth appear inside the output's inner lips (as MediaPipe finds them there), about as
    much of the opening as in the driver's own photo; the old engine's dark cavity ('source' mode) has none."""
    driver_share = _teeth_share(portrait, analyzer.detect(portrait)[0].landmarks)
    taken = _teeth_share(*driven_by_a_smile["auto"])
    dark = _teeth_share(*driven_by_a_smile["source"])
    assert driver_share > 0.25  # the driver shows teeth
    assert taken > 0.5 * driver_share, (taken, driver_share)
    assert dark < 0.1, dark


def test_without_driver_pixels_teeth_are_drawn(driven_by_a_smile):
    """``synth`` draws teeth in the opening even with a driver at hand; the drawn teeth are light like real ones."""
    assert _teeth_share(*driven_by_a_smile["synth"]) > 0.3


def test_no_seam_where_the_inside_meets_the_lips(driven_by_a_smile, portrait, analyzer):
    """The step in light across the output's inner-lip line is no larger than across the driver photo's own (where
    real lips meet real teeth): the transferred inside is feathered into the lips, not pasted on."""
    real = _lip_line_gradient(portrait, analyzer.detect(portrait)[0].landmarks)
    for mode in ("auto", "synth"):
        rendered = _lip_line_gradient(*driven_by_a_smile[mode])
        assert rendered <= 1.1 * real, (mode, rendered, real)


def _crop_of(picture: np.ndarray, analyzer, mode: str = "synth"):
    face = analyzer.detect(picture)[0].landmarks
    crop = face_crop(face)
    landmarks = crop.to_crop(face)
    engine = engines.create("mesh", mouth=mode)
    return engine, engine.prepare(crop.cut(picture), landmarks), landmarks


def test_the_sources_own_teeth_stay_when_the_mouth_shuts_and_opens(portrait, analyzer):
    """The portrait shows its teeth. Shut, none shows (the lips cover them, nothing is smeared over the lips);
    opened wider, its own upper teeth are back where they were (the head did not move) and unstretched."""
    engine, state, landmarks = _crop_of(portrait, analyzer)
    source = MotionFrame.from_landmarks(landmarks)
    crop = state.crop_image
    own = _teeth_share(crop, landmarks)
    frames = {}
    for ratio in (0.0, 0.35):
        target = geometry.from_canonical(edits.set_lip_open(source.shape.astype(np.float64), ratio), source.pose)
        frames[ratio] = engine.render(state, target), target
    shut, _ = frames[0.0]
    seen = analyzer.detect(shut)[0].landmarks
    line = np.zeros(shut.shape[:2], np.uint8)  # where the lips meet, 2 pixels either side
    cv2.polylines(line, [np.round(seen[INNER, :2]).astype(np.int32)], True, 1, thickness=5)
    meeting = shut[line.astype(bool)]
    assert _teethlike(meeting, _skin(shut, seen)).mean() < 0.2 * own  # no line of teeth where the lips meet (old: 0.12)
    opened, target = frames[0.35]
    # The source's upper teeth: the upper half of its opening, nearer the upper lip than the lower.
    upper = np.zeros(crop.shape[:2], np.uint8)
    middle = 0.5 * (landmarks[list(lm.INNER_LIP_UPPER), :2] + landmarks[list(lm.INNER_LIP_LOWER), :2])
    cv2.fillPoly(upper, [np.round(np.concatenate([landmarks[list(lm.INNER_LIP_UPPER), :2], middle[::-1]]))
                         .astype(np.int32)], 1)
    upper = cv2.erode(upper, np.ones((3, 3), np.uint8)).astype(bool)
    assert upper.sum() > 100
    diff = np.abs(opened[upper].astype(np.float64) - crop[upper]).mean()
    assert diff < 10.0, diff


def test_a_lost_driver_frame_keeps_the_last_inside(portrait, analyzer):
    """A frame whose driver face was lost (no pixels) keeps the driver's inside last seen, not a drawn one."""
    hopper = _hopper()
    engine, state, landmarks = _crop_of(hopper, analyzer, "auto")
    face = analyzer.detect(portrait)[0].landmarks
    box = engine.driving_crop.crop(face)
    driver = MotionFrame.from_landmarks(landmarks)
    target = geometry.from_canonical(edits.set_lip_open(driver.shape.astype(np.float64), 0.2), driver.pose)
    seen = MotionFrame(driver.shape, driver.rotation, driver.scale, driver.translation, crop=box.cut(portrait),
                       crop_landmarks=box.to_crop(face).astype(np.float32))
    with_pixels = engine.render(state, target, seen)
    held = engine.render(state, target, replace(seen, crop=None, crop_landmarks=None).lost())
    _, fresh, _ = _crop_of(hopper, analyzer, "auto")
    drawn = engine.render(fresh, target, None)
    mouth = _inside(with_pixels, target).astype(np.float64)
    assert np.abs(_inside(held, target) - mouth).mean() < 2.0
    assert np.abs(_inside(drawn, target) - mouth).mean() > 10.0  # the two kinds of inside do differ


def test_a_still_driver_gives_a_still_inside(tmp_path, hopper_path, portrait):
    """The smiling portrait as a video of 12 frames with fresh camera noise in each (σ 3): MediaPipe's landmarks
    jitter, the picture does not move. The output's mouth (absolute motion: the driver's open smile) is still:
    frame to frame, the mouth box changes by under 1.5 grey levels once the noise's own grain is blurred away."""
    rng = np.random.default_rng(3)
    clip = tmp_path / "still.mp4"
    with av.open(str(clip), "w") as dst:
        stream = dst.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = portrait.shape[1], portrait.shape[0], "yuv420p"
        stream.options = {"crf": "12"}
        for _ in range(12):
            noisy = np.clip(portrait + rng.normal(0.0, 3.0, portrait.shape), 0, 255).astype(np.uint8)
            for p in stream.encode(av.VideoFrame.from_ndarray(noisy, format="rgb24")):
                dst.mux(p)
        for p in stream.encode():
            dst.mux(p)
    out = tmp_path / "out.mp4"
    api.animate(hopper_path, clip, out, progress=False, relative=False, smooth=True)
    frames = read_frames(out)
    with FaceAnalyzer(static=True) as analyzer:
        points = analyzer.detect(frames[-1])[0].landmarks
    assert len(_inside(frames[-1], points)) > 30  # the mouth is open
    x0, y0 = np.floor(points[INNER, :2].min(0)).astype(int) - 4
    x1, y1 = np.ceil(points[INNER, :2].max(0)).astype(int) + 5
    boxes = [cv2.GaussianBlur(_luma(f[y0:y1, x0:x1]), (0, 0), 2.0) for f in frames[4:]]
    changes = [float(np.abs(a - b).mean()) for a, b in zip(boxes, boxes[1:])]
    assert max(changes) < 1.5, changes


def test_audio_driving_shows_teeth_at_loud_vowels(tmp_path, hopper_path):
    """Speech has no driver pixels: at the loudest vowels Hopper's open mouth shows drawn teeth (a quarter of the
    opening or more lit like teeth), where the old engine showed a dark hole."""
    wav = tmp_path / "vowels.wav"
    signal = vowels_and_silence(wav, seconds=3.0)
    out = tmp_path / "talk.mp4"
    api.animate(hopper_path, wav, out, progress=False)
    frames = read_frames(out)
    hop = 16000 // 25
    loudness = np.array([np.sqrt(np.mean(signal[i * hop : (i + 1) * hop] ** 2)) for i in range(len(frames))])
    loud = np.argsort(-loudness)[:4]
    with FaceAnalyzer(static=True) as analyzer:
        shares = [_teeth_share(frames[i], analyzer.detect(frames[i])[0].landmarks) for i in loud]
    assert min(shares) > 0.25, shares


def test_an_unknown_mouth_mode_is_one_clear_error():
    with pytest.raises(EnlivenError, match="--mouth must be one of auto, driver, synth, source"):
        engines.create("mesh", mouth="teeth")
