"""Triangle rasterisation into a backward sampling map (piecewise-affine warp), and the point-in-polygon test,
compiled with Numba.

For every grid point covered by a target triangle we find its barycentric coordinates and interpolate
the triangle's *source* vertex positions: that is where the output pixel samples the source image.
Triangles are drawn in order (a later one covers an earlier one). The loop over each triangle's bounding box
is compiled (Numba, cached on disk after the first run) and releases the GIL while it runs (other threads go on
meanwhile): about ten times the speed of the same arithmetic vectorised in NumPy, to the same bits.
"""

from __future__ import annotations

import functools

import numpy as np

from enliven.compiled import compiled

_EDGE = 1e-6  # barycentric slack: a point this close outside a triangle's edge still counts as inside
_FLAT = 1e-12  # triangles with a smaller |determinant| (in grid units²) are degenerate and skipped


@compiled
def _rasterise(target, source, triangles, x_origin, y_origin, offset, stride, map_x, map_y, labels,
               with_labels):  # pragma: no cover - compiled; tested through its caller
    h, w = map_x.shape
    for t in range(triangles.shape[0]):
        i, j, k = triangles[t, 0], triangles[t, 1], triangles[t, 2]
        # The corners in grid units of the map's window (as (target - origin - offset) / stride in NumPy).
        ax, ay = (target[i, 0] - x_origin - offset) / stride, (target[i, 1] - y_origin - offset) / stride
        bx, by = (target[j, 0] - x_origin - offset) / stride, (target[j, 1] - y_origin - offset) / stride
        cx, cy = (target[k, 0] - x_origin - offset) / stride, (target[k, 1] - y_origin - offset) / stride
        # Its bounding box on the window first: most triangles miss a small window altogether.
        x0 = max(int(np.ceil(min(ax, bx, cx))), 0)
        x1 = min(int(np.floor(max(ax, bx, cx))), w - 1)
        y0 = max(int(np.ceil(min(ay, by, cy))), 0)
        y1 = min(int(np.floor(max(ay, by, cy))), h - 1)
        if x1 < x0 or y1 < y0:
            continue
        e1x, e1y = bx - ax, by - ay
        e2x, e2y = cx - ax, cy - ay
        det = e1x * e2y - e1y * e2x
        if abs(det) <= _FLAT:
            continue
        inv = 1.0 / det
        for py in range(y0, y1 + 1):
            dy = py - ay
            for px in range(x0, x1 + 1):
                dx = px - ax
                w1 = (dx * e2y - dy * e2x) * inv
                w2 = (dy * e1x - dx * e1y) * inv
                if w1 >= -_EDGE and w2 >= -_EDGE and w1 + w2 <= 1.0 + _EDGE:
                    w0 = 1.0 - w1 - w2
                    map_x[py, px] = w0 * source[i, 0] + w1 * source[j, 0] + w2 * source[k, 0]
                    map_y[py, px] = w0 * source[i, 1] + w1 * source[j, 1] + w2 * source[k, 1]
                    if with_labels:
                        labels[py, px] = t


_NO_LABELS = np.zeros((1, 1), np.int64)


@compiled
def _inside(loop, x, y, out):  # pragma: no cover - compiled; tested through its caller
    n = loop.shape[0]
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            px, py = x[i, j], y[i, j]
            odd = False
            for e in range(n):
                x0, y0 = loop[e, 0], loop[e, 1]
                x1, y1 = loop[(e + 1) % n, 0], loop[(e + 1) % n, 1]
                if (y0 > py) != (y1 > py) and px < x0 + (py - y0) * (x1 - x0) / (y1 - y0):
                    odd = not odd
            out[i, j] = odd


@compiled
def _disc_sampling(x0, y0, h, w, centre, radius, inverse, origin, loop, origin_loop):  # pragma: no cover - compiled
    qx = np.empty((h, w), np.float64)
    qy = np.empty((h, w), np.float64)
    xs = np.empty((h, w), np.float64)
    ys = np.empty((h, w), np.float64)
    for i in range(h):
        for j in range(w):
            dx, dy = (x0 + j) - centre[0], (y0 + i) - centre[1]
            xs[i, j], ys[i, j] = x0 + j, y0 + i
            qx[i, j] = origin[0] + (dx * inverse[0, 0] + dy * inverse[0, 1])
            qy[i, j] = origin[1] + (dx * inverse[1, 0] + dy * inverse[1, 1])
    show = np.empty((h, w), np.bool_)
    _inside(loop, xs, ys, show)
    seen = np.empty((h, w), np.bool_)
    _inside(origin_loop, qx, qy, seen)
    for i in range(h):
        for j in range(w):
            show[i, j] = show[i, j] and seen[i, j] and np.hypot(xs[i, j] - centre[0], ys[i, j] - centre[1]) <= radius
    return show, qx, qy


def disc_sampling(
    window: tuple[int, int, int, int], centre: np.ndarray, radius: float, inverse: np.ndarray, origin: np.ndarray,
    loop: np.ndarray, origin_loop: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A disc drawn from somewhere else: over the pixels of ``window`` (x0, y0, width, height), which show the disc
    of ``radius`` about ``centre`` inside the outline ``loop``, and where each samples its source, at ``origin`` plus
    ``inverse`` times its offset from ``centre``; a pixel shows only if that place lies inside ``origin_loop`` too.
    Returns (show, source x, source y)."""
    x0, y0, w, h = window
    f64 = np.float64
    return _disc_sampling(int(x0), int(y0), int(h), int(w), np.asarray(centre, f64), float(radius),
                          np.ascontiguousarray(inverse, f64), np.asarray(origin, f64), np.ascontiguousarray(loop, f64),
                          np.ascontiguousarray(origin_loop, f64))


def inside_polygon(loop: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Which points (x, y) lie inside the closed polygon ``loop`` (even-odd rule: a point is inside when a ray
    from it to the left crosses the outline an odd number of times). A degenerate outline (upper eyelid on lower)
    has nothing inside, where a filled polygon would still paint its edge."""
    x, y = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
    shape = x.shape
    x2, y2 = np.ascontiguousarray(x.reshape(-1, shape[-1] if shape else 1)), np.ascontiguousarray(
        y.reshape(-1, shape[-1] if shape else 1))
    out = np.empty(x2.shape, np.bool_)
    _inside(np.ascontiguousarray(loop, np.float64), x2, y2, out)
    return out.reshape(shape)


def backward_map(
    target: np.ndarray,
    source: np.ndarray,
    triangles: np.ndarray,
    map_x: np.ndarray,
    map_y: np.ndarray,
    stride: int,
    labels: np.ndarray | None = None,
    origin: tuple[int, int] = (0, 0),
) -> None:
    """Fill ``map_x``/``map_y`` (grid of shape (G, G)) where target triangles cover the grid.

    Grid point (j, i) stands for the full-resolution pixel centre ``origin + stride * (j, i) + (stride - 1) / 2``,
    which is what ``cv2.resize`` assumes when it upsamples the map by ``stride``: with ``origin`` the maps may be
    a window (views) of a larger picture's. Points no triangle covers keep their values. ``labels``, if given
    (int64), receives the covering triangle's index (else untouched).
    """
    if map_x.shape != map_y.shape or (labels is not None and labels.shape != map_x.shape):
        raise ValueError("map_x, map_y and labels must have the same shape")
    if len(triangles) == 0:
        return
    f64 = np.float64
    _rasterise(np.ascontiguousarray(target[:, :2], f64), np.ascontiguousarray(source[:, :2], f64),
               np.ascontiguousarray(triangles, np.int64), float(origin[0]), float(origin[1]), (stride - 1) / 2.0,
               float(stride), map_x, map_y, _NO_LABELS if labels is None else labels, labels is not None)


@compiled
def _near_line(x0, y0, curve, half, cover):  # pragma: no cover - compiled; tested through its caller
    h, w = cover.shape
    for i in range(h):
        for j in range(w):
            best, nearest = np.inf, 0
            for k in range(curve.shape[0]):  # the nearest point by squared distance, its distance exactly after
                dx, dy = x0 + j - curve[k, 0], y0 + i - curve[k, 1]
                d2 = dx * dx + dy * dy
                if d2 < best:
                    best, nearest = d2, k
            d = np.hypot(x0 + j - curve[nearest, 0], y0 + i - curve[nearest, 1])
            cover[i, j] = min(max(half[nearest] + 0.5 - d, 0.0), 1.0)


def line_cover(window: tuple[int, int, int, int], curve: np.ndarray, half: np.ndarray) -> np.ndarray:
    """How much each pixel of ``window`` (x0, y0, width, height) lies on a line drawn through the points of
    ``curve`` (K, 2), ``half[k]`` pixels thick on either side of point k (the nearest point decides): 1 within it,
    0 beyond one more pixel, a linear ramp between (anti-aliasing). (height, width) float64."""
    x0, y0, w, h = window
    cover = np.empty((h, w), np.float64)
    _near_line(float(x0), float(y0), np.ascontiguousarray(curve, np.float64), np.ascontiguousarray(half, np.float64),
               cover)
    return cover


@functools.cache
def warm_up() -> None:
    """Compile (or load from Numba's on-disk cache) the kernels now, once per process: called while a render is
    being prepared, so the first frame does not wait for them."""
    grid = np.zeros((2, 3), np.float32)
    backward_map(np.zeros((3, 2)), np.zeros((3, 2)), np.array([[0, 1, 2]]), grid, grid.copy(), 1)
    # The same on windows of a map (strided views), as the warp redraws its eyes and lips.
    backward_map(np.zeros((3, 2)), np.zeros((3, 2)), np.array([[0, 1, 2]]), grid[:, :2], grid[:, 1:], 1)
    inside_polygon(np.zeros((3, 2)), np.zeros((2, 2)), np.zeros((2, 2)))
    disc_sampling((0, 0, 2, 2), np.zeros(2), 1.0, np.eye(2), np.zeros(2), np.zeros((3, 2)), np.zeros((3, 2)))
    line_cover((0, 0, 2, 2), np.zeros((2, 2)), np.ones(2))
