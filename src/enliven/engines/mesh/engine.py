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
from enliven.face import landmarks as lm
from enliven.face.geometry import face_model
from enliven.face.paste import feathered_mask
from enliven.motion.frame import MotionFrame

RING_RADII = (1.3, 1.8)  # inner and outer ring, as multiples of the face oval's distance from its centre
RING_FOLLOW = 0.5  # fraction of the oval's motion the inner ring takes (the outer ring takes none)


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
        self._face_triangles = np.concatenate([face_model().triangles, lm.EYE_HOLE_TRIANGLES, lm.MOUTH_HOLE_TRIANGLES])
        # Rings first, face last: where a big motion folds triangles over, the face wins.
        self._triangles = np.concatenate([self._ring_triangles, self._face_triangles])

    def prepare(self, crop_image: np.ndarray, landmarks: np.ndarray, session: dict | None = None) -> SourceState:
        size = crop_image.shape[0]
        oval = landmarks[list(lm.FACE_OVAL), :2].astype(np.float64)
        centre = oval.mean(0)
        margin = 0.02 * size
        rings = [np.clip(centre + r * (oval - centre), margin, size - 1 - margin) for r in RING_RADII]
        vertices = np.concatenate([landmarks[:, :2].astype(np.float64), *rings])
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
        """Target positions of every warp vertex: the landmarks plus the two rings."""
        src = state.cache["vertices"]
        oval_motion = target[list(lm.FACE_OVAL), :2] - src[list(lm.FACE_OVAL)]
        smoothed = 0.5 * oval_motion + 0.25 * (np.roll(oval_motion, 1, 0) + np.roll(oval_motion, -1, 0))
        ring1, ring2 = state.cache["rings"]
        return np.concatenate([target[:, :2], ring1 + RING_FOLLOW * smoothed, ring2])

    def sampling_map(self, state: SourceState, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Full-resolution backward map: output pixel (x, y) takes the source pixel (map_x, map_y)."""
        gx, gy = state.cache["grid"]
        map_x, map_y = gx.copy(), gy.copy()
        backward_map(
            self.target_vertices(state, target), state.cache["vertices"], self._triangles, map_x, map_y, self.stride
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
