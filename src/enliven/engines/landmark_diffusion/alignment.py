"""Follow-Your-Emoji's motion alignment, on our landmark model.

The release (``FaceMeshAlign``) works on MediaPipe's metric canonical mesh and facial transformation matrix:
for each driving frame it keeps the driver's head rotation, moves the source's head by the driver's
translation since its first frame, adds the driver's expression (its mesh minus its most neutral mesh) to
the source's own mesh, projects the result into the source picture, and finally places the irises: each iris
point is normalised inside the driver's eye-contour box (16 points per eye) and mapped into the projected
eye box.

We have the same ingredients in ``face.geometry``'s similarity model (a pose-free canonical shape per frame
plus rotation, scale and translation), so the steps carry over one for one; the release's perspective
projection becomes our scale (a head coming closer grows by the driver's scale ratio). The release picks as
neutral the template frame with the smallest blendshape sum; MediaPipe's legacy face mesh that we run has no
blendshapes, so the caller passes the neutral frame (a motion sequence's ``reference``).
"""

from __future__ import annotations

import numpy as np

from enliven.face import geometry
from enliven.motion.frame import MotionFrame

# The eye-contour points whose box the irises are normalised in, and the iris points (centre first);
# "right" and "left" are the subject's.
RIGHT_EYE_BOX = (33, 7, 163, 144, 145, 153, 154, 155, 246, 161, 160, 159, 158, 157, 173, 133)
LEFT_EYE_BOX = (249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398, 263)
RIGHT_IRIS = (468, 469, 470, 471, 472)
LEFT_IRIS = (473, 474, 475, 476, 477)


def place_irises(points: np.ndarray, driver_points: np.ndarray) -> np.ndarray:
    """``points`` with each iris moved to where the driver's iris sits inside its eye box, in x and y.

    Both arrays are (478, ≥2) in any units each (the mapping goes through box-relative positions); depth is
    left as it was. A driver eye box of zero width or height (a fully shut eye drawn as a line) keeps the
    iris at the box's middle along that axis, instead of dividing by zero as the release would.
    """
    out = np.array(points, np.float64, copy=True)
    driver = np.asarray(driver_points, np.float64)
    for iris, box in ((RIGHT_IRIS, RIGHT_EYE_BOX), (LEFT_IRIS, LEFT_EYE_BOX)):
        d_lo, d_hi = driver[list(box), :2].min(0), driver[list(box), :2].max(0)
        t_lo, t_hi = out[list(box), :2].min(0), out[list(box), :2].max(0)
        span = d_hi - d_lo
        rel = np.where(span > 0, (driver[list(iris), :2] - d_lo) / np.where(span > 0, span, 1.0), 0.5)
        out[list(iris), :2] = rel * (t_hi - t_lo) + t_lo
    return out


def align_frame(source: MotionFrame, driver: MotionFrame, neutral: MotionFrame, first: MotionFrame) -> np.ndarray:
    """The 478 landmarks (source pixels) Follow-Your-Emoji would draw for ``driver``.

    ``source``: the portrait's own motion frame; ``neutral``: the driver's most neutral frame, whose shape is
    subtracted to leave expression; ``first``: the driver's first frame, which translation and size are
    measured from.
    """
    shape = driver.shape.astype(np.float64) - neutral.shape + source.shape  # expression retargeted, canonical
    ratio = float(driver.scale) / float(first.scale)
    # the driver's displacement since its first frame, in its own pixels, carried over at the source's size
    shift = (driver.translation.astype(np.float64) - first.translation) * (float(source.scale) / float(first.scale))
    pose = geometry.Pose(driver.rotation.astype(np.float64), float(source.scale) * ratio,
                         source.translation.astype(np.float64) + shift)
    return place_irises(geometry.from_canonical(shape, pose), driver.landmarks())
