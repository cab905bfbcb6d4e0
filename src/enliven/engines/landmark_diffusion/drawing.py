"""Follow-Your-Emoji's expression-aware landmark pictures, drawn exactly as its landmark guider saw them in training.

What is drawn (the release's ``media_pipe/draw_util.py``, mayuelala/FollowYourEmoji 8e42c5f):
on a black RGB canvas, one-pixel lines along the
MediaPipe eye and eyebrow contours and the inner lip contour (four five-edge polylines, each in its own
colour), then a 6×6 red square at each iris centre (points 468 and 473). The face contour is drawn in
black in the release, which on a black canvas is nothing, so we skip it; the nose, outer lips and iris
rings are not drawn. The colours are written straight into the RGB array.

Pixel rules, matching MediaPipe's ``drawing_utils`` that the release calls: a point's normalised position
(stored as float32, as in MediaPipe's protobuf) becomes pixel ``floor(x·W)`` clipped to ``W − 1``; a point
outside [0, 1] is dropped with every line that touches it; lines are OpenCV's 8-connected lines between
those pixels. Pupils sit at ``int(x)``, ``int(y)`` of the pixel position and cover rows ``y−3 … y+2`` and
columns ``x−3 … x+2``. One deliberate difference: where a pupil square crosses the picture's top or left
edge, the release's negative slice indices wrap around or draw nothing; we clip the square to the picture.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

PUPIL_COLOUR = (255, 0, 0)
PUPIL_HALF_WIDTH = 3
PUPIL_CENTRES = (473, 468)  # subject's left, then right iris centre, the release's order

# The inner lip contour as four polylines from the corners (78 right, 308 left) to the middles (14 lower,
# 13 upper), each with the release's colour. They are drawn in this order, so a shared end point takes the
# colour of the later polyline.
INNER_LIP_POLYLINES = (
    ((78, 95, 88, 178, 87, 14), (100, 100, 30)),
    ((14, 317, 402, 318, 324, 308), (100, 150, 50)),
    ((78, 191, 80, 81, 82, 13), (120, 100, 200)),
    ((13, 312, 311, 310, 415, 308), (150, 120, 100)),
)
LEFT_EYE_COLOUR = (180, 200, 10)
RIGHT_EYE_COLOUR = (10, 200, 180)
LEFT_BROW_COLOUR = (180, 220, 10)
RIGHT_BROW_COLOUR = (10, 220, 180)


@functools.cache
def edges() -> tuple[tuple[int, int, tuple[int, int, int]], ...]:
    """(start, end, RGB colour) of every drawn line, in drawing order.

    The eye and eyebrow edges are MediaPipe's own connection sets, in their direction (OpenCV's line
    between the same two pixels can differ by a pixel with the direction), iterated as MediaPipe's
    frozensets iterate; within a part all edges share one colour, so their order there does not matter.
    """
    from mediapipe.python.solutions import face_mesh_connections as mesh

    parts = (
        (mesh.FACEMESH_LEFT_EYE, LEFT_EYE_COLOUR),
        (mesh.FACEMESH_LEFT_EYEBROW, LEFT_BROW_COLOUR),
        (mesh.FACEMESH_RIGHT_EYE, RIGHT_EYE_COLOUR),
        (mesh.FACEMESH_RIGHT_EYEBROW, RIGHT_BROW_COLOUR),
    )
    drawn = [(a, b, colour) for connections, colour in parts for a, b in connections]
    for chain, colour in INNER_LIP_POLYLINES:
        drawn += [(a, b, colour) for a, b in zip(chain, chain[1:])]
    return tuple(drawn)


def _on_canvas(value: float) -> bool:
    # MediaPipe's test: inside [0, 1], with 0 and 1 themselves accepted (isclose's default tolerance)
    return (value > 0 or math.isclose(0, value)) and (value < 1 or math.isclose(1, value))


def line_pixels(points: np.ndarray, width: int, height: int) -> dict[int, tuple[int, int]]:
    """The pixel each drawn landmark's lines start or end at; landmarks outside the picture are absent."""
    used = {i for a, b, _ in edges() for i in (a, b)}
    normalised = (np.asarray(points, np.float64)[:, :2] / (width, height)).astype(np.float32)
    pixels = {}
    for i in used:
        x, y = float(normalised[i, 0]), float(normalised[i, 1])
        if _on_canvas(x) and _on_canvas(y):
            pixels[i] = (min(math.floor(x * width), width - 1), min(math.floor(y * height), height - 1))
    return pixels


def draw_landmarks(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Follow-Your-Emoji's landmark picture (height × width × 3 uint8 RGB) for 478 points in pixels (x, y[, z])."""
    points = np.asarray(points, np.float64)
    if points.shape[0] != 478:
        raise ValueError(f"need MediaPipe's 478 landmarks (with irises), got {points.shape[0]}")
    canvas = np.zeros((height, width, 3), np.uint8)
    pixels = line_pixels(points, width, height)
    for a, b, colour in edges():
        if a in pixels and b in pixels:
            cv2.line(canvas, pixels[a], pixels[b], colour, 1)
    for i in PUPIL_CENTRES:
        if not np.all(np.isfinite(points[i, :2])):
            continue
        x, y = int(points[i, 0]), int(points[i, 1])
        top, left = max(y - PUPIL_HALF_WIDTH, 0), max(x - PUPIL_HALF_WIDTH, 0)
        canvas[top:max(y + PUPIL_HALF_WIDTH, 0), left:max(x + PUPIL_HALF_WIDTH, 0)] = PUPIL_COLOUR
    return canvas
