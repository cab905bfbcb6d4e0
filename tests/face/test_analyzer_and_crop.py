"""Face analysis on the bundled portrait, crop transforms and the paste-back mask."""

from __future__ import annotations

import numpy as np
import pytest

from enliven.face.analyzer import FaceAnalyzer
from enliven.face.crop import face_crop
from enliven.face.paste import Paster, feathered_mask


def test_portrait_face_is_found_with_irises_and_plausible_measures(portrait_face, portrait):
    assert portrait_face.landmarks.shape == (478, 3)
    x0, y0, x1, y1 = portrait_face.box
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 200  # the astronaut's face, upper middle
    yaw, pitch, roll = portrait_face.pose.angles()
    assert abs(yaw) < 10 and abs(pitch) < 10 and abs(roll) < 10  # a frontal portrait
    assert np.all((portrait_face.eye_open > 0.2) & (portrait_face.eye_open < 0.5))
    assert 0.05 < portrait_face.lip_open < 0.3  # smiling with the teeth showing


def test_all_faces_largest_first(portrait):
    import cv2

    # Two heads that fill a good part of the picture: the face mesh's short-range detector finds both
    # (smaller faces in wide pictures are the full-range detector's job).
    head = portrait[20:276, 100:356]
    canvas = np.full((512, 512, 3), 200, np.uint8)
    canvas[128:384, 0:256] = head
    canvas[150:330, 300:480] = cv2.resize(head, (180, 180))
    with FaceAnalyzer(static=True, max_faces=4) as analyzer:
        faces = analyzer.detect(canvas)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area
    assert faces[0].box[2] < 256 and faces[1].box[0] > 300  # the big head is the left one


def test_crop_transforms_are_inverse_and_upright(portrait_face):
    crop = face_crop(portrait_face.landmarks, size=512)
    pts = portrait_face.landmarks
    np.testing.assert_allclose(crop.to_original(crop.to_crop(pts)), pts, atol=1e-6)
    c = crop.to_crop(pts)
    eyes_y = (c[33, 1] + c[263, 1]) / 2
    mouth = (c[61] + c[291]) / 2
    eyes_x = (c[33, 0] + c[263, 0]) / 2
    assert abs(mouth[0] - eyes_x) < 1.0  # eyes→mouth is vertical in the crop
    face_h = c[152, 1] - c[10, 1]
    assert 0.3 * 512 < face_h < 0.6 * 512  # ~2.3x the face around it
    assert eyes_y < 256  # the crop centre is shifted up the face (vy < 0), so the eyes sit above the middle


def test_rotated_face_crop_is_deskewed(portrait):
    import cv2

    m = cv2.getRotationMatrix2D((256, 256), 30, 1.0)
    rotated = cv2.warpAffine(portrait, m, (512, 512), borderMode=cv2.BORDER_REFLECT)
    with FaceAnalyzer(static=True) as analyzer:
        face = analyzer.detect(rotated)[0]
    c = face_crop(face.landmarks).to_crop(face.landmarks)
    angle = np.degrees(np.arctan2(c[263, 1] - c[33, 1], c[263, 0] - c[33, 0]))
    assert abs(angle) < 5


def test_feathered_mask_and_exact_copy_outside(portrait_face, portrait):
    crop = face_crop(portrait_face.landmarks)
    square = np.array([[200, 200], [312, 200], [312, 312], [200, 312]], float)
    mask = feathered_mask(square, 512, feather=30)
    assert mask[256, 256] == 1.0 and mask[5, 5] == 0.0
    assert 0 < mask[256, 325] < 1  # the feather
    paster = Paster(crop, mask, portrait.shape[:2])
    noise = np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    out = paster.paste(portrait, noise)
    outside = np.ones(portrait.shape[:2], bool)
    outside[paster.roi] = paster.mask[..., 0] == 0
    assert np.array_equal(out[outside], portrait[outside])
    assert not np.array_equal(out, portrait)


@pytest.mark.parametrize("shape", [(511, 333), (301, 277)])
def test_paste_handles_odd_sizes(shape, portrait_face):
    crop = face_crop(portrait_face.landmarks)
    frame = np.zeros((*shape, 3), np.uint8)
    mask = np.ones((512, 512), np.float32)
    out = Paster(crop, mask, shape).paste(frame, np.full((512, 512, 3), 255, np.uint8))
    assert out.shape == frame.shape and out.max() == 255


def test_big_faces_are_cropped_without_aliasing(portrait_face):
    """Fine stripes shrunk 6x must average out to grey, not beat into moire."""
    import cv2

    stripes = np.zeros((2048, 2048, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: nothing of them survives a proper 6x shrink but their mean
    crop = face_crop(portrait_face.landmarks * 4.0, size=128)  # a ~840 px face region → 128 px
    ours = crop.cut(stripes).astype(float)
    naive = cv2.warpAffine(stripes, crop.o2c, (128, 128), flags=cv2.INTER_LINEAR).astype(float)
    inner = (slice(8, -8), slice(8, -8))
    assert abs(ours[inner].mean() - 127.5) < 8 and ours[inner].std() < 15
    assert naive[inner].std() > 40  # what bilinear sampling alone does


@pytest.mark.parametrize("size", [128, 48])  # the picture averaged down about 6.6x and 17.6x (whole blocks)
@pytest.mark.parametrize("turn", [0.0, 20.0])
def test_a_small_crop_of_a_big_picture_samples_where_its_transform_says(portrait_face, size, turn):
    """On a picture that is a linear ramp, any average of pixels equals the ramp at their centre: each crop pixel
    must then read the ramp at the place ``c2o`` maps it to (a misplaced average shows as an offset)."""
    import cv2

    h = w = 2048
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    ramp = np.stack([10 + 0.1 * xs, 10 + 0.1 * ys, np.full_like(xs, 128)], -1)
    turned = cv2.getRotationMatrix2D((256.0, 256.0), turn, 1.0)
    points = portrait_face.landmarks[:, :2] @ turned[:, :2].T + turned[:, 2]
    crop = face_crop(points * 4.0, size=size)
    assert np.sqrt(abs(np.linalg.det(crop.o2c[:, :2]))) < 0.5  # the averaging path
    cut = crop.cut(np.round(ramp).astype(np.uint8)).astype(np.float64)
    v, u = np.mgrid[0:size, 0:size]
    where = crop.to_original(np.stack([u.ravel(), v.ravel()], 1).astype(np.float64))
    expected = np.stack([10 + 0.1 * where[:, 0], 10 + 0.1 * where[:, 1]], 1).reshape(size, size, 2)
    error = (cut[..., :2] - expected)[4:-4, 4:-4]
    assert np.abs(error.mean(axis=(0, 1))).max() < 0.2  # no offset (a half-block one would be 0.3 to 0.8)
    assert np.abs(error).max() < 1.5  # rounding to whole levels, twice


def test_small_faces_in_a_wide_picture_are_found(portrait):
    """Two portraits side by side at 528 px: the face mesh's own detector finds neither; we find both."""
    import cv2

    half = cv2.resize(portrait, (528, 528))
    wide = np.concatenate([half, np.full((528, 192, 3), 200, np.uint8), half], axis=1)
    with FaceAnalyzer(static=True, max_faces=4) as analyzer:
        faces = sorted(analyzer.detect(wide), key=lambda f: f.box[0])
    assert len(faces) == 2
    with FaceAnalyzer(static=True) as analyzer:
        alone = analyzer.detect(half)[0]
    for face, dx in zip(faces, (0, 720)):  # each face's landmarks agree with the face analysed on its own
        moved = alone.landmarks[:, :2] + (dx, 0)
        assert np.abs(face.landmarks[:, :2] - moved).mean() < 2.0


def test_paste_blends_as_the_mask_says(portrait_face, portrait):
    """Against a float64 computation written here: each pixel is round(crop · m + picture · (1 − m)) with the mask
    warped into the picture (to within one grey level: the paste works in float32 and warps only its region), and
    the picture itself, bit for bit, where m is 0."""
    import cv2

    crop = face_crop(portrait_face.landmarks)
    mask = feathered_mask(np.array([[150, 150], [362, 150], [362, 362], [150, 362]], float), 512, feather=40)
    # A smooth picture: the warp's own fixed-point sub-pixel steps then move no pixel by more than a grey level.
    yy, xx = np.mgrid[0:512, 0:512] / 512.0
    rendered = np.stack([255 * xx, 255 * yy, 128 + 100 * np.sin(6 * xx + 4 * yy)], -1).astype(np.uint8)
    out = Paster(crop, mask, portrait.shape[:2]).paste(portrait, rendered)
    h, w = portrait.shape[:2]
    m = cv2.warpAffine(mask, crop.c2o, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)[..., None].astype(np.float64)
    warped = cv2.warpAffine(rendered, crop.c2o, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    want = np.floor(warped * m + portrait * (1.0 - m) + 0.5)
    diff = np.abs(out.astype(np.float64) - want)
    assert diff.max() <= 1.0 and (diff > 0).mean() < 0.01
    outside = m[..., 0] == 0.0
    assert outside.sum() > 100_000 and np.array_equal(out[outside], portrait[outside])
    assert (m[..., 0] == 1.0).sum() > 2_000 and ((m > 0) & (m < 1)).sum() > 5_000  # inside and feather both tested
