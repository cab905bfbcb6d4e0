"""Training-free rendering: warp the source crop so its face mesh lands on the target landmarks.

Inside the face the warp is piecewise affine over the face-mesh triangles; the eye and mouth holes of
the mesh are filled with strips between the upper and lower contours so nothing tears there. The eyes'
strips show the white of the eye; each iris is drawn over it as a disc of its own, moved with the gaze
and cut by the lids. A shutting lid is drawn from the skin above the lashes, ending in a thin lash line. Outside
the face two rings of extra vertices carry the face-oval motion outwards, halved on the inner ring and
zero on the outer ring, so hair, shoulders and background stay still (our stitching). The paste-back
mask covers the outer ring, so everything beyond it is the original picture, untouched. The mouth's opening is
painted last (``mouth.MouthPainter``): the source's own teeth, over the driver's mouth interior or a drawn one.

A target asking for more than such a warp can show whole (the face moved past its rings, an extreme turn, lips
passing through each other, landmarks no face makes) is first pulled back, smoothly, into one it can
(``limits.TargetLimits``); everyday targets pass untouched.
"""

from __future__ import annotations

import cv2
import numpy as np

from enliven.engines.base import SourceState
from enliven.engines.mesh.limits import TargetLimits
from enliven.engines.mesh.mouth import (
    DRIVER_CROP,
    MOUTH_CROP,
    SHOWS_INSIDE,
    MouthPainter,
    SourceMouth,
    mouth_gap,
    similarity,
)
from enliven.engines.mesh.raster import backward_map, disc_sampling, inside_polygon, line_cover, warm_up
from enliven.engines.mesh.wrinkles import WrinkleTransfer
from enliven.errors import EnlivenError
from enliven.face import geometry
from enliven.face import landmarks as lm
from enliven.face.geometry import face_model
from enliven.face.paste import feathered_mask
from enliven.motion.frame import MotionFrame

RING_RADII = (1.3, 1.8)  # inner and outer ring, as multiples of the face oval's distance from its centre
# The inner ring sits this far along the band from the oval to the outer ring, and keeps that place as the oval
# moves: it takes the rest of the oval's motion (the outer ring takes none), so the two strips between oval, inner
# and outer ring squeeze or stretch by the same factor, and the inner ring can never pass the oval or the outer ring.
RING_PLACE = (RING_RADII[0] - 1.0) / (RING_RADII[1] - 1.0)
RING_FOLLOW = 1.0 - RING_PLACE
RING_MARGIN = 0.02  # the outer ring stays this far (in crop sides) inside the crop: the crop has nothing beyond it
CLOSING = 0.85  # an eye narrower than this fraction of the source's is drawn as closing (lid over the eyeball)
LID_LIFT = 0.7  # a shut lid's skin is taken from this far above its contour, in eye-opening heights ...
LASH_HEIGHT = 0.35  # ... its lashes from the band between the contour and this far above it ...
LASH_SQUEEZE = 0.4  # ... drawn this many times their height, so they stay a thin line at the lid's edge
LASH_WIDTH = 0.055  # the dark line where a shut lid's lashes meet, in eye widths (at its thickest) ...
LASH_DARK = 0.8  # ... and how far it darkens the skin towards the lashes' colour
# How strongly the driver's wrinkles are carried over by default: off, for speed (a third more time per frame:
# the driver's whole face cut per frame, its shot's reference too, and the ratio warped twice).
WRINKLES = 0.0
LIP_EDGE_PULL = 0.25  # shut lips over an open source mouth: their edges from this far into the lips (of their depth)
SCLERA_REACH = 3  # pixels beside an iris searched for the white of the eye
IRIS_REACH = 0.8  # an iris's centre comes no nearer an eye corner than this many iris radii


def _eye_loop(points: np.ndarray, side: int) -> np.ndarray:
    """The eye opening's outline, corner to corner along the upper lid and back along the lower one."""
    upper = (lm.RIGHT_EYE_UPPER, lm.LEFT_EYE_UPPER)[side]
    lower = (lm.RIGHT_EYE_LOWER, lm.LEFT_EYE_LOWER)[side]
    return points[list(upper) + list(lower[::-1][1:-1]), :2].astype(np.float64)


def _rings(oval: np.ndarray, size: int) -> list[np.ndarray]:
    """The inner and outer ring around a face oval: each oval point's ray from the oval's centre carried out to
    RING_RADII, but the outer ring no further than RING_MARGIN inside the crop (a big face in a tight crop), and
    the inner ring always at RING_PLACE of the way to it, so the rings never cross each other or the oval."""
    centre = oval.mean(0)
    ray = oval - centre
    lo, hi = RING_MARGIN * size, size - 1 - RING_MARGIN * size
    # How far along its ray each oval point may go before it leaves [lo, hi] in x or in y.
    with np.errstate(divide="ignore", invalid="ignore"):
        reach = np.where(ray > 0, (hi - centre) / ray, np.where(ray < 0, (lo - centre) / ray, np.inf))
    # An oval already at the crop's edge still gets a thin band (the warp squeezes it rather than folding).
    outer = np.clip(reach.min(1), 1.0 + 0.1 * (RING_RADII[1] - 1.0), RING_RADII[1])
    inner = 1.0 + RING_PLACE * (outer - 1.0)
    return [centre + inner[:, None] * ray, centre + outer[:, None] * ray]


def _iris(points: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """Iris centre and radius (the mean distance of MediaPipe's four iris ring points from the centre)."""
    iris = list((lm.RIGHT_IRIS, lm.LEFT_IRIS)[side])
    centre = points[iris[0], :2].astype(np.float64)
    return centre, float(np.linalg.norm(points[iris[1:], :2] - centre, axis=1).mean())


def _disc_window(image_size: int, centre: np.ndarray, radius: float) -> tuple[int, int, int, int] | None:
    """The window (x0, y0, x1, y1) of the crop around a disc; None if it is off the crop."""
    x0, y0 = np.maximum(np.floor(centre - radius).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(centre + radius).astype(int) + 3, image_size)
    if x1 <= x0 or y1 <= y0:
        return None
    return int(x0), int(y0), int(x1), int(y1)


def _disc(image_size: int, centre: np.ndarray, radius: float) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """The pixels around a disc (a window on the crop and its pixel coordinates); None if off the crop."""
    window = _disc_window(image_size, centre, radius)
    if window is None:
        return None
    x0, y0, x1, y1 = window
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    return slice(y0, y1), slice(x0, x1), xs, ys


def _iris_mask(loop: np.ndarray, centre: np.ndarray, radius: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """What of an iris shows: its disc inside the eye opening."""
    return (np.hypot(xs - centre[0], ys - centre[1]) <= radius) & inside_polygon(loop, xs, ys)


def _eyeball(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The crop with the white of each eye drawn where its iris shows: a moved iris uncovers eyeball. Each row
    across the iris is filled in between the whitest of the few pixels of eyeball just left and right of it (the
    pixels right beside it are the iris's dark rim); near the lids, where there is no eyeball beside it, between
    the pixels just outside it."""
    plate = image.copy()
    for side in (0, 1):
        centre, radius = _iris(points, side)
        window = _disc(image.shape[0], centre, radius + SCLERA_REACH)
        if window is None:
            continue
        rows, cols, xs, ys = window
        loop = _eye_loop(points, side)
        mask = _iris_mask(loop, centre, radius, xs, ys)
        eyeball = inside_polygon(loop, xs, ys) & ~mask
        patch = plate[rows, cols]  # a view: filled in place
        light = patch.astype(np.float32).sum(-1)
        for j in np.nonzero(mask.any(1))[0]:
            hit = np.nonzero(mask[j])[0]
            ends = []
            for near, far in ((hit[0] - 1, hit[0] - 1 - SCLERA_REACH), (hit[-1] + 1, hit[-1] + 1 + SCLERA_REACH)):
                span = np.arange(near, far, -1 if far < near else 1)
                span = span[(span >= 0) & (span < mask.shape[1])]
                white = span[eyeball[j, span]]
                if len(white):
                    ends.append(int(white[np.argmax(light[j, white])]))
                else:
                    ends.append(int(np.clip(near, 0, mask.shape[1] - 1)))
            a, b = ends
            t = np.clip((hit - a) / max(b - a, 1), 0.0, 1.0)[:, None]
            patch[j, hit] = np.round((1 - t) * patch[j, a].astype(np.float32) + t * patch[j, b]).astype(np.uint8)
    return plate


def _lash_tint(image: np.ndarray, points: np.ndarray, side: int) -> np.ndarray:
    """The source's lash colour as a fraction of its lid skin's, per channel: the darkening that takes the
    skin of a shut lid to the colour of the lashes."""
    upper = list((lm.RIGHT_EYE_UPPER, lm.LEFT_EYE_UPPER)[side][1:-1])
    lower = list((lm.RIGHT_EYE_LOWER, lm.LEFT_EYE_LOWER)[side][1:-1])
    edge = points[upper, :2].astype(np.float32)
    up = edge - points[lower, :2].astype(np.float32)
    # The lashes are the darkest thing just above the contour (it may sit on them or on the eyeball below).
    steps = np.append(np.linspace(0.0, LASH_HEIGHT, 6), LID_LIFT).astype(np.float32)
    at = edge[None] + steps[:, None, None] * up[None]
    band = cv2.remap(image, at[..., 0], at[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    lashes = band[band[:-1].sum(-1).argmin(0), np.arange(len(upper))]
    return np.clip(np.median(lashes, 0) / np.maximum(np.median(band[-1], 0), 1.0), 0.15, 1.0).astype(np.float32)


def _apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ m[:, :2].T + m[:, 2]


def _strip(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """Quads (as two triangles each) between two closed loops of equal length."""
    nxt_i, nxt_o = np.roll(inner, -1), np.roll(outer, -1)
    return np.concatenate([np.stack([inner, nxt_i, nxt_o], 1), np.stack([inner, nxt_o, outer], 1)])


class MeshEngine:
    name = "mesh"
    # Head angles (yaw, pitch, roll; degrees) it renders cleanly: a 2-D warp of one view shows no hidden side.
    pose_limits = (25.0, 20.0, 30.0)

    def __init__(self, stride: int = 2, align: object = None, mouth: str = "auto", wrinkles: float = WRINKLES):
        # `align` (motion options) is given to every engine; the mesh engine gets aligned landmarks already.
        self.stride = stride  # the sampling map is computed every `stride` pixels, then upsampled
        # The driver's pixels serve the inside of its mouth (``mouth.MouthPainter``) and its wrinkles
        # (``wrinkles.WrinkleTransfer``, measured against each shot's reference frame, so that frame is cut too);
        # landmarks are all the rest of the engine needs.
        if not (np.isfinite(wrinkles) and 0.0 <= wrinkles <= 3.0):
            raise EnlivenError(f"--wrinkles must be a number from 0 to 3, not {wrinkles}")
        self.mouth = MouthPainter(mouth)
        self.wrinkles = WrinkleTransfer(wrinkles)
        self.driving_crop = DRIVER_CROP if wrinkles > 0 else MOUTH_CROP if self.mouth.wants_pixels else None
        self.anchor_crops = wrinkles > 0
        n = len(lm.FACE_OVAL)
        oval = np.array(lm.FACE_OVAL)
        ring1 = lm.NUM_LANDMARKS + np.arange(n)
        ring2 = ring1 + n
        self._ring_triangles = np.concatenate([_strip(ring1, ring2), _strip(oval, ring1)])
        # The eye and mouth openings get vertices of their own (same target places as the contours, their
        # own source places), so a closing lid slides over the eyeball and an opening mouth shows what is
        # inside at its own size, instead of either being squeezed or stretched.
        self._openings = [
            np.array(sorted(set(lm.RIGHT_EYE_UPPER + lm.RIGHT_EYE_LOWER))),
            np.array(sorted(set(lm.LEFT_EYE_UPPER + lm.LEFT_EYE_LOWER))),
            np.array(sorted(set(lm.INNER_LIP_UPPER + lm.INNER_LIP_LOWER))),
        ]
        base = lm.NUM_LANDMARKS + 2 * n
        remap = {}
        for idx in np.concatenate(self._openings):
            remap[int(idx)] = base + len(remap)
        self._copies = np.split(np.array(list(remap.values())), np.cumsum([len(o) for o in self._openings])[:-1])
        copy = np.vectorize(remap.get)
        # The eyes are strips between the lids, showing the white of the eye; the iris is drawn over it as a disc
        # of its own (``_irises``), so it can move inside the opening with the gaze.
        self._eye_triangles = np.split(copy(lm.EYE_HOLE_TRIANGLES), 2)
        # A shutting lid's lashes get a strip of their own, between the lid contour (bottom) and a second row
        # (top) just above it: the lashes stay a thin line at the lid's edge instead of stretching with the lid.
        base += len(remap)
        k = len(lm.RIGHT_EYE_UPPER)
        self._lash_rows = [(base + 2 * k * side + np.arange(k),
                            base + 2 * k * side + k + np.arange(k)) for side in (0, 1)]
        self._lash_triangles = [
            np.concatenate([np.stack([b[:-1], b[1:], t[1:]], 1), np.stack([b[:-1], t[1:], t[:-1]], 1)])
            for b, t in self._lash_rows
        ]
        # Rings first, face last: where a big motion folds triangles over, the face wins.
        self._mesh_triangles = face_model().triangles
        self._mouth_triangles = copy(lm.MOUTH_HOLE_TRIANGLES)

    def prepare(self, crop_image: np.ndarray, landmarks: np.ndarray, session: dict | None = None) -> SourceState:
        warm_up()  # the compiled rasteriser loaded now (a driver's first pass runs meanwhile), not at the first frame
        size = crop_image.shape[0]
        rings = _rings(landmarks[list(lm.FACE_OVAL), :2].astype(np.float64), size)
        openings = self._opening_points(landmarks)
        lash_rows = landmarks[list(lm.RIGHT_EYE_UPPER * 2 + lm.LEFT_EYE_UPPER * 2), :2]
        vertices = np.concatenate([landmarks[:, :2].astype(np.float64), *rings, openings, lash_rows])
        grid = np.arange(size // self.stride) * self.stride + (self.stride - 1) / 2.0
        full = np.arange(size, dtype=np.float32)
        return SourceState(
            crop_image=crop_image,
            landmarks=landmarks.astype(np.float64),
            paste_mask=feathered_mask(rings[1], size, feather=0.06 * size),
            cache={
                "vertices": vertices,
                "rings": rings,
                "grid": tuple(a.astype(np.float32) for a in np.meshgrid(grid, grid)),
                "identity": np.meshgrid(full, full),
                "eye_ratios": geometry.eye_open_ratios(landmarks),
                "lash_tint": [_lash_tint(crop_image, landmarks, side) for side in (0, 1)],
                "eyeball": _eyeball(crop_image, landmarks),  # what is warped; the irises are drawn over it
                "mouth": SourceMouth.of(crop_image, landmarks),  # its own inside and colours
                "limits": TargetLimits(landmarks, rings[1], self.pose_limits),
            },
            session={} if session is None else session,
        )

    def _closure(self, state: SourceState, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which eyes are closing, and how far (0 as open as the source … 1 shut)."""
        ratios = geometry.eye_open_ratios(target)
        # Closing means clearly narrower than the source: landmark noise and gaze shifts are not a blink.
        closing = ratios < CLOSING * state.cache["eye_ratios"]
        return closing, np.clip(1.0 - ratios / np.maximum(state.cache["eye_ratios"], 1e-6), 0.0, 1.0)

    def _lids(self, state: SourceState, target: np.ndarray, closing: np.ndarray, closure: np.ndarray) -> list:
        """For each closing eye: its upper contour's lift in the source (how far above the contour the shutting
        lid is taken from) and the source-to-target linear map of the eye (from its corners); None if open."""
        src = state.cache["vertices"]
        out = []
        for side in (0, 1):
            if not closing[side]:
                out.append(None)
                continue
            upper = list((lm.RIGHT_EYE_UPPER, lm.LEFT_EYE_UPPER)[side])
            lower = list((lm.RIGHT_EYE_LOWER, lm.LEFT_EYE_LOWER)[side])
            corners = list((lm.RIGHT_EYE_CORNERS, lm.LEFT_EYE_CORNERS)[side])
            # The contour landmarks sit a little inside the eye, so the lid's lower edge in the source holds
            # lashes and a rim of eyeball; the descending lid is taken from higher up as it closes.
            lift = LID_LIFT * closure[side] * (src[upper] - src[lower])
            out.append((lift, similarity(src[corners], target[corners, :2])[:, :2]))
        return out

    def target_vertices(self, state: SourceState, target: np.ndarray, openings: np.ndarray, lids: list) -> np.ndarray:
        """Target positions of every warp vertex: the landmarks, the two rings, the openings' own vertices
        (``openings``: ``_opening_points(target)``), the lash rows (``lids``: ``_lids(...)``)."""
        src = state.cache["vertices"]
        oval_motion = target[list(lm.FACE_OVAL), :2] - src[list(lm.FACE_OVAL)]
        smoothed = 0.5 * oval_motion + 0.25 * (np.roll(oval_motion, 1, 0) + np.roll(oval_motion, -1, 0))
        ring1, ring2 = state.cache["rings"]
        lashes = []
        for side, lid in enumerate(lids):
            edge = target[list((lm.RIGHT_EYE_UPPER, lm.LEFT_EYE_UPPER)[side]), :2]
            lashes += [edge, edge if lid is None else edge + LASH_SQUEEZE * LASH_HEIGHT / LID_LIFT * lid[0] @ lid[1].T]
        return np.concatenate([target[:, :2], ring1 + RING_FOLLOW * smoothed, ring2, openings, *lashes])

    def _far_to_near(self, target: np.ndarray) -> np.ndarray:
        """Mesh triangles ordered far to near (z grows away from the camera), so where a turned head folds the
        mesh, the near side is drawn last and stays on top."""
        depth = target[self._mesh_triangles, 2].mean(1)
        return self._mesh_triangles[np.argsort(-depth, kind="stable")]

    def _opening_points(self, points: np.ndarray) -> np.ndarray:
        """The openings' own vertices (at their contour points)."""
        return points[np.concatenate(self._openings), :2].astype(np.float64)

    def source_vertices(self, state: SourceState, target: np.ndarray, openings: np.ndarray, lids: list) -> np.ndarray:
        """Source positions: fixed, except inside the openings. A closing eye keeps its eyeball in place (it
        follows the eye corners) and the lid covers it; the mouth's inside follows the head's rigid points."""
        src = state.cache["vertices"]
        out = src.copy()
        own = np.split(openings, np.cumsum([len(o) for o in self._openings])[:-1])
        for side, lid in enumerate(lids):
            if lid is None:
                continue  # as open as the source or wider: the strip stretches what there is
            corners = list((lm.RIGHT_EYE_CORNERS, lm.LEFT_EYE_CORNERS)[side])
            out[self._copies[side]] = _apply(similarity(target[corners, :2], src[corners]), own[side])
            upper = list((lm.RIGHT_EYE_UPPER, lm.LEFT_EYE_UPPER)[side])
            out[upper] += lid[0]  # the lid skin ends where the lashes begin ...
            out[self._lash_rows[side][1]] += LASH_HEIGHT / LID_LIFT * lid[0]  # ... the lash strip holds the lashes
        # Teeth sit in the skull: the inside of the mouth follows the head (its rigid points), not the lips.
        rigid = list(lm.RIGID)
        out[self._copies[2]] = _apply(similarity(target[rigid, :2], src[rigid]), own[2])
        # Lips closing over a mouth the source shows open: their edges are taken from a little inside the lips, so
        # the teeth or dark they border in the source are not dragged along into a light or dark seam.
        gap, own_gap = mouth_gap(target), state.cache["mouth"].gap
        if own_gap > SHOWS_INSIDE and gap < own_gap:
            pull = LIP_EDGE_PULL * (1.0 - max(gap, 0.0) / own_gap)
            for inner, outer in ((lm.INNER_LIP_UPPER, lm.OUTER_LIP_UPPER), (lm.INNER_LIP_LOWER, lm.OUTER_LIP_LOWER)):
                inner, outer = list(inner[1:-1]), list(outer[1:-1])
                out[inner] += pull * (src[outer] - src[inner])
        return out

    def warp_mesh(
        self,
        state: SourceState,
        target: np.ndarray,
        closing: np.ndarray | None = None,
        closure: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The piecewise-affine warp of a (renderable) target: target and source positions of every vertex, and the
        triangles in the order they are drawn (later ones cover earlier ones). ``closing``, ``closure``:
        ``_closure(state, target)``, worked out if not given."""
        if closing is None:
            closing, closure = self._closure(state, target)
        lids = self._lids(state, target, closing, closure)
        lashes = [self._lash_triangles[side] for side in (0, 1) if closing[side]]
        openings = self._opening_points(target)
        vertices = self.target_vertices(state, target, openings, lids)
        sources = self.source_vertices(state, target, openings, lids)
        triangles = np.concatenate(
            [self._ring_triangles, self._far_to_near(target), self._mouth_triangles, *self._eye_triangles, *lashes]
        )
        return vertices, sources, triangles

    def sampling_map(
        self,
        state: SourceState,
        target: np.ndarray,
        closing: np.ndarray | None = None,
        closure: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
        """Full-resolution backward map of a (renderable) target: output pixel (x, y) takes the source pixel
        (map_x, map_y); and the window (x0, y0, x1, y1) outside which that is the pixel itself (exactly: no
        triangle reaches there, nor does the upsampling's reach from one). ``closing``, ``closure``:
        ``_closure(state, target)``, worked out if not given."""
        if closing is None:
            closing, closure = self._closure(state, target)
        gx, gy = state.cache["grid"]
        map_x, map_y = gx.copy(), gy.copy()
        vertices, sources, triangles = self.warp_mesh(state, target, closing, closure)
        backward_map(vertices, sources, triangles, map_x, map_y, self.stride)
        ix, iy = state.cache["identity"]
        size = (ix.shape[1], ix.shape[0])
        reach = 2 * self.stride  # the upsampling blends grid points up to a grid step away
        x0, y0 = np.maximum(np.floor(vertices.min(0)).astype(int) - reach, 0)
        x1, y1 = np.minimum(np.ceil(vertices.max(0)).astype(int) + reach + 1, size)
        moved = (int(x0), int(y0), int(max(x1, x0)), int(max(y1, y0)))
        if self.stride == 1:
            return map_x, map_y, moved
        # Upsample the displacement, not the map: it is zero at the crop border, so the border stays exact.
        map_x = cv2.resize(np.subtract(map_x, gx, out=map_x), size, interpolation=cv2.INTER_LINEAR)
        map_y = cv2.resize(np.subtract(map_y, gy, out=map_y), size, interpolation=cv2.INTER_LINEAR)
        map_x += ix  # in place: no new megabyte-sized arrays a frame
        map_y += iy
        # Around the eyes the map jumps (lid over eyeball, lashes over skin): interpolating across a jump would
        # sample what lies between in the source (a smear of iris on a shut lid), so redo them at every pixel; the
        # same at the lips of a mouth the source shows open (lips meeting over it would carry a line of its teeth).
        jumps = [np.concatenate([vertices[self._openings[side]], vertices[self._lash_rows[side][1]]])
                 for side in (0, 1)]
        if state.cache["mouth"].shows_inside:
            jumps.append(vertices[self._openings[2]])
        for near in jumps:
            x0, y0 = np.maximum(np.floor(near.min(0)).astype(int) - 3, 0)
            x1, y1 = np.minimum(np.ceil(near.max(0)).astype(int) + 4, size)
            if x1 > x0 and y1 > y0:
                backward_map(vertices, sources, triangles, map_x[y0:y1, x0:x1], map_y[y0:y1, x0:x1], 1,
                             origin=(x0, y0))
        return map_x, map_y, moved

    def renderable_target(self, state: SourceState, target: np.ndarray) -> np.ndarray:
        """``target`` pulled back into what the warp renders whole (``limits.TargetLimits``): itself if it is."""
        return state.cache["limits"](target)

    def render(self, state: SourceState, target: np.ndarray, frame: MotionFrame | None = None) -> np.ndarray:
        target = self.renderable_target(state, target)
        closing, closure = self._closure(state, target)
        map_x, map_y, (x0, y0, x1, y1) = self.sampling_map(state, target, closing, closure)
        # Only what moved is resampled: beyond the outer ring (about a third of a usual crop) the warp is the
        # identity, and resampling would give back each pixel exactly.
        plate = state.cache["eyeball"]
        out = plate.copy()
        if x1 > x0 and y1 > y0:
            cv2.remap(plate, map_x[y0:y1, x0:x1], map_y[y0:y1, x0:x1], interpolation=cv2.INTER_LINEAR,
                      dst=out[y0:y1, x0:x1], borderMode=cv2.BORDER_REPLICATE)  # in place
        out = self._irises(state, target, out)
        out = self._lash_lines(state, target, out, closing, closure)
        # What carries state from frame to frame (the session: wrinkles' anchor, the driver's mouth smoothed over
        # time) comes last, so frames go through render in order.
        out = self.wrinkles.apply(out, target, frame, state.session)
        return self.mouth.paint(state.cache["mouth"], target, out, frame, state.session)

    def _iris_centre(self, state: SourceState, target: np.ndarray, side: int) -> np.ndarray:
        """Where the iris is drawn: the target's iris centre, but no nearer an eye corner than IRIS_REACH iris
        radii (an eye turns no further) and not past the lids, unless the source's own iris is (so a target
        equal to the source draws the source)."""
        centre = target[(lm.RIGHT_IRIS, lm.LEFT_IRIS)[side][0], :2].astype(np.float64)
        corners = list((lm.RIGHT_EYE_CORNERS, lm.LEFT_EYE_CORNERS)[side])
        a, axis = target[corners[0], :2], target[corners[1], :2] - target[corners[0], :2]
        width2 = float(axis @ axis)
        if width2 < 1.0:
            return centre
        across = np.array([-axis[1], axis[0]])
        src_centre, radius = _iris(state.landmarks, side)
        src_a = state.landmarks[corners[0], :2]
        src_axis = state.landmarks[corners[1], :2] - src_a
        # Eye coordinates: along the corner-to-corner axis (0 … 1) and across it, in eye widths.
        u, v = (centre - a) @ axis / width2, (centre - a) @ across / width2
        src_width2 = float(src_axis @ src_axis)
        own_u = (src_centre - src_a) @ src_axis / src_width2
        own_v = (src_centre - src_a) @ np.array([-src_axis[1], src_axis[0]]) / src_width2
        reach = IRIS_REACH * radius / np.sqrt(src_width2)
        u_clamped = float(np.clip(u, min(reach, own_u), max(1.0 - reach, own_u)))
        # The lids at that place across the eye (the contours, in the same coordinates).
        lids = []
        for contour in ((lm.RIGHT_EYE_UPPER, lm.LEFT_EYE_UPPER)[side], (lm.RIGHT_EYE_LOWER, lm.LEFT_EYE_LOWER)[side]):
            pts = target[list(contour), :2] - a
            pu, pv = pts @ axis / width2, pts @ across / width2
            order = np.argsort(pu)
            lids.append(float(np.interp(u_clamped, pu[order], pv[order])))
        lo, hi = min(*lids, own_v), max(*lids, own_v)
        v_clamped = float(np.clip(v, lo, hi))
        if u_clamped == u and v_clamped == v:
            return centre
        return a + u_clamped * axis + v_clamped * across

    def _irises(self, state: SourceState, target: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Each iris as a disc of its own, moved (with the eye's scale and turn) to its place in the target and
        cut by the target's lids; what the source's lids hid of it stays hidden (the white shows there)."""
        src = state.landmarks
        for side in (0, 1):
            src_centre, radius = _iris(src, side)
            corners = list((lm.RIGHT_EYE_CORNERS, lm.LEFT_EYE_CORNERS)[side])
            turn = similarity(src[corners, :2], target[corners, :2])[:, :2]  # source → target, about the iris
            # 2x2 determinant and inverse written out: np.linalg's go through LAPACK (about 10 µs a call here) for
            # four multiplications.
            det = float(turn[0, 0] * turn[1, 1] - turn[0, 1] * turn[1, 0])
            scale = float(np.sqrt(abs(det)))
            if scale < 1e-3:
                continue
            centre = self._iris_centre(state, target, side)
            window = _disc_window(out.shape[0], centre, radius * scale)
            if window is None:
                continue
            x0, y0, x1, y1 = window
            rows, cols = slice(y0, y1), slice(x0, x1)
            # Where each target pixel of the disc comes from in the source.
            inverse = np.array([[turn[1, 1], -turn[0, 1]], [-turn[1, 0], turn[0, 0]]]) / det
            show, qx, qy = disc_sampling((x0, y0, x1 - x0, y1 - y0), centre, radius * scale, inverse, src_centre,
                                         _eye_loop(target, side), _eye_loop(src, side))
            if not show.any():
                continue
            iris = cv2.remap(state.crop_image, qx.astype(np.float32), qy.astype(np.float32), cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
            out[rows, cols][show] = iris[show]
        return out

    def _lash_lines(
        self, state: SourceState, target: np.ndarray, out: np.ndarray, closing: np.ndarray, closure: np.ndarray
    ) -> np.ndarray:
        """A shutting lid's lashes meet in a thin dark line along its edge. Warping cannot keep that line thin
        and dark (the source's lash band, squeezed, blurs into a grey stripe that reads as a slit of an open
        eye), so the edge is darkened towards the source's own lash colour, more as the eye shuts."""
        for side in np.nonzero(closing)[0]:
            edge = target[list((lm.RIGHT_EYE_UPPER, lm.LEFT_EYE_UPPER)[side]), :2]
            axis = edge[-1] - edge[0]
            width = float(np.linalg.norm(axis))
            if width < 2.0:
                continue
            along, across = axis / width, np.array([-axis[1], axis[0]]) / width
            # A smooth curve through the lid's edge (a parabola across the eye), thickest in the middle.
            s, v = (edge - edge[0]) @ along, (edge - edge[0]) @ across
            t = np.linspace(0.0, 1.0, 48)
            curve = edge[0] + np.outer(t * width, along) + np.outer(np.polyval(np.polyfit(s, v, 2), t * width), across)
            half = 0.5 * LASH_WIDTH * width * (0.3 + 0.7 * np.sin(np.pi * t))
            x0, y0 = np.maximum(np.floor(curve.min(0) - 2).astype(int), 0)
            x1, y1 = np.minimum(np.ceil(curve.max(0) + 3).astype(int), out.shape[0])
            if x1 <= x0 or y1 <= y0:
                continue
            cover = line_cover((x0, y0, x1 - x0, y1 - y0), curve, half)  # anti-aliased: one pixel of ramp
            a = (LASH_DARK * closure[side] * cover)[..., None]
            region = out[y0:y1, x0:x1].astype(np.float32)
            out[y0:y1, x0:x1] = np.clip(region * (1.0 - a + a * state.cache["lash_tint"][side]) + 0.5, 0,
                                        255).astype(np.uint8)
        return out
