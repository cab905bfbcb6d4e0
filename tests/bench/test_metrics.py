"""Benchmark metrics on cases with known answers."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import skimage.data
from skimage.metrics import structural_similarity

from enliven.bench import metrics as M


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


def test_known_differences(photo):
    brighter = np.clip(photo.astype(int) + 10, 0, 255).astype(np.uint8)
    diff = (brighter.astype(float) - photo).mean()
    assert M.l1(photo, brighter) == pytest.approx(diff / 255)
    mse = ((brighter.astype(float) - photo) ** 2).mean()
    assert M.psnr(photo, brighter) == pytest.approx(10 * np.log10(255**2 / mse))


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
    from enliven.bench.identity import IdentityEmbedder
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
            im = cv2.resize((np.stack([face] * 3, -1) * 255).astype(np.uint8), (256, 256), interpolation=cv2.INTER_CUBIC)
            found = analyzer.detect(im)
            if found:
                others.append(M.cosine(ref, embed(im, found[0].landmarks)))
    assert min(same) > 0.97
    assert len(others) >= 5 and max(others) < 0.93 and np.mean(others) < min(same) - 0.1
