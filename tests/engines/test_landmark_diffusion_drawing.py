"""Follow-Your-Emoji's landmark pictures, pixel for pixel, and its motion alignment on our landmark model.

The expected pictures come from the release's palette (media_pipe/draw_util.py, mayuelala/FollowYourEmoji)
drawn by hand with
numpy on a fixture whose lines are all horizontal or vertical, and from MediaPipe's own ``draw_landmarks``
(the function the release calls) with the documented drawing spec.
"""

from __future__ import annotations

import numpy as np
import pytest
from mediapipe.python.solutions import face_mesh_connections as mesh

from enliven.engines.landmark_diffusion.alignment import align_frame, place_irises
from enliven.engines.landmark_diffusion.drawing import draw_landmarks
from enliven.face import geometry
from enliven.motion.frame import MotionFrame

# The documented palette (RGB): part → colour.
LEFT_EYE, RIGHT_EYE = (180, 200, 10), (10, 200, 180)
LEFT_BROW, RIGHT_BROW = (180, 220, 10), (10, 220, 180)
LIPS = {  # inner lips, four polylines, in drawing order
    (78, 95, 88, 178, 87, 14): (100, 100, 30),
    (14, 317, 402, 318, 324, 308): (100, 150, 50),
    (78, 191, 80, 81, 82, 13): (120, 100, 200),
    (13, 312, 311, 310, 415, 308): (150, 120, 100),
}
RED = (255, 0, 0)
W, H = 200, 160  # not square: the width must be read as the width


def _points_on_row(points, edges, row, x0, x1, rng):
    ids = sorted({i for e in edges for i in e})
    xs = np.sort(rng.uniform(x0, x1, len(ids)))
    for i, x in zip(ids, xs):
        points[i, :2] = x, row + 0.4


def _fixture(rng):
    """478 points: eyes and brows each on one row, the inner lips on the sides of a rectangle, pupils at
    known spots, every other point (face oval, nose, iris rings...) scattered where nothing must appear."""
    points = np.column_stack([rng.uniform(0, W, 478), rng.uniform(0, H, 478), rng.uniform(-5, 5, 478)])
    _points_on_row(points, mesh.FACEMESH_RIGHT_EYEBROW, 15, 20.2, 60.9, rng)
    _points_on_row(points, mesh.FACEMESH_RIGHT_EYE, 30, 20.2, 60.9, rng)
    _points_on_row(points, mesh.FACEMESH_LEFT_EYEBROW, 15, 110.5, 150.5, rng)
    _points_on_row(points, mesh.FACEMESH_LEFT_EYE, 30, 110.5, 150.5, rng)
    # lips: 78 left corner (70, 110), 308 right corner (130, 110); the lower lip runs along row 125 and the
    # upper along row 95, joined to the corners by vertical lines
    points[[78, 95, 191], :2] = [[70.3, 110.2], [70.9, 125.5], [70.1, 95.7]]
    points[[308, 324, 415], :2] = [[130.6, 110.9], [130.2, 125.1], [130.8, 95.3]]
    points[[88, 178, 87, 14, 317, 402, 318], 0] = [75.5, 80.5, 90.5, 100.5, 110.5, 120.5, 125.5]
    points[[88, 178, 87, 14, 317, 402, 318], 1] = 125.9
    points[[80, 81, 82, 13, 312, 311, 310], 0] = [72.5, 85.5, 95.5, 100.5, 105.5, 115.5, 128.5]
    points[[80, 81, 82, 13, 312, 311, 310], 1] = 95.0
    points[468, :2] = 40.7, 60.2  # right pupil → int (40, 60)
    points[473, :2] = 130.9, 60.99  # left pupil → int (130, 60)
    return points


def _hand_drawn(points, dropped=()):
    """The expected picture: each edge is horizontal or vertical, so its pixels are an interval. Edges touching
    a ``dropped`` point are left out; pupils are cut at the picture's edges."""
    canvas = np.zeros((H, W, 3), np.uint8)
    px = np.floor(points[:, :2]).astype(int)

    def line(a, b, colour):
        if a in dropped or b in dropped:
            return
        (xa, ya), (xb, yb) = px[a], px[b]
        assert xa == xb or ya == yb, "fixture lines are axis-aligned"
        canvas[min(ya, yb):max(ya, yb) + 1, min(xa, xb):max(xa, xb) + 1] = colour

    for edges, colour in ((mesh.FACEMESH_LEFT_EYE, LEFT_EYE), (mesh.FACEMESH_LEFT_EYEBROW, LEFT_BROW),
                          (mesh.FACEMESH_RIGHT_EYE, RIGHT_EYE), (mesh.FACEMESH_RIGHT_EYEBROW, RIGHT_BROW)):
        for a, b in edges:
            line(a, b, colour)
    for chain, colour in LIPS.items():
        for a, b in zip(chain, chain[1:]):
            line(a, b, colour)
    for i in (473, 468):
        x, y = int(points[i, 0]), int(points[i, 1])
        canvas[max(y - 3, 0):y + 3, max(x - 3, 0):x + 3] = RED
    return canvas


def test_landmark_picture_matches_the_documented_palette_pixel_for_pixel():
    points = _fixture(np.random.default_rng(0))
    got = draw_landmarks(points, W, H)
    want = _hand_drawn(points)
    assert got.shape == (H, W, 3) and got.dtype == np.uint8
    diff = np.argwhere(np.any(got != want, axis=2))
    assert len(diff) == 0, f"{len(diff)} pixels differ, first {diff[:5].tolist()}"
    # what the fixture pins down: every colour present, shared lip corners take the later polyline's colour
    colours = {tuple(c) for c in got.reshape(-1, 3)}
    assert colours == {(0, 0, 0), LEFT_EYE, RIGHT_EYE, LEFT_BROW, RIGHT_BROW, RED, *LIPS.values()}
    assert tuple(got[110, 70]) == (120, 100, 200) and tuple(got[110, 130]) == (150, 120, 100)
    assert tuple(got[125, 100]) == (100, 150, 50) and tuple(got[95, 100]) == (150, 120, 100)
    assert (np.all(got == RED, axis=2)).sum() == 2 * 36  # two 6×6 pupils
    assert tuple(got[57, 37]) == RED and tuple(got[62, 42]) == RED and tuple(got[63, 42]) == (0, 0, 0)


def test_points_outside_the_picture_drop_their_lines_and_pupils_clip():
    points = _fixture(np.random.default_rng(1))
    points[276, 0] = -3.0  # the left brow's outer end leaves the picture: its one edge (276, 283) goes
    points[468, :2] = 1.2, 1.9  # a pupil in the corner is cut by the picture's edge, not wrapped around
    got = draw_landmarks(points, W, H)
    np.testing.assert_array_equal(got, _hand_drawn(points, dropped={276}))
    assert np.all(got[0:4, 0:4] == RED) and np.all(got[4, 0:4] == 0)  # a 4×4 corner of the pupil, no wrap
    assert not np.any(np.all(got[H - 3:, :] == RED, axis=2)) and not np.any(np.all(got[:, W - 3:] == RED, axis=2))
    inside = points.copy()
    inside[276, 0] = 105.0
    assert np.any(draw_landmarks(inside, W, H) != got)  # the dropped edge is really gone


def _mediapipe_reference(points, width, height):
    """The release's way: MediaPipe's draw_landmarks with the documented spec (black face oval first), then
    the pupils as numpy squares."""
    from mediapipe.framework.formats import landmark_pb2
    from mediapipe.python.solutions import drawing_utils
    from mediapipe.python.solutions.drawing_styles import DrawingSpec

    oval = [(176, 149), (150, 136), (356, 454), (58, 132), (152, 148), (361, 288), (251, 389), (132, 93),
            (389, 356), (400, 377), (136, 172), (377, 152), (323, 361), (172, 58), (454, 323), (365, 379),
            (379, 378), (148, 176), (93, 234), (397, 365), (149, 150), (288, 397), (234, 127), (378, 400),
            (127, 162), (162, 21)]
    spec = {e: DrawingSpec(color=(0, 0, 0), thickness=1) for e in oval}
    for edges, colour in ((mesh.FACEMESH_LEFT_EYE, LEFT_EYE), (mesh.FACEMESH_LEFT_EYEBROW, LEFT_BROW),
                          (mesh.FACEMESH_RIGHT_EYE, RIGHT_EYE), (mesh.FACEMESH_RIGHT_EYEBROW, RIGHT_BROW)):
        spec.update({e: DrawingSpec(color=colour, thickness=1) for e in edges})
    for chain, colour in LIPS.items():
        spec.update({e: DrawingSpec(color=colour, thickness=1) for e in zip(chain, chain[1:])})
    landmarks = landmark_pb2.NormalizedLandmarkList()
    for x, y in points[:, :2]:
        lmk = landmarks.landmark.add()
        lmk.x, lmk.y, lmk.z = x / width, y / height, 1.0
    image = np.zeros((height, width, 3), np.uint8)
    drawing_utils.draw_landmarks(image=image, landmark_list=landmarks, connections=spec.keys(),
                                 landmark_drawing_spec=None, connection_drawing_spec=spec)
    for i in (473, 468):
        x, y = int(points[i, 0]), int(points[i, 1])
        image[y - 3:y + 3, x - 3:x + 3] = RED
    return image


@pytest.mark.parametrize("yaw,pitch,roll", [(0, 0, 0), (25, -10, 8), (-35, 15, -20)])
def test_landmark_picture_equals_mediapipes_drawing_with_the_documented_spec(yaw, pitch, roll):
    face = geometry.face_model().canonical
    pose = geometry.Pose(geometry.rotation_from_angles(yaw, pitch, roll), 150.0, np.array([256.3, 240.7, 0.0]))
    points = geometry.from_canonical(face, pose)
    got = draw_landmarks(points, 512, 512)
    want = _mediapipe_reference(points, 512, 512)
    np.testing.assert_array_equal(got, want)
    assert np.count_nonzero(got.any(axis=2)) > 300  # a real face was drawn, not an empty picture


def test_place_irises_keeps_the_iris_where_it_sits_in_the_eye_box():
    target = np.zeros((478, 3))
    driver = np.zeros((478, 3))
    from enliven.engines.landmark_diffusion.alignment import LEFT_EYE_BOX, LEFT_IRIS, RIGHT_EYE_BOX, RIGHT_IRIS

    driver[list(RIGHT_EYE_BOX), :2] = [[10, 5]] + [[15, 6]] * 14 + [[20, 9]]  # box x 10..20, y 5..9
    target[list(RIGHT_EYE_BOX), :2] = [[100, 50]] + [[110, 55]] * 14 + [[140, 70]]  # box x 100..140, y 50..70
    driver[list(RIGHT_IRIS), :2] = [12.5, 6]  # a quarter across, a quarter down
    driver[list(LEFT_EYE_BOX), :2] = [[1, 1]] * 16  # a degenerate box (shut eye seen as one point)
    target[list(LEFT_EYE_BOX), :2] = [[200, 50]] * 15 + [[220, 60]]
    target[:, 2] = 7.0
    out = place_irises(target, driver)
    np.testing.assert_allclose(out[list(RIGHT_IRIS), :2], [[110, 55]] * 5)
    np.testing.assert_allclose(out[list(LEFT_IRIS), :2], [[210, 55]] * 5)  # middle of the box, not NaN
    np.testing.assert_array_equal(out[:, 2], 7.0)  # depth untouched
    np.testing.assert_array_equal(out[:468], target[:468])


def _frame(yaw, scale, t, mouth=0.0):
    shape = geometry.face_model().canonical.copy()
    shape[[14, 17, 87, 317], 1] += mouth  # lower lip down: an expression
    pose = geometry.Pose(geometry.rotation_from_angles(yaw, 0, 0), scale, np.array(t, float))
    return MotionFrame.from_landmarks(geometry.from_canonical(shape, pose))


def test_align_frame_retargets_expression_keeps_driver_rotation_and_relative_translation():
    source = _frame(5, 200.0, [256, 250, 0])
    first = _frame(-10, 100.0, [300, 200, 0])
    neutral = first
    # the driver turned, moved 20 px right in its own picture, came 10 % closer and opened its mouth
    driver = _frame(20, 110.0, [320, 200, 0], mouth=0.08)
    out = align_frame(source, driver, neutral, first)
    pose = geometry.fit_pose(out)
    assert abs(pose.angles()[0] - 20) < 0.5  # the driver's yaw, not the source's
    assert abs(pose.scale / source.scale - 1.1) < 0.01
    # 20 driver pixels at the source's size (200 / 100 per unit) = 40 source pixels to the right
    np.testing.assert_allclose(pose.translation[:2] - source.translation[:2], [40, 0], atol=1.0)
    # the driver's expression (mouth opened by 0.08 units) appears on the source's own face shape
    shape = geometry.to_canonical(out, pose)
    opened = shape[14, 1] - shape[13, 1]
    source_opened = source.shape[14, 1] - source.shape[13, 1]
    assert abs(opened - source_opened - 0.08) < 0.01


def test_align_frame_with_the_driver_at_rest_gives_the_source():
    source = _frame(3, 180.0, [250, 260, 0])
    first = _frame(-10, 90.0, [300, 200, 0])
    source_only_rotation = MotionFrame(source.shape, first.rotation, source.scale, source.translation)
    out = align_frame(source_only_rotation, first, first, first)
    np.testing.assert_allclose(out, source_only_rotation.landmarks(), atol=1e-6)
