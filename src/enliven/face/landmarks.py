"""Named MediaPipe face-mesh landmark indices (478 points with irises) and the regions we use.

Coordinates everywhere in enliven: pixels, x to the right, y down, z away from the camera, with
MediaPipe's normalised z multiplied by the image width so that all three axes share one unit.
"""

from __future__ import annotations

import numpy as np

NUM_LANDMARKS = 478
NUM_MESH = 468

# Eyes: "right" and "left" are the subject's, so the RIGHT_* eye appears on the image's left in a frontal photo.
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (362, 263)
RIGHT_EYE_LIDS = (159, 145)  # upper, lower middle
LEFT_EYE_LIDS = (386, 374)
RIGHT_EYE_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_EYE_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
LEFT_EYE_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
RIGHT_IRIS = tuple(range(468, 473))  # centre first
LEFT_IRIS = tuple(range(473, 478))
RIGHT_BROW = (46, 53, 52, 65, 55, 70, 63, 105, 66, 107)
LEFT_BROW = (276, 283, 282, 295, 285, 300, 293, 334, 296, 336)

# Mouth: inner contour (the hole in the mesh) and outer contour, both from corner to corner.
INNER_LIP_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LIP_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
OUTER_LIP_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
OUTER_LIP_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
MOUTH_CORNERS = (61, 291)
INNER_LIP_MIDDLE = (13, 14)  # upper, lower

# Closed loop around the face, in order.
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)

# Points that move with the skull but hardly with expression: forehead, nose bridge and tip,
# outer eye corners, cheekbones, temples. Pose is fitted on these only.
RIGID = (
    10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 33, 263, 133, 362, 234, 454, 127, 356, 93, 323,
    116, 345, 50, 280, 98, 327, 64, 294, 2, 109, 338, 67, 297, 103, 332, 21, 251,
)

CHIN = 152


def strip_triangles(upper: tuple[int, ...], lower: tuple[int, ...]) -> np.ndarray:
    """Triangles filling the hole between two contours that share their end points."""
    tris = []
    for i in range(len(upper) - 1):
        a, b = upper[i], upper[i + 1]
        c, d = lower[i], lower[i + 1]
        if a == c:
            tris.append((a, b, d))
        elif b == d:
            tris.append((a, b, c))
        else:
            tris.extend([(a, b, d), (a, d, c)])
    return np.array(tris, dtype=np.int32)


EYE_HOLE_TRIANGLES = np.concatenate(
    [strip_triangles(RIGHT_EYE_UPPER, RIGHT_EYE_LOWER), strip_triangles(LEFT_EYE_UPPER, LEFT_EYE_LOWER)]
)
MOUTH_HOLE_TRIANGLES = strip_triangles(INNER_LIP_UPPER, INNER_LIP_LOWER)
