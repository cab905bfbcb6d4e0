"""Training-free rendering: warp the source crop so its face mesh lands on the target landmarks.

Inside the face the warp is piecewise affine over the face-mesh triangles; the eye and mouth holes of
the mesh are filled with strips between the upper and lower contours so nothing tears there. Outside
the face two rings of extra vertices carry the face-oval motion outwards, halved on the inner ring and
zero on the outer ring, so hair, shoulders and background stay still (our stitching). The paste-back
mask covers the outer ring, so everything beyond it is the original picture, untouched.
"""

from __future__ import annotations

import cv2
import numpy as np

from enliven.engines.base import _BUILTIN, SourceState, register
from enliven.engines.mesh.raster import backward_map
from enliven.face import geometry
from enliven.face import landmarks as lm
from enliven.face.geometry import face_model
from enliven.face.paste import feathered_mask
from enliven.motion.frame import MotionFrame

RING_RADII = (1.3, 1.8)  # inner and outer ring, as multiples of the face oval's distance from its centre
RING_FOLLOW = 0.5
LID_LIFT = 0.35  # a shut lid is drawn from this far above the lid contour, in eye-opening heights  # fraction of the oval's motion the inner ring takes (the outer ring takes none)


def _similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """2x3 similarity taking the two points ``a`` onto the two points ``b``."""
    za, zb = complex(*(a[1] - a[0])), complex(*(b[1] - b[0]))
    k = zb / za if za else 1.0
    m = np.array([[k.real, -k.imag], [k.imag, k.real]])
    return np.concatenate([m, (b[0] - m @ a[0])[:, None]], axis=1)


def _strip(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """Quads (as two triangles each) between two closed loops of equal length."""
    nxt_i, nxt_o = np.roll(inner, -1), np.roll(outer, -1)
    return np.concatenate([np.stack([inner, nxt_i, nxt_o], 1), np.stack([inner, nxt_o, outer], 1)])


@register("mesh", needs=_BUILTIN["mesh"][1])
class MeshEngine:
    name = "mesh"
    driving_crop = None  # landmarks are all it needs

    def __init__(self, stride: int = 2, align: object = None):
        # `align` (motion options) is given to every engine; the mesh engine gets aligned landmarks already.
        self.stride = stride  # the sampling map is computed every `stride` pixels, then upsampled
        n = len(lm.FACE_OVAL)
        oval = np.array(lm.FACE_OVAL)
        ring1 = lm.NUM_LANDMARKS + np.arange(n)
        ring2 = ring1 + n
        self._ring_triangles = np.concatenate([_strip(ring1, ring2), _strip(oval, ring1)])
        # The eye openings get vertices of their own (same target places as the lid contours, their own
        # source places), so a closing lid can slide over the eyeball instead of squashing it.
        self._eyes = [np.array(sorted(set(up + low))) for up, low in (
            (lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER), (lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER))]
        base = lm.NUM_LANDMARKS + 2 * n
        remap = {}
        for idx in np.concatenate(self._eyes):
            remap[int(idx)] = base + len(remap)
        self._eye_copies = np.array(list(remap.values()))
        eye_holes = np.vectorize(remap.get)(lm.EYE_HOLE_TRIANGLES)
        self._face_triangles = np.concatenate([face_model().triangles, eye_holes, lm.MOUTH_HOLE_TRIANGLES])
        # Rings first, face last: where a big motion folds triangles over, the face wins.
        self._triangles = np.concatenate([self._ring_triangles, self._face_triangles])

    def prepare(self, crop_image: np.ndarray, landmarks: np.ndarray, session: dict | None = None) -> SourceState:
        size = crop_image.shape[0]
        oval = landmarks[list(lm.FACE_OVAL), :2].astype(np.float64)
        centre = oval.mean(0)
        margin = 0.02 * size
        rings = [np.clip(centre + r * (oval - centre), margin, size - 1 - margin) for r in RING_RADII]
        eyes = landmarks[np.concatenate(self._eyes), :2].astype(np.float64)
        vertices = np.concatenate([landmarks[:, :2].astype(np.float64), *rings, eyes])
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
            },
            session={} if session is None else session,
        )

    def target_vertices(self, state: SourceState, target: np.ndarray) -> np.ndarray:
        """Target positions of every warp vertex: the landmarks, the two rings, the eye-opening copies."""
        src = state.cache["vertices"]
        oval_motion = target[list(lm.FACE_OVAL), :2] - src[list(lm.FACE_OVAL)]
        smoothed = 0.5 * oval_motion + 0.25 * (np.roll(oval_motion, 1, 0) + np.roll(oval_motion, -1, 0))
        ring1, ring2 = state.cache["rings"]
        eyes = target[np.concatenate(self._eyes), :2]
        return np.concatenate([target[:, :2], ring1 + RING_FOLLOW * smoothed, ring2, eyes])

    def source_vertices(self, state: SourceState, target: np.ndarray) -> np.ndarray:
        """Source positions: fixed, except inside a closing eye, where the eyeball keeps its place (following
        the eye corners) and the lid covers it, rather than the eyeball being squeezed."""
        src = state.cache["vertices"]
        target_ratios, source_ratios = geometry.eye_open_ratios(target), geometry.eye_open_ratios(state.landmarks)
        closing = target_ratios < source_ratios
        if not closing.any():
            return src
        out = src.copy()
        start = 0
        for side, contour in enumerate(self._eyes):
            copies = self._eye_copies[start : start + len(contour)]
            start += len(contour)
            if closing[side]:
                corners = list((lm.RIGHT_EYE_CORNERS, lm.LEFT_EYE_CORNERS)[side])
                to_source = _similarity(target[corners, :2], src[corners])
                out[copies] = target[contour, :2] @ to_source[:, :2].T + to_source[:, 2]
                # The contour landmarks sit a little inside the eye, so the lid's lower edge in the source holds
                # lashes and a rim of eyeball; take the descending lid from higher up as it closes.
                upper = list((lm.RIGHT_EYE_UPPER, lm.LEFT_EYE_UPPER)[side][1:-1])
                lower = list((lm.RIGHT_EYE_LOWER, lm.LEFT_EYE_LOWER)[side][1:-1])
                closure = 1.0 - target_ratios[side] / max(source_ratios[side], 1e-6)
                out[upper] = src[upper] + LID_LIFT * np.clip(closure, 0, 1) * (src[upper] - src[lower])
        return out

    def sampling_map(self, state: SourceState, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Full-resolution backward map: output pixel (x, y) takes the source pixel (map_x, map_y)."""
        gx, gy = state.cache["grid"]
        map_x, map_y = gx.copy(), gy.copy()
        backward_map(
            self.target_vertices(state, target), self.source_vertices(state, target), self._triangles, map_x, map_y,
            self.stride,
        )
        ix, iy = state.cache["identity"]
        if self.stride == 1:
            return map_x, map_y
        # Upsample the displacement, not the map: it is zero at the crop border, so the border stays exact.
        size = (ix.shape[1], ix.shape[0])
        return (
            ix + cv2.resize(map_x - gx, size, interpolation=cv2.INTER_LINEAR),
            iy + cv2.resize(map_y - gy, size, interpolation=cv2.INTER_LINEAR),
        )

    def render(self, state: SourceState, target: np.ndarray, frame: MotionFrame | None = None) -> np.ndarray:
        map_x, map_y = self.sampling_map(state, target)
        return cv2.remap(state.crop_image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
