"""Named expression edits on canonical face shapes (blink, eye opening, jaw opening, smile).

Every edit moves a few handle landmarks and lets the rest of the face follow *harmonically* over the
face-mesh graph: the displacement of each free vertex is the edge-length-weighted average of its
neighbours', with the rigid points (forehead, nose, cheekbones) held still. Because the mesh has holes
at the eyes and the mouth, an upper lid or lip never drags its lower partner along. Each handle set
gets its linear solve factored once; an edit is then a small matrix product.

Edits take and return (478, 3) canonical shapes (see ``face.geometry``). Targets are open ratios as
``face.geometry`` measures them, so an edit asked for lip ratio 0.3 yields exactly 0.3 on the shape.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from enliven.face import geometry
from enliven.face import landmarks as lm

_JAW_LINE = (58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288)
_LOWER_LIP = tuple(dict.fromkeys(lm.INNER_LIP_LOWER[1:-1] + lm.OUTER_LIP_LOWER[1:-1]))
_UPPER_LIP = tuple(dict.fromkeys(lm.INNER_LIP_UPPER[1:-1] + lm.OUTER_LIP_UPPER[1:-1]))
_UPPER_FACE_OVAL = tuple(i for i in lm.FACE_OVAL if i not in _JAW_LINE)


@functools.cache
def _laplacian() -> sp.csr_matrix:
    model = geometry.face_model()
    tris = model.triangles
    edges = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    edges = np.unique(np.sort(edges, 1), axis=0)
    length = np.linalg.norm(model.canonical[edges[:, 0]] - model.canonical[edges[:, 1]], axis=1)
    w = 1.0 / np.maximum(length, 1e-6)
    n = lm.NUM_MESH
    adj = sp.coo_matrix((np.r_[w, w], (np.r_[edges[:, 0], edges[:, 1]], np.r_[edges[:, 1], edges[:, 0]])), (n, n))
    adj = adj.tocsr()
    return (sp.diags(np.asarray(adj.sum(1)).ravel()) - adj).tocsr()


class HarmonicField:
    """Spread displacements given at ``handles`` over the mesh, with ``anchors`` held at zero."""

    def __init__(self, handles: tuple[int, ...], anchors: tuple[int, ...]):
        self.handles = np.array(handles)
        fixed = np.array(sorted(set(handles) | set(anchors)))
        free = np.setdiff1d(np.arange(lm.NUM_MESH), fixed)
        lap = _laplacian()
        solve = spla.factorized(lap[free][:, free].tocsc())
        coupling = -lap[free][:, self.handles].toarray()
        # Dense (free x handles) influence matrix: an edit is one product per frame.
        influence = np.column_stack([solve(coupling[:, k]) for k in range(len(self.handles))])
        self._free, self._influence = free, influence

    def spread(self, handle_motion: np.ndarray) -> np.ndarray:
        """(478, 3) displacement field from (len(handles), 3) handle displacements."""
        out = np.zeros((lm.NUM_LANDMARKS, 3))
        out[self.handles] = handle_motion
        out[self._free] = self._influence @ handle_motion
        return out


@functools.cache
def _jaw_field() -> HarmonicField:
    eyes = lm.RIGHT_EYE_UPPER + lm.RIGHT_EYE_LOWER + lm.LEFT_EYE_UPPER + lm.LEFT_EYE_LOWER
    return HarmonicField(_LOWER_LIP + _JAW_LINE, _UPPER_LIP + lm.RIGID + _UPPER_FACE_OVAL + eyes)


@functools.cache
def lid_field(side: int) -> HarmonicField:
    """An upper lid moved, the lower lid, brow, other eye and skull held: the lid's skin follows."""
    upper = (lm.RIGHT_EYE_UPPER, lm.LEFT_EYE_UPPER)[side]
    lower = (lm.RIGHT_EYE_LOWER, lm.LEFT_EYE_LOWER)[side]
    brow = (lm.RIGHT_BROW, lm.LEFT_BROW)[side]
    other_eye = (lm.LEFT_EYE_UPPER + lm.LEFT_EYE_LOWER, lm.RIGHT_EYE_UPPER + lm.RIGHT_EYE_LOWER)[side]
    return HarmonicField(upper[1:-1], lower + brow + other_eye + lm.RIGID + lm.FACE_OVAL)


@functools.cache
def _smile_field() -> HarmonicField:
    corners = lm.MOUTH_CORNERS + (78, 308)
    return HarmonicField(corners, lm.RIGID + lm.FACE_OVAL)


def _jaw_rotation(shape: np.ndarray, degrees: float) -> np.ndarray:
    """Shape with the lower face turned about a hinge below the ears (x axis), by ``degrees``."""
    field = _jaw_field()
    pts = shape[field.handles]
    hinge = np.array([0.0, shape[list(lm.RIGHT_EYE_CORNERS + lm.LEFT_EYE_CORNERS), 1].mean() + 0.35, 0.9])
    a = -np.radians(degrees)  # positive degrees drop the chin (opens the mouth)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    moved = (pts - hinge) @ rot + hinge
    return shape + field.spread(moved - pts)


def _solve_monotone(f, target: float, lo: float, hi: float, iters: int = 40) -> float:
    """x in [lo, hi] with f(x) = target for increasing f (clamped at the ends)."""
    if f(lo) >= target:
        return lo
    if f(hi) <= target:
        return hi
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < target else (lo, mid)
    return (lo + hi) / 2


def set_lip_open(shape: np.ndarray, ratio: float) -> np.ndarray:
    """Open or close the jaw until the inner-lip gap / mouth width equals ``ratio``."""
    ratio = float(np.clip(ratio, 0.0, 0.8))

    def gap(deg: float) -> float:
        # Signed: negative once the lower lip would pass through the upper one, so f stays monotone.
        return float(geometry.signed_opening(_jaw_rotation(shape, deg), lm.INNER_LIP_MIDDLE, lm.MOUTH_CORNERS))

    return _jaw_rotation(shape, _solve_monotone(gap, ratio, -12.0, 35.0))


def set_eye_open(shape: np.ndarray, side: int, ratio: float) -> np.ndarray:
    """Move one upper eyelid (0 = the subject's right eye, on the image's left; 1 = the other) so the eye's
    open ratio is ``ratio``."""
    field = lid_field(side)
    upper = (lm.RIGHT_EYE_UPPER, lm.LEFT_EYE_UPPER)[side][1:-1]
    lower = (lm.RIGHT_EYE_LOWER, lm.LEFT_EYE_LOWER)[side][1:-1]
    current = geometry.eye_open_ratios(shape)[side]
    ratio = float(np.clip(ratio, 0.0, 0.8))
    if current <= 1e-6:
        return shape
    gap = shape[list(lower)] - shape[list(upper)]
    # Lid points travel along the line to their lower partners; t = 1 meets the lower lid.
    t = 1.0 - ratio / current
    return shape + field.spread(t * gap)


def smile(shape: np.ndarray, amount: float) -> np.ndarray:
    """Pull the mouth corners out and up; ``amount`` 1 is a broad smile, negative a frown."""
    field = _smile_field()
    width = np.linalg.norm(shape[lm.MOUTH_CORNERS[0]] - shape[lm.MOUTH_CORNERS[1]])
    sign = np.sign(shape[field.handles, 0] - shape[list(lm.MOUTH_CORNERS), 0].mean())
    motion = np.zeros((len(field.handles), 3))
    motion[:, 0] = sign * 0.10 * width * amount
    motion[:, 1] = -0.12 * width * amount
    return shape + field.spread(motion)


@functools.cache
def _brow_field() -> HarmonicField:
    eyes = lm.RIGHT_EYE_UPPER + lm.RIGHT_EYE_LOWER + lm.LEFT_EYE_UPPER + lm.LEFT_EYE_LOWER
    return HarmonicField(lm.RIGHT_BROW + lm.LEFT_BROW, eyes + lm.RIGID + _UPPER_LIP + _LOWER_LIP)


def raise_brows(shape: np.ndarray, amount: float) -> np.ndarray:
    """Lift both eyebrows; ``amount`` 1 is a surprised raise (a fifth of the eye-corner distance), negative frowns."""
    field = _brow_field()
    motion = np.zeros((len(field.handles), 3))
    motion[:, 1] = -0.2 * amount * np.linalg.norm(shape[263] - shape[33])
    return shape + field.spread(motion)


def pout(shape: np.ndarray, amount: float) -> np.ndarray:
    """Purse the lips: corners drawn in towards the middle and forwards; ``amount`` 1 is a strong pout."""
    field = _smile_field()
    width = np.linalg.norm(shape[lm.MOUTH_CORNERS[0]] - shape[lm.MOUTH_CORNERS[1]])
    sign = np.sign(shape[field.handles, 0] - shape[list(lm.MOUTH_CORNERS), 0].mean())
    motion = np.zeros((len(field.handles), 3))
    motion[:, 0] = -sign * 0.15 * width * amount
    motion[:, 2] = -0.1 * width * amount
    return shape + field.spread(motion)


def wink(shape: np.ndarray, side: int, amount: float = 1.0) -> np.ndarray:
    """Close one eye (0 = the subject's right eye, on the image's left; 1 = the other) by ``amount`` (1 = shut)."""
    current = geometry.eye_open_ratios(shape)[side]
    return set_eye_open(shape, side, current * (1.0 - float(np.clip(amount, 0.0, 1.0))))


def look(shape: np.ndarray, x: float, y: float) -> np.ndarray:
    """Turn both irises: ``x`` 1 moves them a quarter of the eye's width (its corner-to-corner distance) to the
    picture's right (−1 left), ``y`` 1 by 0.15 of it down (−1 up)."""
    out = shape.copy()
    width = np.linalg.norm(shape[lm.RIGHT_EYE_CORNERS[0]] - shape[lm.RIGHT_EYE_CORNERS[1]])
    out[list(lm.RIGHT_IRIS + lm.LEFT_IRIS), 0] += 0.25 * width * x
    out[list(lm.RIGHT_IRIS + lm.LEFT_IRIS), 1] += 0.15 * width * y
    return out


def expression_ratios(shape: np.ndarray) -> dict[str, float]:
    """The measured quantities that edits target: eye open (right, left) and lip open."""
    eyes = geometry.eye_open_ratios(shape)
    return {"eye_right": float(eyes[0]), "eye_left": float(eyes[1]), "lip": float(geometry.lip_open_ratio(shape))}
