"""The placement meter against pictures whose answer is known by construction: the portrait moved by a known
number of pixels, scaled by a known factor about its face, blacked out, or replaced by another person."""

from __future__ import annotations

import math
import os

import cv2
import numpy as np
import pytest

from enliven.errors import EnlivenError
from enliven.evaluation.placement import DlibFaces, Placement, PlacementMeter, summarize, verdicts
from enliven.io.images import read_image

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def dlib_faces() -> DlibFaces:
    return DlibFaces()


@pytest.fixture()
def meter(portrait, dlib_faces) -> PlacementMeter:
    return PlacementMeter(portrait, faces=dlib_faces)


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    matplotlib = pytest.importorskip("matplotlib")
    return read_image(os.path.join(matplotlib.get_data_path(), "sample_data/grace_hopper.jpg"))


def moved(image: np.ndarray, dx: float, dy: float, scale: float = 1.0, about=(0.0, 0.0)) -> np.ndarray:
    """``image`` scaled by ``scale`` about the point ``about`` and then moved by (dx, dy) pixels, same size."""
    cx, cy = about
    m = np.float32([[scale, 0, cx * (1 - scale) + dx], [0, scale, cy * (1 - scale) + dy]])
    return cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)


def test_the_unit_is_the_face_width(meter, portrait_face):
    # MediaPipe (another detector altogether) puts the bundled portrait's face at ~92 px from ear to ear.
    x0, _, x1, _ = portrait_face.box
    assert 0.8 < meter.reference.width / (x1 - x0) < 1.25


@pytest.mark.parametrize("dx, dy", [(30, 20), (-12, 7), (7.5, 5.25), (0, -13.3)])
def test_a_moved_portrait_is_found_shifted_by_exactly_that_distance(meter, portrait, dx, dy):
    sample = meter.measure(3, moved(portrait, dx, dy))
    assert sample.found and sample.frame == 3
    assert sample.shift * meter.reference.width == pytest.approx(math.hypot(dx, dy), abs=0.6)  # pixels
    assert sample.zoom == pytest.approx(1.0, abs=0.01)
    assert sample.identity < 0.15  # the same photo, resampled at most


@pytest.mark.parametrize("scale", [0.6, 0.75, 1.3])
def test_a_portrait_scaled_about_its_face_centre_reads_that_zoom_and_no_shift(meter, portrait, scale):
    # The centre of a scaling stays put, so a face scaled about its own centre has not moved.
    sample = meter.measure(0, moved(portrait, 0, 0, scale, meter.reference.centre))
    assert sample.found
    assert sample.zoom == pytest.approx(scale, rel=0.03)
    assert sample.shift < 0.01
    assert sample.identity < 0.2


def test_a_black_frame_is_a_failure_that_is_counted(meter, portrait):
    meter.measure(0, portrait)
    sample = meter.measure(5, np.zeros_like(portrait))
    assert not sample.found and math.isnan(sample.shift) and math.isnan(sample.identity)
    summary = meter.summary()
    assert summary["found_rate"] == 0.5 and summary["missing"] == 1 and summary["missing_frames"] == [5]
    assert summary["shift_max"] == 0.0  # the one found frame is the source itself
    assert not verdicts(summary)["found_rate"]


def test_a_face_far_from_where_it_was_is_not_in_place(meter, portrait):
    far = moved(portrait, 100, 0)  # over a face width to the right: the face is there, in the wrong place
    assert meter.faces.boxes(far)
    assert not meter.measure(0, far).found


def test_another_person_in_the_same_place_is_far_in_identity(meter, portrait, hopper, dlib_faces):
    # Grace Hopper's photo scaled and moved so her face lands where the portrait's is.
    theirs = PlacementMeter(hopper, faces=dlib_faces).reference
    ours = meter.reference
    k = ours.eye_span / theirs.eye_span
    m = np.float32([[k, 0, ours.centre[0] - k * theirs.centre[0]], [0, k, ours.centre[1] - k * theirs.centre[1]]])
    other = cv2.warpAffine(hopper, m, (portrait.shape[1], portrait.shape[0]), borderMode=cv2.BORDER_REPLICATE)
    stranger = meter.measure(0, other)
    same = meter.measure(1, moved(portrait, 7.5, 5.25))
    assert stranger.found and stranger.shift < 0.05
    assert stranger.identity > 0.6  # dlib's threshold between two people
    assert stranger.identity > 3 * same.identity


def test_summary_statistics_by_hand():
    # Shifts 0.00 … 0.10 (11 found frames) and one missing frame. By hand: the 90th percentile of 11 sorted
    # values, interpolated linearly, sits at position 0.9 × 10 = 9, which is 0.09.
    samples = [Placement(i, True, 0.01 * i, 1 + 0.02 * i, 0.1 + 0.02 * i) for i in range(11)]
    samples.append(Placement(11, False, math.nan, math.nan, math.nan))
    s = summarize(samples)
    assert s["sampled"] == 12 and s["missing"] == 1 and s["missing_frames"] == [11]
    assert s["found_rate"] == pytest.approx(11 / 12)
    assert s["shift_p90"] == pytest.approx(0.09) and s["shift_max"] == pytest.approx(0.10)
    assert s["zoom_min"] == pytest.approx(1.0) and s["zoom_max"] == pytest.approx(1.2)
    assert s["identity_mean"] == pytest.approx(0.2) and s["identity_max"] == pytest.approx(0.3)
    v = verdicts(s)
    assert v == {"found_rate": False, "shift_p90": True, "shift_max": True, "identity_mean": True, "identity_max": True}


def test_nothing_found_fails_every_target():
    s = summarize([Placement(0, False, math.nan, math.nan, math.nan)])
    assert s["found_rate"] == 0.0 and math.isnan(s["shift_max"])
    assert not any(verdicts(s).values())


def test_bad_input_is_one_clear_line(meter, portrait, dlib_faces):
    with pytest.raises(EnlivenError, match="finds no face in the source"):
        PlacementMeter(np.zeros_like(portrait), faces=dlib_faces)
    with pytest.raises(EnlivenError, match="compares like with like"):
        meter.measure(0, portrait[:100])
    with pytest.raises(EnlivenError, match="RGB uint8"):
        meter.measure(0, portrait.astype(np.float32))
