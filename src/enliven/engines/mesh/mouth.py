"""The inside of the mouth, for the mesh engine: what shows between the lips when the face opens its mouth.

A 2-D warp of one photo has nothing to show where the mouth opens wider than in the photo. Like "Bringing
Portraits to Life" (Averbuch-Elor et al., SIGGRAPH Asia 2017), which transfers the driver's mouth interior into a
warped photo, we paint the target's mouth opening in layers, back to front:

1. **A fill** for the opening: the driver's own mouth interior when the motion comes with the driver's pixels
   (``driver``: the region inside its inner-lip contour, warped triangle by triangle onto the target's inner-lip
   contour, its colours matched to the source's skin), or a drawn interior when it does not (``synth``: a shaded
   gap, a tongue, and upper and lower rows of teeth placed by the inner lips and coloured to the source), or just
   the shaded gap (``source``).
2. **The source's own interior**, where the source shows one (teeth in a smile, an open mouth): its upper half
   moves with the head and its lower half with the jaw, each rigidly, so teeth are never stretched; a closing
   mouth hides them behind the lips, which the warp draws from the lips themselves.

Everything is clipped by the target's inner-lip outline (anti-aliased), so the lips always cover the inside. The
driver's landmarks and colour gains are smoothed over time (a still driver gives a still interior), restart at a
cut, and a frame where the driver's face is lost keeps the last interior seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from enliven.engines.mesh.raster import backward_map
from enliven.errors import EnlivenError
from enliven.face import landmarks as lm
from enliven.face.crop import CropSpec
from enliven.motion.frame import MotionFrame

MOUTH_MODES = ("auto", "driver", "synth", "source")
# The driver's crops the mesh engine reads pixels from, cut with one box per shot, wide enough that what it needs
# stays inside as the head moves within the shot; about 100 pixels of mouth width in both, near the source crop's
# scale. For the mouth's inside alone: around the mouth (0.2 crop sides below the face's centre, 1.5 face extents
# wide). For wrinkles too: the whole face and a little of the forehead (1.7 face extents, a little above centre).
MOUTH_CROP = CropSpec(size=320, scale=1.5, vy=0.2, rotate=False)
DRIVER_CROP = CropSpec(size=384, scale=1.7, vy=-0.05, rotate=False)

MOUTH_LOOP = list(lm.INNER_LIP_UPPER) + list(lm.INNER_LIP_LOWER[::-1][1:-1])
OPEN_GAP = 1.0  # pixels: lips this far apart (or more) count as open
# A source whose lips are this far apart (pixels, and of its mouth's width) shows its own inside (teeth, or dark);
# a mere crack holds only the lips' edges, and gives way to the new inside as the mouth opens past it.
SHOWS_INSIDE, SHOWS_INSIDE_RATIO = 2.0, 0.06
# Points the lower half of the mouth's inside moves with: the chin and jaw line below the mouth, and the lower lip
# (which hides or shows the lower teeth).
JAW = (152, 148, 176, 149, 377, 400, 378, 175, 199, 200, 171, 396, 428, 208, 32, 262) + lm.INNER_LIP_LOWER[2:-2] + \
    lm.OUTER_LIP_LOWER[2:-2]
# Skin below the eyes and around the mouth (cheeks, chin, the skin between nose and upper lip): where the colours
# of two faces are compared to carry the driver's mouth into the source's light.
SKIN = (50, 280, 205, 425, 187, 411, 36, 266, 101, 330, 118, 347, 199, 175, 200, 428, 208, 164, 167, 393)
PATCH = 2  # skin and lip colours are medians over (2 * PATCH + 1)² pixels around each point

CAVITY_DARK = 0.25  # the back of the mouth, as a fraction of the lips' colour
GAIN_RANGE = (0.4, 2.5)  # per-channel colour gains driver → source are kept within this range
GAIN_EASE = 0.15  # each frame the colour gains move this fraction of the way to the frame's own
STILL_JITTER = 2.0  # pixels: a driver landmark moving less than this is eased (jitter), more follows at once
STILL_EASE = 0.35  # ... the fraction of the way a jittering landmark moves each frame

# Teeth, in inner-mouth widths (corner to corner of the inner lips). Rows are shown across the middle TEETH_SPAN
# of the width; each tooth's width from the middle outwards (the arch turns away, so they narrow).
TEETH_SPAN = 0.42
UPPER_TEETH = (0.085, 0.065, 0.055, 0.045, 0.04, 0.04)
LOWER_TEETH = (0.055, 0.06, 0.06, 0.05, 0.045, 0.045)
UPPER_HEIGHT, LOWER_HEIGHT = 0.17, 0.07  # how far each row reaches into the opening, in the middle
LOWER_SHOWS = (0.1, 0.25)  # the lower row grows in as the gap opens from the first to the second (in widths)
TONGUE_HEIGHT, TONGUE_HALF_WIDTH = 0.22, 0.36
TEETH_TINT = np.array([1.0, 0.965, 0.88])  # ivory: a little less blue than white
TEETH_LIGHT, SKIN_TINT = 1.3, 0.35  # drawn teeth: this much lighter than the skin, with this much of its tint
TONGUE_TINT = np.array([0.85, 0.42, 0.42])


def mouth_gap(points: np.ndarray) -> float:
    """The inner lips' widest gap, in pixels: across the line between the mouth corners, between each upper lip
    point and the lower one facing it (negative where they cross)."""
    axis = points[lm.MOUTH_CORNERS[1], :2] - points[lm.MOUTH_CORNERS[0], :2]
    down = np.array([-axis[1], axis[0]]) / max(float(np.hypot(*axis)), 1e-9)
    gaps = (points[list(lm.INNER_LIP_LOWER[1:-1]), :2] - points[list(lm.INNER_LIP_UPPER[1:-1]), :2]) @ down
    return float(gaps.max())


def _fill(loop: np.ndarray, shape: tuple[int, int], origin=(0, 0)) -> np.ndarray:
    """float32 anti-aliased coverage (0 … 1) of the polygon ``loop`` on a window of ``shape`` at ``origin``."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round((np.asarray(loop) - origin) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


def mouth_opening(points: np.ndarray, shape: tuple[int, int], origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """float32 coverage (0 … 1, anti-aliased) of the mouth's opening (its inner-lip outline) on a window of ``shape``
    whose top-left pixel is ``origin``. A shut mouth has no opening, but its outline, upper lip on lower, would
    still be drawn as a line: the coverage fades out as the widest gap closes below OPEN_GAP pixels."""
    return _fill(points[MOUTH_LOOP, :2], shape, origin) * float(np.clip(mouth_gap(points) / OPEN_GAP, 0.0, 1.0))


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity taking the points ``a`` onto the points ``b`` (exact for two points)."""
    za, zb = a[:, 0] + 1j * a[:, 1], b[:, 0] + 1j * b[:, 1]
    mean_a, mean_b = za.mean(), zb.mean()
    ca, cb = za - mean_a, zb - mean_b
    norm = float(np.vdot(ca, ca).real)
    k = np.vdot(ca, cb) / norm if norm > 0 else 1.0
    m = np.array([[k.real, -k.imag], [k.imag, k.real]])
    centre_a, centre_b = np.array([mean_a.real, mean_a.imag]), np.array([mean_b.real, mean_b.imag])
    return np.concatenate([m, (centre_b - m @ centre_a)[:, None]], axis=1)


_PATCH_DY, _PATCH_DX = (d.ravel() for d in np.mgrid[-PATCH : PATCH + 1, -PATCH : PATCH + 1])


def _colour_at(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Median colour (float32 RGB) of the small patches around ``points`` (pixels; those off the picture skipped)."""
    h, w = image.shape[:2]
    xy = np.round(points[:, :2]).astype(int)
    x, y = xy[:, 0], xy[:, 1]
    xy = xy[(x >= PATCH) & (x < w - PATCH) & (y >= PATCH) & (y < h - PATCH)]
    if not len(xy):
        return np.full(3, 128.0, np.float32)
    # All patches at once (one gather, not a slice per point: this runs for every frame of a driving video).
    ys = xy[:, 1, None] + _PATCH_DY
    xs = xy[:, 0, None] + _PATCH_DX
    return np.median(image[ys, xs].reshape(-1, 3), axis=0).astype(np.float32)


def skin_colour(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    return _colour_at(image, points[list(SKIN)])


def lip_colour(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The lips' colour: halfway between the inner and outer contours, corners left out."""
    inner = points[list(lm.INNER_LIP_UPPER[2:-2]) + list(lm.INNER_LIP_LOWER[2:-2]), :2]
    outer = points[list(lm.OUTER_LIP_UPPER[2:-2]) + list(lm.OUTER_LIP_LOWER[2:-2]), :2]
    return _colour_at(image, 0.5 * (inner + outer))


def _luma(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


@dataclass
class SourceMouth:
    """What the source gives every frame's mouth: its own interior in two halves, and its colours."""

    image: np.ndarray  # the source crop (uint8 RGB)
    upper: np.ndarray  # float32 coverage of the upper half of the source's opening (moves with the head)
    lower: np.ndarray  # ... and of its lower half (moves with the jaw)
    head: np.ndarray  # the source's rigid points (skull) and jaw points, crop pixels
    jaw: np.ndarray
    skin: np.ndarray  # float32 RGB
    lips: np.ndarray
    teeth: np.ndarray  # the colour drawn teeth get: the source's own where it shows them, else from its skin
    shows_inside: bool  # the source's mouth is open: its own teeth (or dark) stay, no teeth are drawn beside them
    gap: float  # its inner lips' widest gap, pixels

    @classmethod
    def of(cls, image: np.ndarray, points: np.ndarray) -> SourceMouth:
        size = image.shape[:2]
        gap = mouth_gap(points)
        # The line halfway between the inner lips splits the opening: above it belongs to the upper lip and teeth.
        upper_lip, lower_lip = points[list(lm.INNER_LIP_UPPER), :2], points[list(lm.INNER_LIP_LOWER), :2]
        middle = 0.5 * (upper_lip + lower_lip)
        openness = float(np.clip(gap / OPEN_GAP, 0.0, 1.0))
        upper = _fill(np.concatenate([upper_lip, middle[::-1][1:-1]]), size) * openness
        lower = _fill(np.concatenate([middle, lower_lip[::-1][1:-1]]), size) * openness
        # A little wider than an open mouth, so its own rim never counts as new opening; a shut mouth has none.
        rim = int(np.clip(round(gap / 4.0), 0, 2))
        if rim:
            kernel = np.ones((2 * rim + 1, 2 * rim + 1), np.uint8)
            upper, lower = cv2.dilate(upper, kernel), cv2.dilate(lower, kernel)
        skin, lips = skin_colour(image, points), lip_colour(image, points)
        return cls(image, upper, lower, points[list(lm.RIGID), :2].astype(np.float64),
                   points[list(JAW), :2].astype(np.float64), skin, lips, _teeth_colour(image, points, skin),
                   gap > max(SHOWS_INSIDE, SHOWS_INSIDE_RATIO * _mouth_width(points)), gap)


def _mouth_width(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[lm.MOUTH_CORNERS[1], :2] - points[lm.MOUTH_CORNERS[0], :2]))


def _teeth_colour(image: np.ndarray, points: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """The source's own teeth colour when its opening shows some (its brightest pixels there, if clearly lighter
    than the skin's shadow), else an ivory as light as its skin, a little lighter."""
    if mouth_gap(points) > max(SHOWS_INSIDE, SHOWS_INSIDE_RATIO * _mouth_width(points)):
        inside = _fill(points[MOUTH_LOOP, :2], image.shape[:2]) > 0.99
        pixels = image[inside].astype(np.float32)
        if len(pixels) >= 30:
            light = _luma(pixels)
            bright = pixels[light >= np.percentile(light, 85)]
            if _luma(bright.mean(0)) > 0.75 * _luma(skin):
                return bright.mean(0).astype(np.float32)
    # Teeth catch the light: lighter than the skin around the mouth, ivory with a little of the skin's own tint
    # (the picture's white balance).
    level = float(np.clip(TEETH_LIGHT * _luma(skin), 80.0, 240.0))
    ivory = TEETH_TINT / _luma(TEETH_TINT)
    return (level * ((1.0 - SKIN_TINT) * ivory + SKIN_TINT * skin / max(_luma(skin), 1.0))).astype(np.float32)


@dataclass
class _Window:
    """The pixels around the target's mouth opening: a box of the crop and its pixel centres."""

    x0: int
    y0: int
    xs: np.ndarray  # float32 (h, w)
    ys: np.ndarray

    def mapped(self, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The window's pixels under the 2x3 affine ``m`` (float32 maps for ``cv2.remap``)."""
        return ((m[0, 0] * self.xs + m[0, 1] * self.ys + m[0, 2]).astype(np.float32),
                (m[1, 0] * self.xs + m[1, 1] * self.ys + m[1, 2]).astype(np.float32))


class MouthPainter:
    """Paints the target's mouth opening over a warped crop (see the module's text). ``mode``: ``driver``,
    ``synth``, ``source``, or ``auto`` (the driver's interior when the motion has the driver's pixels, else drawn).
    """

    def __init__(self, mode: str = "auto"):
        if mode not in MOUTH_MODES:
            raise EnlivenError(f"--mouth must be one of {', '.join(MOUTH_MODES)}, not {mode!r}")
        self.mode = mode

    @property
    def wants_pixels(self) -> bool:
        return self.mode in ("auto", "driver")

    def paint(self, source: SourceMouth, target: np.ndarray, out: np.ndarray, frame: MotionFrame | None,
              session: dict) -> np.ndarray:
        """``out`` with the target's mouth opening painted (a copy if anything changed). Frames go through it in
        order: the driver's mouth is followed from frame to frame in ``session`` (see ``_driver``), on every frame,
        the ones with nothing to paint too."""
        driver = self._driver(frame, session, source.skin) if self.wants_pixels else None
        loop = target[MOUTH_LOOP, :2]
        size = out.shape[0]
        x0, y0 = np.maximum(np.floor(loop.min(0)).astype(int) - 3, 0)
        x1, y1 = np.minimum(np.ceil(loop.max(0)).astype(int) + 4, size)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return out
        hole = mouth_opening(target, (y1 - y0, x1 - x0), (x0, y0))
        if hole.max() <= 0.01:
            return out
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        window = _Window(int(x0), int(y0), xs, ys)
        # The source's own interior: its upper half with the head, its lower half with the jaw, each rigid.
        hx, hy = window.mapped(similarity(target[list(lm.RIGID), :2], source.head))
        jx, jy = window.mapped(similarity(target[list(JAW), :2], source.jaw))
        # A crack of a source mouth is kept as it is, and fades out as the mouth opens to twice its gap.
        keep = 1.0 if source.shows_inside else float(np.clip(2.0 - mouth_gap(target) / max(source.gap, 1e-6), 0, 1))
        w_up = np.minimum(hole, keep * cv2.remap(source.upper, hx, hy, cv2.INTER_LINEAR))
        w_low = np.minimum(hole - w_up, keep * cv2.remap(source.lower, jx, jy, cv2.INTER_LINEAR))
        w_fill = np.maximum(hole - w_up - w_low, 0.0)
        region = out[y0:y1, x0:x1].astype(np.float32)
        result = region * (1.0 - hole)[..., None]
        for weight, mx, my in ((w_up, hx, hy), (w_low, jx, jy)):
            if weight.max() > 0.0:
                own = cv2.remap(source.image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                result += weight[..., None] * own.astype(np.float32)
        if w_fill.max() > 0.0:
            fill = self._fill(source, target, window, driver)
            # Feathered a pixel beyond the outline, so the new inside meets the lips without a hard edge.
            result += w_fill[..., None] * fill
            feather = np.clip(cv2.GaussianBlur(w_fill, (3, 3), 0) - w_fill, 0.0, 1.0)[..., None]
            result = result * (1.0 - feather) + feather * fill
        out = out.copy()
        out[y0:y1, x0:x1] = np.clip(result + 0.5, 0, 255).astype(np.uint8)
        return out

    def _fill(self, source: SourceMouth, target: np.ndarray, window: _Window, driver) -> np.ndarray:
        if self.mode == "source":
            return _cavity(source, target, window)
        drawn = None
        alpha = 0.0
        if driver is not None:
            alpha = _driver_share(driver[1], target)
        if alpha < 1.0:
            drawn = draw_interior(source, target, window)
        if alpha <= 0.0:
            return drawn
        taken = _driver_interior(driver, target, window)
        return taken if drawn is None else alpha * taken + (1.0 - alpha) * drawn

    def _driver(self, frame: MotionFrame | None, session: dict, source_skin: np.ndarray) -> tuple | None:
        """(crop, landmarks, colour gains) of the driver's mouth for this frame, smoothed over time, or the last
        ones seen when this frame has none (a lost face); None when the motion never had pixels."""
        kept = session.get("mouth_driver")
        if frame is None or frame.crop is None or frame.crop_landmarks is None:
            return None if kept is None else kept["driver"]
        points = frame.crop_landmarks[:, :2].astype(np.float64)
        gains = None
        if kept is not None and kept["shot"] == frame.shot and kept["size"] == frame.crop.shape[:2]:
            # Landmark jitter on a still driver would make its teeth shimmer: small moves are eased, big ones kept.
            before = kept["driver"][1]
            step = np.linalg.norm(points - before, axis=1, keepdims=True)
            points = before + np.clip(step / STILL_JITTER, STILL_EASE, 1.0) * (points - before)
            gains = kept["driver"][2]
        own = _colour_gains(source_skin, skin_colour(frame.crop, points))
        gains = own if gains is None else gains + GAIN_EASE * (own - gains)
        driver = (frame.crop, points, gains)
        session["mouth_driver"] = {"shot": frame.shot, "size": frame.crop.shape[:2], "driver": driver}
        return driver


def _colour_gains(source_skin: np.ndarray, driver_skin: np.ndarray) -> np.ndarray:
    """Per-channel gains taking the driver's light to the source's, judged on their skins: the brightness ratio in
    full, the colour ratio only halfway (part of a skin's colour is the person's own, not the light's: white teeth
    should not turn as orange as the skin of a warm photo)."""
    light = max(float(_luma(source_skin)), 1.0) / max(float(_luma(driver_skin)), 1.0)
    tint = (source_skin / max(float(_luma(source_skin)), 1.0)) / np.maximum(driver_skin / max(float(
        _luma(driver_skin)), 1.0), 1e-3)
    return np.clip(light * np.sqrt(tint), *GAIN_RANGE).astype(np.float32)


def _driver_share(points: np.ndarray, target: np.ndarray) -> float:
    """How much of the fill comes from the driver: all of it while the driver's mouth is at least half as open as
    the target's (at the target's scale), none when the driver's is shut (its opening holds only lips)."""
    width_t, width_d = _mouth_width(target), _mouth_width(points)
    if width_d < 1.0:
        return 0.0
    gap = mouth_gap(points) * width_t / width_d
    return float(np.clip((gap - OPEN_GAP) / max(0.5 * mouth_gap(target), 1e-6), 0.0, 1.0))


def _driver_interior(driver: tuple, target: np.ndarray, window: _Window) -> np.ndarray:
    """The driver's mouth interior over the window: each target pixel inside the opening takes the driver's pixel
    at the same place of the driver's opening (piecewise affine over the opening's triangles, so the outline lands
    on the outline); pixels beyond it, the overall affine fit of the two outlines. In the source's colours."""
    image, points, gains = driver
    target_loop = target[MOUTH_LOOP, :2]
    fit, _ = cv2.estimateAffine2D(target_loop.astype(np.float32), points[MOUTH_LOOP].astype(np.float32),
                                  method=cv2.LMEDS)
    if fit is None:
        fit = similarity(target_loop, points[MOUTH_LOOP])
    map_x, map_y = window.mapped(fit)
    backward_map(target, points, lm.MOUTH_HOLE_TRIANGLES, map_x, map_y, 1, origin=(window.x0, window.y0))
    taken = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return taken.astype(np.float32) * gains


def _mouth_frame(target: np.ndarray, window: _Window) -> tuple[np.ndarray, np.ndarray, float, np.ndarray,
                                                                  np.ndarray]:
    """The window in the mouth's own coordinates: u along the inner lips' corner-to-corner line (0 … 1), v across
    it (down, in widths); the width in pixels; the upper and lower inner lip's v at each pixel's u."""
    a, b = target[lm.INNER_LIP_UPPER[0], :2], target[lm.INNER_LIP_UPPER[-1], :2]
    axis = b - a
    width = max(float(np.hypot(*axis)), 1e-6)
    along, down = axis / width, np.array([-axis[1], axis[0]]) / width
    if down[1] < 0:  # a picture upside down: "down" still points from the upper lip to the lower
        down = -down
    dx, dy = window.xs - a[0], window.ys - a[1]
    u = (dx * along[0] + dy * along[1]) / width
    v = (dx * down[0] + dy * down[1]) / width
    rows = []
    for contour in (lm.INNER_LIP_UPPER, lm.INNER_LIP_LOWER):
        pts = target[list(contour), :2] - a
        pu, pv = pts @ along / width, pts @ down / width
        order = np.argsort(pu)
        rows.append(np.interp(u, pu[order], pv[order]).astype(np.float32))
    return u, v, width, rows[0], rows[1]


def _cavity(source: SourceMouth, target: np.ndarray, window: _Window) -> np.ndarray:
    """The shaded gap: the back of the mouth, darkest in the middle, lighter towards the lips and corners."""
    u, v, width, top, bottom = _mouth_frame(target, window)
    middle = 0.5 * (top + bottom)
    half = np.maximum(0.5 * (bottom - top), 1e-3)
    across = np.clip((v - middle) / half, -1.0, 1.0)
    side = np.clip(np.abs(u - 0.5) / 0.5, 0.0, 1.0)
    light = 1.0 + 0.6 * across**2 + 0.4 * side**2
    return (CAVITY_DARK * source.lips)[None, None, :] * light[..., None]


def _teeth_row(u: np.ndarray, depth: np.ndarray, widths: tuple[float, ...], height: float,
               px: float) -> tuple[np.ndarray, np.ndarray]:
    """A row of teeth (coverage, shading) hanging ``depth`` into the opening from its lip (in widths): each tooth
    a rounded-tipped band; the row shorter and darker towards the corners; thin dark lines between teeth."""
    off = np.abs(u - 0.5)
    edges = np.concatenate([[0.0], np.cumsum(widths)])
    k = np.clip(np.searchsorted(edges, off, side="right") - 1, 0, len(widths) - 1)
    t = np.clip((off - edges[k]) / np.asarray(widths)[k], 0.0, 1.0)  # 0 … 1 across each tooth
    side = np.clip(off / TEETH_SPAN, 0.0, 1.0)
    reach = height * (1.0 - 0.35 * side**2) * (1.0 - 0.3 * np.abs(2.0 * t - 1.0) ** 4)
    cover = np.clip((reach - depth) * px + 0.5, 0.0, 1.0) * np.clip(depth * px + 0.5, 0.0, 1.0)
    cover *= np.clip((TEETH_SPAN - off) * px + 0.5, 0.0, 1.0)
    gap = np.minimum(off - edges[k], edges[k + 1] - off) * px  # pixels to the nearest edge between teeth
    shade = (1.0 - 0.55 * side**2) * (1.0 - 0.18 * np.exp(-((gap / 0.6) ** 2)))
    shade *= 0.85 + 0.15 * np.clip(depth / 0.05, 0.0, 1.0)  # in the lip's shadow near the lip
    return cover, shade


def draw_interior(source: SourceMouth, target: np.ndarray, window: _Window) -> np.ndarray:
    """A drawn mouth interior over the window (float32 RGB): the shaded gap, the tongue resting behind the lower
    teeth, the lower row, and the upper row on top, each in the source's colours and placed by the inner lips."""
    u, v, width, top, bottom = _mouth_frame(target, window)
    out = _cavity(source, target, window)
    gap = np.maximum(bottom - top, 0.0)
    # The tongue: a low dome on the floor of the mouth, under half the gap high.
    dome = np.sqrt(np.clip(1.0 - ((u - 0.5) / TONGUE_HALF_WIDTH) ** 2, 0.0, 1.0))
    tongue_top = bottom - np.minimum(TONGUE_HEIGHT, 0.45 * gap) * dome
    tongue = np.clip((v - tongue_top) * width + 0.5, 0.0, 1.0) * (dome > 0)
    tongue_rgb = 0.55 * source.lips + 0.45 * TONGUE_TINT * _luma(source.lips) / _luma(TONGUE_TINT)
    lit = 0.55 + 0.35 * np.clip((v - tongue_top) / 0.08, 0.0, 1.0) * (1.0 - 0.6 * np.abs(u - 0.5) / 0.5)
    out = out * (1.0 - tongue[..., None]) + tongue[..., None] * (tongue_rgb[None, None, :] * lit[..., None])
    if source.shows_inside:  # the source's own teeth are drawn over this, where they are: no second set
        return out.astype(np.float32)
    # Slightly parted lips show the upper teeth's edges; the lower row shows as the mouth opens further.
    lower_shows = np.clip((gap - LOWER_SHOWS[0]) / (LOWER_SHOWS[1] - LOWER_SHOWS[0]), 0.0, 1.0)
    for depth, widths, height, dim in ((bottom - v, LOWER_TEETH, LOWER_HEIGHT * lower_shows, 0.8),
                                       (v - top, UPPER_TEETH, UPPER_HEIGHT, 1.0)):
        cover, shade = _teeth_row(u, depth, widths, height, width)
        colour = source.teeth[None, None, :] * (dim * shade)[..., None]
        out = out * (1.0 - cover[..., None]) + cover[..., None] * colour
    return out.astype(np.float32)
