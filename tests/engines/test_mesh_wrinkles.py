"""The driver's wrinkles carried onto the rendered face (expression ratio images, ``engines/mesh/wrinkles.py``).

The driver is the bundled portrait (Eileen Collins, NASA, public domain); its "expression" frame is its reference
frame with three thin dark lines drawn across the forehead (folds), so what must be carried is known exactly.
The source is Grace Hopper (US Navy photo, public domain, shipped with matplotlib), rendered at rest.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from enliven import engines
from enliven.engines.mesh.mouth import DRIVER_CROP
from enliven.errors import EnlivenError
from enliven.face import landmarks as lm
from enliven.face.analyzer import FaceAnalyzer
from enliven.face.crop import face_crop
from enliven.io.images import read_image
from enliven.motion.frame import MotionFrame


def _luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def scene(portrait):
    """(Hopper's crop and landmarks, the driver's reference crop and landmarks, and its crop with folds)."""
    matplotlib = pytest.importorskip("matplotlib")
    hopper = read_image(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))
    with FaceAnalyzer(static=True) as analyzer:
        face = analyzer.detect(hopper)[0].landmarks
        driver = analyzer.detect(portrait)[0].landmarks
    crop = face_crop(face)
    box = DRIVER_CROP.crop(driver)
    reference, points = box.cut(portrait), box.to_crop(driver).astype(np.float32)
    # Three folds across the forehead, from just above the brows to most of the way up to the face's top.
    brows = points[list(lm.RIGHT_BROW + lm.LEFT_BROW), :2]
    top, left, right = brows[:, 1].min(), brows[:, 0].min(), brows[:, 0].max()
    height = top - points[10, 1]  # up to the face outline's top point
    folds = reference.copy()
    for k in (0.2, 0.45, 0.7):
        y = int(round(top - k * height))
        cv2.line(folds, (int(left + 10), y), (int(right - 10), y), (0, 0, 0), 2, cv2.LINE_AA)
    folds = cv2.addWeighted(reference, 0.6, folds, 0.4, 0.0)  # faint, as real folds are
    return (crop.cut(hopper), crop.to_crop(face)), (reference, points), folds


def _render(scene, strength: float, driver_crop: np.ndarray) -> np.ndarray:
    (crop, landmarks), (reference, points), _ = scene
    engine = engines.create("mesh", wrinkles=strength, mouth="source")
    state = engine.prepare(crop, landmarks)
    rest = MotionFrame.from_landmarks(landmarks)
    anchor = MotionFrame(rest.shape, rest.rotation, rest.scale, rest.translation, crop=reference,
                         crop_landmarks=points)
    frame = MotionFrame(rest.shape, rest.rotation, rest.scale, rest.translation, crop=driver_crop,
                        crop_landmarks=points, anchor=anchor)
    return engine.render(state, landmarks, frame)


def _forehead_and_cheeks(landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    brows = landmarks[list(lm.RIGHT_BROW + lm.LEFT_BROW), :2]
    top, left, right = brows[:, 1].min(), brows[:, 0].min(), brows[:, 0].max()
    height = top - landmarks[10, 1]
    forehead = np.zeros((size, size), bool)
    forehead[int(top - 0.85 * height) : int(top - 0.05 * height), int(left + 15) : int(right - 15)] = True
    cheeks = np.zeros((size, size), bool)
    for index in (50, 280):
        x, y = np.round(landmarks[index, :2]).astype(int)
        cheeks[y - 6 : y + 7, x - 6 : x + 7] = True
    return forehead, cheeks


def test_the_drivers_folds_crease_the_rendered_forehead(scene):
    """Folds drawn on the driver's forehead darken thin rows of the rendered forehead (three dips along a vertical
    line through it), leave the cheeks alone, and not at all with strength 0."""
    (crop, landmarks), _, folds = scene
    plain = _render(scene, 0.0, folds)
    creased = _render(scene, 1.0, folds)
    forehead, cheeks = _forehead_and_cheeks(landmarks, crop.shape[0])
    change = _luma(creased) - _luma(plain)
    assert np.abs(change[cheeks]).mean() < 1.0
    rows = np.nonzero(forehead.any(1))[0]
    cols = np.nonzero(forehead.any(0))[0]
    profile = change[rows][:, cols].mean(1)  # darkening along the forehead, top to bottom
    assert profile.min() < -4.0, profile.round(1)
    dips = [i for i in range(1, len(profile) - 1)
            if profile[i] < -2.0 and profile[i] <= profile[i - 1] and profile[i] <= profile[i + 1]]
    assert len(dips) >= 3, profile.round(1)


def test_a_driver_unchanged_from_its_reference_adds_nothing(scene):
    """The driver's frame equal to its reference but for camera noise (σ 4): no texture is carried."""
    _, (reference, _), _ = scene
    noisy = np.clip(reference + np.random.default_rng(5).normal(0.0, 4.0, reference.shape), 0, 255).astype(np.uint8)
    change = np.abs(_luma(_render(scene, 1.0, noisy)) - _luma(_render(scene, 0.0, noisy)))
    assert change.mean() < 0.3 and np.percentile(change, 99.9) < 6.0, (change.mean(), np.percentile(change, 99.9))


def test_the_strength_is_checked():
    with pytest.raises(EnlivenError, match="--wrinkles must be a number from 0 to 3"):
        engines.create("mesh", wrinkles=-1.0)
    with pytest.raises(EnlivenError, match="--wrinkles"):
        engines.create("mesh", wrinkles=float("nan"))
