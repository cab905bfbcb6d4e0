"""Benchmark metrics on cases with known answers."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import skimage.data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from enliven.evaluation import metrics as M


@pytest.fixture(scope="module")
def photo():
    return skimage.data.astronaut()


def test_identical_pictures(photo):
    assert M.l1(photo, photo) == 0.0
    assert M.ssim(photo, photo) == pytest.approx(1.0)
    assert math.isinf(M.psnr(photo, photo))
    assert math.isinf(M.finite_mean([math.inf, math.inf]))
    assert M.finite_mean([math.inf, 30.0, 40.0]) == 35.0
    assert math.isnan(M.finite_mean([]))


def test_l1_and_psnr_on_tiny_pictures_worked_by_hand():
    a = np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)  # one black and one white pixel
    b = np.array([[[51, 0, 0], [255, 255, 0]]], np.uint8)
    # |0-51| + |255-0| = 306 over 6 samples = 51 = 0.2 of the range (0 - 51 taken in uint8 would wrap to 205)
    assert M.l1(a, b) == pytest.approx(0.2)
    assert M.l1(b, a) == pytest.approx(0.2)
    # squared errors 51² + 255² = 67626 over 6 samples = 11271; 10·log10(65025 / 11271) = 10·log10(5.7692) = 7.6112 dB
    assert M.psnr(a, b) == pytest.approx(7.6112, abs=1e-4)
    black, one_white = np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8)
    one_white[0, 0] = 255
    # a quarter of the samples off by the full range: L1 0.25, MSE 255²/4, PSNR 10·log10(4) = 6.0206 dB
    assert M.l1(black, one_white) == pytest.approx(0.25)
    assert M.psnr(black, one_white) == pytest.approx(6.0206, abs=1e-4)


def test_psnr_matches_scikit_image(photo):
    rng = np.random.default_rng(0)
    brighter = np.clip(photo.astype(int) + 10, 0, 255).astype(np.uint8)  # clipped where the photo is near white
    noisy = np.clip(photo + rng.normal(0, 8, photo.shape), 0, 255).astype(np.uint8)
    for other in (brighter, noisy, photo[::-1].copy()):
        assert M.psnr(photo, other) == pytest.approx(peak_signal_noise_ratio(photo, other, data_range=255), abs=1e-9)


def test_ssim_matches_scikit_image_and_ranks_blur_lower(photo):
    blurred = cv2.GaussianBlur(photo, (0, 0), 2)
    ours = M.ssim(photo, blurred)
    theirs = structural_similarity(
        photo, blurred, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ours == pytest.approx(theirs, abs=1e-6)
    assert ours < M.ssim(photo, photo)
    assert M.ssim(photo, cv2.GaussianBlur(photo, (0, 0), 4)) < ours


def test_landmark_distance_of_a_known_shift(portrait_face):
    truth = portrait_face.landmarks.astype(float)
    iod = M.interocular(truth)
    shifted = truth.copy()
    shifted[:, 0] += 0.1 * iod
    shifted[:, 1] -= 0.05 * iod
    assert M.landmark_distance(shifted, truth) == pytest.approx(np.hypot(0.1, 0.05), rel=1e-6)


def test_jitter_meter_measures_acceleration(portrait_face):
    base = portrait_face.landmarks.astype(float)
    iod = M.interocular(base)
    still, shaking = M.JitterMeter(), M.JitterMeter()
    for i in range(10):
        still.add(base + 3.0 * i * np.array([1.0, 0.0, 0.0]))  # steady drift: no acceleration
        shaking.add(base + (0.02 * iod if i % 2 else 0.0))  # ±0.02 iod every frame
    assert still.value == pytest.approx(0.0, abs=1e-9)
    assert shaking.value == pytest.approx(2 * 0.02 * np.sqrt(2), rel=1e-6)  # |a - 2*0 + a| = 2a on x and on y


def test_identity_is_high_for_the_same_face_and_lower_for_others(portrait, portrait_face):
    from enliven.evaluation.identity import IdentityEmbedder
    from enliven.face.analyzer import FaceAnalyzer

    embed = IdentityEmbedder().embed
    ref = embed(portrait, portrait_face.landmarks)
    with FaceAnalyzer(static=True) as analyzer:
        same = []
        for variant in (portrait[:, ::-1].copy(), np.roll(portrait, (20, 30), (0, 1))):
            same.append(M.cosine(ref, embed(variant, analyzer.detect(variant)[0].landmarks)))
        others = []
        lfw = skimage.data.lfw_subset()  # 25x25 grey faces of other people (Labeled Faces in the Wild)
        for face in lfw[::20]:
            im = cv2.resize((np.stack([face] * 3, -1) * 255).astype(np.uint8), (256, 256),
                            interpolation=cv2.INTER_CUBIC)
            found = analyzer.detect(im)
            if found:
                others.append(M.cosine(ref, embed(im, found[0].landmarks)))
    assert min(same) > 0.97
    assert len(others) >= 5 and max(others) < 0.93 and np.mean(others) < min(same) - 0.1
