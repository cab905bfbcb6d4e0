"""The mesh engine: exact piecewise-affine maps, stillness outside the mask, motion measured back."""

from __future__ import annotations

import numpy as np
import pytest

from enliven import engines
from enliven.engines.mesh.raster import backward_map
from enliven.errors import EnlivenError
from enliven.face import landmarks as lm
from enliven.face.analyzer import FaceAnalyzer
from enliven.motion import edits
from enliven.motion.frame import MotionFrame


def test_registry():
    assert "mesh" in engines.available()
    with pytest.raises(EnlivenError, match="unknown engine"):
        engines.create("nope")


def test_backward_map_inverts_an_affine_motion_exactly():
    rng = np.random.default_rng(0)
    src = rng.uniform(10, 90, (30, 2))
    from scipy.spatial import Delaunay

    tris = Delaunay(src).simplices
    a = np.array([[1.1, 0.2], [-0.1, 0.9]])
    b = np.array([3.0, -2.0])
    tgt = src @ a.T + b
    gx, gy = np.meshgrid(np.arange(100.0), np.arange(100.0))
    mx, my = gx.copy(), gy.copy()
    labels = np.full((100, 100), -1)
    backward_map(tgt, src, tris, mx, my, stride=1, labels=labels)
    covered = labels >= 0
    assert covered.sum() > 2000
    inv = np.linalg.inv(a)
    expect = (np.stack([gx, gy], -1) - b) @ inv.T
    np.testing.assert_allclose(mx[covered], expect[covered][:, 0], atol=1e-9)
    np.testing.assert_allclose(my[covered], expect[covered][:, 1], atol=1e-9)
    assert np.array_equal(mx[~covered], gx[~covered])  # untouched where no triangle lands


def test_backward_map_matches_a_per_pixel_reference_with_later_triangles_on_top():
    """The compiled rasteriser against a slow reference written differently: for each grid point, the last
    triangle (in drawing order) that contains its pixel centre, found by solving for the barycentric coordinates
    with np.linalg.solve, and that triangle's source vertices mixed by them. Random overlapping triangles, a
    stride of 2 (grid point (j, i) is pixel centre 2 * (j, i) + 0.5), some partly off the grid."""
    rng = np.random.default_rng(7)
    tgt = rng.uniform(-6, 46, (60, 2))
    src = rng.uniform(0, 40, (60, 2))
    tris = np.array([rng.choice(60, 3, replace=False) for _ in range(40)])
    size, stride = 20, 2
    mx = np.full((size, size), -1.0, np.float32)
    my = mx.copy()
    labels = np.full((size, size), -1, np.int64)
    backward_map(tgt, src, tris, mx, my, stride, labels=labels)
    want_x, want_y, want_t = mx * 0 - 1, my * 0 - 1, labels * 0 - 1
    for j in range(size):
        for i in range(size):
            centre = np.array([stride * i + 0.5, stride * j + 0.5])
            for t, (a, b, c) in enumerate(tris):
                system = np.array([[tgt[a, 0], tgt[b, 0], tgt[c, 0]], [tgt[a, 1], tgt[b, 1], tgt[c, 1]], [1, 1, 1]])
                if abs(np.linalg.det(system)) < 1e-9:
                    continue
                w = np.linalg.solve(system, [*centre, 1.0])
                if (w >= 1e-9).all():  # strictly inside (points on an edge may go either way)
                    want_x[j, i], want_y[j, i], want_t[j, i] = w @ src[[a, b, c], 0], w @ src[[a, b, c], 1], t
    sure = want_t >= 0
    assert sure.sum() > 150  # most of the grid is covered, by several triangles in places
    assert np.array_equal(labels[sure], want_t[sure])
    np.testing.assert_allclose(mx[sure], want_x[sure], atol=1e-3)
    np.testing.assert_allclose(my[sure], want_y[sure], atol=1e-3)
    assert (mx[labels < 0] == -1).all()  # untouched where no triangle lands


def test_backward_map_on_a_window_of_the_map_is_that_window_of_the_whole_map():
    """With ``origin`` the rasteriser fills a window (a view) of a larger map, as the warp redraws its eyes and lips:
    the same values, bit for bit, as that window of the whole map, triangles reaching past it or missing it
    altogether included; and nothing outside the window is touched."""
    rng = np.random.default_rng(11)
    tgt, src = rng.uniform(-10, 70, (50, 2)), rng.uniform(0, 60, (50, 2))
    tris = np.array([rng.choice(50, 3, replace=False) for _ in range(60)])
    whole_x, whole_y = np.full((60, 60), -1.0, np.float32), np.full((60, 60), -1.0, np.float32)
    whole_t = np.full((60, 60), -1, np.int64)
    backward_map(tgt, src, tris, whole_x, whole_y, 1, labels=whole_t)
    x0, y0, x1, y1 = 13, 21, 37, 40
    part_x, part_y = np.full((60, 60), -1.0, np.float32), np.full((60, 60), -1.0, np.float32)
    part_t = np.full((60, 60), -1, np.int64)
    window = (slice(y0, y1), slice(x0, x1))
    backward_map(tgt, src, tris, part_x[window], part_y[window], 1, labels=part_t[window], origin=(x0, y0))
    assert (whole_t[window] >= 0).mean() > 0.5
    for part, whole in ((part_x, whole_x), (part_y, whole_y), (part_t, whole_t)):
        assert np.array_equal(part[window], whole[window])
        outside = np.ones(part.shape, bool)
        outside[window] = False
        assert (part[outside] == -1).all()


def test_line_cover_is_full_on_the_line_and_ramps_to_nothing_one_pixel_beyond():
    """The compiled lash-line cover against a reference written differently (scipy's KD-tree for the nearest curve
    point, in a loop over pixels): 1 within half[k] of the nearest point k, falling by one per pixel beyond."""
    from scipy.spatial import cKDTree

    from enliven.engines.mesh.raster import line_cover

    t = np.linspace(0.0, 1.0, 48)
    curve = np.stack([20 + 60 * t, 30 + 8 * np.sin(np.pi * t)], 1)
    half = 2.0 * (0.3 + 0.7 * np.sin(np.pi * t))
    window = (15, 22, 72, 24)
    cover = line_cover(window, curve, half)
    tree = cKDTree(curve)
    for i in range(window[3]):
        for j in range(window[2]):
            d, k = tree.query([window[0] + j, window[1] + i])
            assert cover[i, j] == pytest.approx(min(max(half[k] + 0.5 - d, 0.0), 1.0), abs=1e-12)
    assert cover.max() == 1.0 and cover.min() == 0.0 and ((cover > 0) & (cover < 1)).any()


def test_identity_target_reproduces_the_crop(prepared):
    engine, state, landmarks = prepared
    out = engine.render(state, landmarks)
    assert np.array_equal(out, state.crop_image)


def test_all_changes_stay_inside_the_paste_mask(prepared):
    engine, state, landmarks = prepared
    source = MotionFrame.from_landmarks(landmarks)
    shape = edits.set_lip_open(source.shape.astype(float), 0.45)
    target = MotionFrame(shape.astype(np.float32), source.rotation, source.scale, source.translation).landmarks()
    target[:, 0] += 6  # and a sideways head shift
    out = engine.render(state, target)
    changed = np.abs(out.astype(int) - state.crop_image).max(2) > 0
    assert changed.sum() > 5000
    assert not changed[state.paste_mask == 0].any()


def test_rendered_motion_is_measured_back(prepared):
    engine, state, landmarks = prepared
    target = landmarks.copy()
    target[:, :2] += (8.0, -5.0)  # move the whole face; the rings absorb it
    out = engine.render(state, target)
    with FaceAnalyzer(static=True) as analyzer:
        found = analyzer.detect(out)[0].landmarks
    inner = list(range(468))
    shift = (found[inner, :2] - landmarks[inner, :2]).mean(0)
    np.testing.assert_allclose(shift, (8.0, -5.0), atol=1.5)


def test_an_opening_mouth_shows_a_dark_cavity_and_keeps_the_teeth(prepared):
    engine, state, landmarks = prepared
    source = MotionFrame.from_landmarks(landmarks)
    wide = MotionFrame(edits.set_lip_open(source.shape.astype(float), 0.5).astype(np.float32),
                       source.rotation, source.scale, source.translation).landmarks()
    out = engine.render(state, wide)
    import cv2

    loop = wide[[78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95], :2]
    hole = np.zeros(out.shape[:2], np.uint8)
    cv2.fillPoly(hole, [np.round(loop).astype(np.int32)], 1)
    inside = out[hole.astype(bool)].astype(float)
    dark = inside.mean(1) < 80
    assert dark.mean() > 0.3  # a good part of the new opening is cavity
    bright = inside.mean(1) > 170  # and the source's teeth are still there
    assert bright.mean() > 0.05


def _eye_openings(points, size):
    import cv2

    mask = np.zeros((size, size), np.uint8)
    for upper, lower in ((lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER), (lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER)):
        loop = points[list(upper) + list(lower[::-1][1:-1]), :2]
        cv2.fillPoly(mask, [np.round(loop * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    return cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(bool)  # and their rim pixels


@pytest.mark.parametrize("push", [(-0.8, 0.0), (0.8, 0.0), (0.0, -0.5), (0.6, 0.6), (0.1, 0.0)])
def test_irises_move_only_inside_the_eye_openings(prepared, push):
    """However far the iris landmarks are pushed (here up to 0.8 eye widths), the iris is drawn inside the
    eye opening: only pixels in the openings change, and they do change."""
    engine, state, landmarks = prepared
    still = engine.render(state, landmarks)
    target = landmarks.copy()
    width = np.linalg.norm(landmarks[133, :2] - landmarks[33, :2])
    target[list(lm.RIGHT_IRIS + lm.LEFT_IRIS), :2] += np.array(push) * width
    changed = np.any(engine.render(state, target) != still, axis=2)
    assert changed.sum() > 20
    assert not changed[~_eye_openings(target, still.shape[0])].any()


@pytest.mark.parametrize("motion", ["still", "shifted", "grown", "turned"])
def test_beyond_its_moved_window_the_warp_is_the_identity_to_the_bit(prepared, motion):
    """Only the window the warp says moved is resampled; the rest of the crop is copied as it is. That is only the
    same picture if, beyond the window, the map is the pixel grid itself, bit for bit, whatever the motion (a face
    pushed past its rings is pulled back first, and the upsampled map reaches a little past the triangles)."""
    engine, state, landmarks = prepared
    target = landmarks.copy()
    centre = landmarks[:, :2].mean(0)
    if motion == "shifted":
        target[:, :2] += (70.0, -50.0)
    elif motion == "grown":
        target[:, :2] = centre + 1.5 * (target[:, :2] - centre)
    elif motion == "turned":
        c, s = np.cos(np.radians(35.0)), np.sin(np.radians(35.0))
        target[:, :2] = centre + (target[:, :2] - centre) @ np.array([[c, s], [-s, c]])
    map_x, map_y, (x0, y0, x1, y1) = engine.sampling_map(state, engine.renderable_target(state, target))
    size = map_x.shape[0]
    beyond = np.ones((size, size), bool)
    beyond[y0:y1, x0:x1] = False
    assert beyond.mean() > 0.15  # the window spares real work on this portrait's crop
    ys, xs = np.mgrid[:size, :size].astype(np.float32)
    assert np.array_equal(map_x[beyond], xs[beyond]) and np.array_equal(map_y[beyond], ys[beyond])
    if motion != "still":  # and the window is no wider than it must be: the motion reaches near its edge
        rim = ~beyond
        rim[y0 + 6:y1 - 6, x0 + 6:x1 - 6] = False
        assert (np.hypot(map_x - xs, map_y - ys)[rim] > 0).any()
