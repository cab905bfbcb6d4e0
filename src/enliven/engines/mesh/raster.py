"""Vectorised triangle rasterisation into a backward sampling map (piecewise-affine warp).

For every grid point covered by a target triangle we find its barycentric coordinates and interpolate
the triangle's *source* vertex positions: that is where the output pixel samples the source image.
All triangles are processed at once with NumPy (no Python loop over triangles).
"""

from __future__ import annotations

import numpy as np


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
    keep their values. ``labels``, if given, receives the covering triangle's index (else untouched).
    """
    grid = map_x.shape
    offset = (stride - 1) / 2.0
    tv = (target[triangles, :2] - offset) / stride  # (F, 3, 2) in grid units
    sv = source[triangles, :2]
    lo = np.ceil(tv.min(1)).astype(np.int64)
    hi = np.floor(tv.max(1)).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi[:, 0] = np.minimum(hi[:, 0], grid[1] - 1)
    hi[:, 1] = np.minimum(hi[:, 1], grid[0] - 1)
    nx = np.maximum(hi[:, 0] - lo[:, 0] + 1, 0)
    ny = np.maximum(hi[:, 1] - lo[:, 1] + 1, 0)
    count = nx * ny
    a = tv[:, 0]
    e1, e2 = tv[:, 1] - a, tv[:, 2] - a
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    usable = (count > 0) & (np.abs(det) > 1e-12)
    if not usable.any():
        return
    tri = np.repeat(np.nonzero(usable)[0], count[usable])
    starts = np.repeat(np.cumsum(count[usable]) - count[usable], count[usable])
    local = np.arange(len(tri)) - starts
    px = lo[tri, 0] + local % nx[tri]
    py = lo[tri, 1] + local // nx[tri]
    dx = px - a[tri, 0]
    dy = py - a[tri, 1]
    inv = 1.0 / det[tri]
    w1 = (dx * e2[tri, 1] - dy * e2[tri, 0]) * inv
    w2 = (dy * e1[tri, 0] - dx * e1[tri, 1]) * inv
    eps = 1e-6
    inside = (w1 >= -eps) & (w2 >= -eps) & (w1 + w2 <= 1 + eps)
    tri, px, py, w1, w2 = tri[inside], px[inside], py[inside], w1[inside], w2[inside]
    w0 = 1.0 - w1 - w2
    s = sv[tri]
    map_x[py, px] = w0 * s[:, 0, 0] + w1 * s[:, 1, 0] + w2 * s[:, 2, 0]
    map_y[py, px] = w0 * s[:, 0, 1] + w1 * s[:, 1, 1] + w2 * s[:, 2, 1]
    if labels is not None:
        labels[py, px] = tri
