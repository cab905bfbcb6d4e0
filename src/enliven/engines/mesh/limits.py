"""What the mesh warp can render, and how a target that asks for more is pulled back into it.

The warp moves one picture's pixels: it cannot show a hidden side of the head, and the face can move only as far
as the two rings around it can follow without folding (the outer ring stays put, so hair and shoulders stay
still). A target beyond that would tear the picture: the face sliding into the collar, hair stretched into long
strips, triangles folded over each other. ``TargetLimits`` pulls such a target back, in this order:

1. absurd shapes: the target's expression (its pose-normalised shape less the source's) is checked against what
   faces do. A landmark whose own motion (its motion less its neighbours' mean) is beyond any expression's (a
   point thrown across the picture) is eased back towards its neighbours'; an expression far larger than any face
   makes (a mirrored or scrambled face), or jittering everywhere like noise, is faded towards none at all;
2. head turn: angles past what the warp shows are eased back (the face turned back about its centre);
3. folded openings: a lower lip above the upper one, or an upper lid below the lower one, meet instead (the jaw or
   the lid is moved back, and the skin around follows smoothly, so the lips keep their thickness);
4. placement: the face's shift, zoom and turn in the picture are eased so that no part of the face oval uses more
   than a fraction of the band between it and the outer ring;
5. the oval itself: what expression still pushes a part of the oval too far out into its band (a jaw dropped
   far) is eased back, and the face follows smoothly.

Every step leaves a target it has nothing to do for untouched (the same array), and every easing is a smooth
saturating curve (``_ease``) or ramp: a demand that grows slowly gives a result that moves slowly, with no pop.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp

from enliven.face import geometry
from enliven.face import landmarks as lm
from enliven.motion import edits
from enliven.motion.edits import HarmonicField

# 1. Absurd shapes, measured on the expression in canonical units (outer eye-corner distances):
# - a landmark's own motion over its mean edge length. On the eye and lip contours expressions reach 2.5 (the
#   corners of a mouth opened to 0.8, where the mesh's triangles are thinnest): eased from 3 into 4 there.
#   Elsewhere they stay under 0.9 (raised brows); a point thrown across the face reaches 9: eased from 1.2 into 1.5.
CONTOUR_ROUGH_START, CONTOUR_ROUGH_LIMIT = 3.0, 4.0
ROUGH_START, ROUGH_LIMIT = 1.2, 1.5
SMOOTHING_SWEEPS = 30  # Jacobi sweeps: enough for a thrown point's neighbours to settle after it comes back
# - the expression's size, root mean square over the mesh: a mouth opened to 0.8 is 0.23, speech ~0.05; a mirrored
#   face 1.3, scattered points 2.6. Faded out from 0.4 (kept whole) to 0.8 (none left).
SIZE_START, SIZE_FULL = 0.4, 0.8
# - jitter: the 90th percentile of own motion over the mesh away from the eye and lip contours (where expressions
#   are sharpest). Expressions stay under 0.15, a real driver's landmarks ~0.06; noise of 1 % of the face's width
#   0.45, of 2 % 0.9. Faded out from 0.3 to 0.8.
JITTER_START, JITTER_FULL = 0.3, 0.8
# 2. Head turn: past its clean pose limits the warp still renders a little more (the limits are where the driving
# motion is eased into), up to this many times them; beyond, the head is turned back.
POSE_REACH = 1.15
# 4./5. Band use: how far a face-oval point moves along the band between it and the outer ring, as a fraction of
# the band's length. Outwards the band squeezes: eased into 0.7 (30 % of its width left). Inwards it stretches,
# which shows a source strip magnified (an empty neck below a risen face): eased into 0.45 (1.45 times as long).
# Across the band the strips shear, which folds nothing but drags hair along: eased into 1 band length. Easing
# starts at EASE_FROM of each limit.
SQUEEZE_LIMIT, STRETCH_LIMIT, SHEAR_LIMIT = 0.7, 0.45, 1.0
EASE_FROM = 0.6

_MESH = np.arange(lm.NUM_MESH)
_OVAL = list(lm.FACE_OVAL)
_EYES = lm.RIGHT_EYE_UPPER + lm.RIGHT_EYE_LOWER + lm.LEFT_EYE_UPPER + lm.LEFT_EYE_LOWER
_LIPS = lm.INNER_LIP_UPPER + lm.INNER_LIP_LOWER + lm.OUTER_LIP_UPPER + lm.OUTER_LIP_LOWER
_UPPER_LIP = tuple(dict.fromkeys(lm.INNER_LIP_UPPER + lm.OUTER_LIP_UPPER))
# The lower lip's inner and outer contours, point by point (both run corner to corner): moved together, so a lip
# moved back keeps its thickness.
_LOWER_LIP_PAIRS = np.array([lm.INNER_LIP_LOWER[1:-1], lm.OUTER_LIP_LOWER[1:-1]])
_SMOOTH_MESH = np.setdiff1d(_MESH, _EYES + _LIPS)  # where no expression moves a point sharply against its neighbours
# The mouth's and the eyes' upper and lower contours without their shared corners, point by point (pairs across
# the opening), which opening each pair belongs to (0 mouth, 1 and 2 the eyes), and each opening's corners.
_OPENINGS = ((lm.INNER_LIP_UPPER, lm.INNER_LIP_LOWER), (lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER),
             (lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER))
_OPENING_UPPER = np.concatenate([upper[1:-1] for upper, _ in _OPENINGS])
_OPENING_LOWER = np.concatenate([lower[1:-1] for _, lower in _OPENINGS])
_OPENING_OF = np.repeat(np.arange(3), [len(upper) - 2 for upper, _ in _OPENINGS])
_OPENING_CORNERS = np.array([lm.MOUTH_CORNERS, lm.RIGHT_EYE_CORNERS, lm.LEFT_EYE_CORNERS])
_JITTER_RANK = int(0.9 * len(_SMOOTH_MESH))  # the 90th percentile's place among them
_CONTOUR = np.isin(_MESH, _EYES + _LIPS)
_ROUGH_START = np.where(_CONTOUR, CONTOUR_ROUGH_START, ROUGH_START)
_ROUGH_LIMIT = np.where(_CONTOUR, CONTOUR_ROUGH_LIMIT, ROUGH_LIMIT)


@functools.cache
def _mesh_neighbours() -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """The face mesh's edges as an adjacency matrix (468 x 468), each vertex's degree, and the edges (E, 2)."""
    tris = geometry.face_model().triangles
    edges = np.unique(np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), 1), axis=0)
    n = lm.NUM_MESH
    ones = np.ones(2 * len(edges))
    adjacency = sp.coo_matrix((ones, (np.r_[edges[:, 0], edges[:, 1]], np.r_[edges[:, 1], edges[:, 0]])), (n, n))
    adjacency = adjacency.tocsr()
    return adjacency, np.asarray(adjacency.sum(1)).ravel(), edges


@functools.cache
def _lower_lip_field() -> HarmonicField:
    """The lower lip moved, the upper lip and the skull held: the chin follows (the jaw)."""
    return HarmonicField(tuple(_LOWER_LIP_PAIRS.ravel()), _UPPER_LIP + lm.RIGID + _EYES)


@functools.cache
def _oval_field() -> HarmonicField:
    """The face oval moved, nothing else held: the face follows, less and less further in."""
    return HarmonicField(lm.FACE_OVAL, ())


def _ease(x, start, limit):
    """``x`` unchanged up to ``start`` in magnitude, then bent (tanh) so that it never passes ``limit``: continuous,
    with a continuous slope. Works element-wise on arrays (of ``x``, ``start`` and ``limit`` alike)."""
    room = limit - start
    over = np.abs(x) - start
    return np.where(over > 0, np.sign(x) * (start + room * np.tanh(np.maximum(over, 0.0) / room)), x)


def _ramp(x: float, start: float, full: float) -> float:
    """0 up to ``start``, 1 from ``full`` on, a smoothstep between (continuous, with a continuous slope)."""
    t = min(max((x - start) / (full - start), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def _opening_gaps(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair of upper and lower contour points (``_OPENING_UPPER``, ``_OPENING_LOWER``): the gap across the line
    through its opening's corners, in pixels (positive while open); per opening: the unit vector across that line
    (from the upper contour to the lower) and the corners' distance."""
    xy = points[:, :2]
    axes = xy[_OPENING_CORNERS[:, 1]] - xy[_OPENING_CORNERS[:, 0]]
    width = np.maximum(np.hypot(axes[:, 0], axes[:, 1]), 1e-9)
    down = np.stack([-axes[:, 1], axes[:, 0]], 1) / width[:, None]
    gaps = ((xy[_OPENING_LOWER] - xy[_OPENING_UPPER]) * down[_OPENING_OF]).sum(-1)
    return gaps, down, width


class TargetLimits:
    """For one source: pull targets back into what the warp renders whole (see the module's docstring)."""

    def __init__(self, landmarks: np.ndarray, outer_ring: np.ndarray, pose_limits: tuple[float, float, float]):
        """``landmarks``: the source's (478, 3) in crop pixels; ``outer_ring``: the still ring's points, one per
        face-oval point; ``pose_limits``: the engine's clean head angles (yaw, pitch, roll)."""
        self.source = np.asarray(landmarks, np.float64)
        pose = geometry.fit_pose(self.source)
        self.shape = geometry.to_canonical(self.source, pose)
        # A source that is itself turned keeps its turn and may turn a little further.
        limits = np.array(pose_limits, np.float64)
        self.pose_start = np.maximum(limits, np.abs(pose.angles()))
        self.pose_limit = self.pose_start + (POSE_REACH - 1.0) * limits
        oval = self.source[_OVAL, :2]
        band = np.asarray(outer_ring, np.float64)[:, :2] - oval
        self.band_length = np.maximum(np.hypot(band[:, 0], band[:, 1]), 1.0)
        self.band_dir = band / self.band_length[:, None]
        gaps, _, width = _opening_gaps(self.source)
        self.own_crossing = np.minimum(gaps / width[_OPENING_OF], 0.0)  # in opening widths
        # The source mesh as complex numbers about its centroid, for the similarity fit of every target.
        mesh = self.source[_MESH, 0] + 1j * self.source[_MESH, 1]
        self.mesh_centre = complex(mesh.mean())
        self.mesh_offsets = mesh - self.mesh_centre
        self.mesh_norm = max(float(np.vdot(self.mesh_offsets, self.mesh_offsets).real), 1e-12)
        self.oval_offsets = self.source[_OVAL, 0] + 1j * self.source[_OVAL, 1] - self.mesh_centre
        _, degree, edges = _mesh_neighbours()
        lengths = np.linalg.norm(self.shape[edges[:, 0]] - self.shape[edges[:, 1]], axis=1)
        n = lm.NUM_MESH
        self.edge_length = np.maximum((np.bincount(edges[:, 0], lengths, n) + np.bincount(edges[:, 1], lengths, n))
                                      / degree, 1e-6)

    def __call__(self, target: np.ndarray) -> np.ndarray:
        """The target pulled back into what renders whole; when it already does, ``target`` itself (as float64: the
        same array if it is float64 already)."""
        out = np.asarray(target, np.float64)
        pose = geometry.fit_pose(out)  # the first two steps keep it: they change the shape, then the angles
        out = self.turn(self.plausible(out, pose), pose)
        for step in (self.unfold, self.place, self.hold_oval):
            out = step(out)
        return out

    def _own_motion(self, expression: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each mesh point's own motion (its motion less its neighbours' mean) and its size in edge lengths."""
        adjacency, degree, _ = _mesh_neighbours()
        own = expression - adjacency @ expression / degree[:, None]
        return own, np.linalg.norm(own, axis=1) / self.edge_length

    def plausible(self, target: np.ndarray, pose: geometry.Pose) -> np.ndarray:
        """Thrown points eased back towards their neighbours; an expression too large or too jittery for a face
        faded towards the source's own (in the target's ``pose``). See *ROUGH_*, SIZE_*, JITTER_*."""
        expression = geometry.to_canonical(target, pose) - self.shape
        mesh = expression[_MESH]
        own, ratio = self._own_motion(mesh)
        thrown = (ratio > _ROUGH_START).any()
        if thrown:
            for _ in range(SMOOTHING_SWEEPS):
                keep = _ease(ratio, _ROUGH_START, _ROUGH_LIMIT) / np.maximum(ratio, 1e-12)
                mesh = mesh - (1.0 - keep)[:, None] * own
                own, ratio = self._own_motion(mesh)
        size = float(np.sqrt((mesh**2).sum(1).mean()))
        smooth = ratio[_SMOOTH_MESH]
        jitter = float(np.partition(smooth, _JITTER_RANK)[_JITTER_RANK])
        fade = max(_ramp(size, SIZE_START, SIZE_FULL), _ramp(jitter, JITTER_START, JITTER_FULL))
        if not thrown and fade == 0.0:
            return target
        expression[_MESH] = mesh
        return geometry.from_canonical(self.shape + (1.0 - fade) * expression, pose)

    def turn(self, target: np.ndarray, pose: geometry.Pose) -> np.ndarray:
        """Head angles (of ``pose``) eased into ``pose_limit`` from ``pose_start`` on: the face turned back about
        its centre."""
        angles = np.array(pose.angles())
        if (np.abs(angles) <= self.pose_start).all():
            return target
        eased = _ease(angles, self.pose_start, self.pose_limit)
        back = pose.rotation @ geometry.rotation_from_angles(*eased).T  # row vectors: (x R) R'^T
        return (target - pose.translation) @ back + pose.translation

    def unfold(self, target: np.ndarray) -> np.ndarray:
        """A lower lip above the upper one is moved down onto it (with the chin); an upper lid below the lower one
        is moved up onto it (with its skin). Nothing moves while every opening is open or just shut (or crossed no
        further than the source's own: landmarks of a shut mouth often cross by a fraction of a pixel)."""
        gaps, down, width = _opening_gaps(target)
        short = np.minimum(gaps - self.own_crossing * width[_OPENING_OF], 0.0)  # how far each pair has crossed
        if not short.any():
            return target
        moves = []
        mouth, right_eye, left_eye = (short[_OPENING_OF == k] for k in range(3))
        if mouth.any():
            lip = np.outer(-mouth, down[0])
            moves.append((_lower_lip_field(), np.concatenate([lip, lip])))  # inner and outer contour alike
        for side, crossed in enumerate((right_eye, left_eye)):
            if crossed.any():
                moves.append((edits.lid_field(side), np.outer(crossed, down[1 + side])))
        out = target.copy()
        for field, motion in moves:
            out[:, :2] += field.spread(np.pad(motion, ((0, 0), (0, 1))))[:, :2]
        return out

    def _band_use(self, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per face-oval point: its motion along its band (towards the outer ring, in band lengths) and across."""
        along = (motion * self.band_dir).sum(1) / self.band_length
        across = (motion[:, 1] * self.band_dir[:, 0] - motion[:, 0] * self.band_dir[:, 1]) / self.band_length
        return along, across

    def place(self, target: np.ndarray) -> np.ndarray:
        """The face's shift, zoom and in-picture turn (the similarity that best takes the source's mesh onto the
        target's) scaled down together until the oval's rigid motion uses at most the band limits (SQUEEZE_LIMIT,
        STRETCH_LIMIT, SHEAR_LIMIT); the expression is kept."""
        mesh = target[_MESH, 0] + 1j * target[_MESH, 1]
        target_centre = complex(mesh.mean())
        k = complex(np.vdot(self.mesh_offsets, mesh - target_centre)) / self.mesh_norm
        if k == 0:
            return target
        centre, shift = self.mesh_centre, target_centre - self.mesh_centre
        rigid = (k - 1.0) * self.oval_offsets + shift  # each oval point's motion under the similarity
        along, across = self._band_use(np.stack([rigid.real, rigid.imag], 1))
        demand = max(along.max() / SQUEEZE_LIMIT, -along.min() / STRETCH_LIMIT, np.abs(across).max() / SHEAR_LIMIT)
        if demand <= EASE_FROM:
            return target
        fraction = float(_ease(demand, EASE_FROM, 1.0)) / demand
        eased_k, eased_shift = np.exp(fraction * np.log(k)), fraction * shift
        # Undo the asked similarity and apply the eased one: the face keeps its expression, moves less.
        z = target[:, 0] + 1j * target[:, 1]
        placed = eased_k * (z - centre - shift) / k + centre + eased_shift
        out = target.copy()
        out[:, 0], out[:, 1] = placed.real, placed.imag
        out[:, 2] = target[:, 2] * abs(eased_k) / abs(k)
        return out

    def hold_oval(self, target: np.ndarray) -> np.ndarray:
        """Each face-oval point's motion outwards along its band eased into SQUEEZE_LIMIT; the face follows
        harmonically. (Inwards only a rigid motion is eased, by ``place``: a turned head's far side moves in by
        right, uncovering what lies beyond it.)"""
        along, _ = self._band_use(target[_OVAL, :2] - self.source[_OVAL, :2])
        start = EASE_FROM * SQUEEZE_LIMIT
        if along.max() <= start:
            return target
        eased = np.where(along > start, _ease(along, start, SQUEEZE_LIMIT), along)
        back = ((eased - along) * self.band_length)[:, None] * self.band_dir
        out = target.copy()
        out[:, :2] += _oval_field().spread(np.pad(back, ((0, 0), (0, 1))))[:, :2]
        return out
