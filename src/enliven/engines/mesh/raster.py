"""Triangle rasterisation into a backward sampling map (piecewise-affine warp), compiled with Numba.

For every grid point covered by a target triangle we find its barycentric coordinates and interpolate
the triangle's *source* vertex positions: that is where the output pixel samples the source image.
Triangles are drawn in order (a later one covers an earlier one). The loop over each triangle's bounding box
is compiled (Numba, cached on disk after the first run) and releases the GIL, so the render's worker threads
rasterise at once: about ten times the speed of the same arithmetic vectorised in NumPy, to the same bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_EDGE = 1e-6  # barycentric slack: a point this close outside a triangle's edge still counts as inside
_FLAT = 1e-12  # triangles with a smaller |determinant| (in grid units²) are degenerate and skipped


@njit(cache=True, nogil=True)
def _rasterise(tv, sv, map_x, map_y, labels, with_labels):  # pragma: no cover - compiled; tested through its caller
    h, w = map_x.shape
    for t in range(tv.shape[0]):
        ax, ay = tv[t, 0, 0], tv[t, 0, 1]
        e1x, e1y = tv[t, 1, 0] - ax, tv[t, 1, 1] - ay
        e2x, e2y = tv[t, 2, 0] - ax, tv[t, 2, 1] - ay
        det = e1x * e2y - e1y * e2x
        if abs(det) <= _FLAT:
            continue
        x0 = max(int(np.ceil(min(ax, tv[t, 1, 0], tv[t, 2, 0]))), 0)
        x1 = min(int(np.floor(max(ax, tv[t, 1, 0], tv[t, 2, 0]))), w - 1)
        y0 = max(int(np.ceil(min(ay, tv[t, 1, 1], tv[t, 2, 1]))), 0)
        y1 = min(int(np.floor(max(ay, tv[t, 1, 1], tv[t, 2, 1]))), h - 1)
        inv = 1.0 / det
        for py in range(y0, y1 + 1):
            dy = py - ay
            for px in range(x0, x1 + 1):
                dx = px - ax
                w1 = (dx * e2y - dy * e2x) * inv
                w2 = (dy * e1x - dx * e1y) * inv
                if w1 >= -_EDGE and w2 >= -_EDGE and w1 + w2 <= 1.0 + _EDGE:
                    w0 = 1.0 - w1 - w2
                    map_x[py, px] = w0 * sv[t, 0, 0] + w1 * sv[t, 1, 0] + w2 * sv[t, 2, 0]
                    map_y[py, px] = w0 * sv[t, 0, 1] + w1 * sv[t, 1, 1] + w2 * sv[t, 2, 1]
                    if with_labels:
                        labels[py, px] = t


_NO_LABELS = np.zeros((1, 1), np.int64)


def backward_map(
    target: np.ndarray,
    source: np.ndarray,
    triangles: np.ndarray,
    map_x: np.ndarray,
    map_y: np.ndarray,
    stride: int,
    labels: np.ndarray | None = None,
) -> None:
    """Fill ``map_x``/``map_y`` (grid of shape (G, G)) where target triangles cover the grid.

    Grid point (j, i) stands for the full-resolution pixel centre ``stride * (j, i) + (stride - 1) / 2``,
    which is what ``cv2.resize`` assumes when it upsamples the map by ``stride``. Points no triangle covers
    keep their values. ``labels``, if given (int64), receives the covering triangle's index (else untouched).
    """
    if map_x.shape != map_y.shape or (labels is not None and labels.shape != map_x.shape):
        raise ValueError("map_x, map_y and labels must have the same shape")
    if len(triangles) == 0:
        return
    offset = (stride - 1) / 2.0
    tv = np.ascontiguousarray((target[triangles, :2] - offset) / stride, dtype=np.float64)  # (F, 3, 2) grid units
    sv = np.ascontiguousarray(source[triangles, :2], dtype=np.float64)
    if labels is None:
        _rasterise(tv, sv, map_x, map_y, _NO_LABELS, False)
    else:
        _rasterise(tv, sv, map_x, map_y, labels, True)


def warm_up() -> None:
    """Compile (or load from Numba's on-disk cache) the rasteriser now: called while a render is being
    prepared, so the first frame does not wait for it."""
    grid = np.zeros((2, 2), np.float32)
    backward_map(np.zeros((3, 2)), np.zeros((3, 2)), np.array([[0, 1, 2]]), grid, grid.copy(), 1)
