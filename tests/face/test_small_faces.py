"""Small faces in video (a full-body shot: the face about 6 % of a 720x1080 frame's width).

The face mesh's own short-range detector does not see such faces; video mode looks for them with the full-range
detector and then follows them from frame to frame on an upscaled crop. The clips are built here from
public-domain photos (the bundled NASA portrait; Grace Hopper, US Navy), placed by a known affine map, so the
expected positions come from the placement, not from the code under test.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from enliven import api
from enliven.face.analyzer import FaceAnalyzer
from enliven.io.images import read_image
from enliven.io.video import VideoWriter

W, H = 720, 1080  # a portrait-orientation full-body frame
FRAMES = 25
# Read by eye off the bundled 512x512 portrait (its pupils and the middle of the lip gap), to about 1 px.
PUPILS = np.array([(203.0, 101.0), (246.0, 103.0)])  # as seen left to right
MOUTH = np.array((223.0, 145.0))
FACE_WIDTH = 92.0  # the portrait's face, cheek to cheek, in its own pixels
SCALE = 0.47  # -> a 43 px face, 6 % of the frame's width
START = np.array((300.0, 260.0))  # where the portrait's top-left corner lands in frame 0
SPEED = np.array((1.5, 0.5))  # px per frame: a person walking slowly


def placement(t: int, start=START, speed=SPEED, scale=SCALE) -> np.ndarray:
    """The 2x3 map from the photo's pixels to frame ``t``'s."""
    x, y = start + speed * t
    return np.array([[scale, 0.0, x], [0.0, scale, y]])


def place(photo: np.ndarray, m: np.ndarray, background: np.ndarray) -> np.ndarray:
    warped = cv2.warpAffine(photo, m, (W, H), flags=cv2.INTER_AREA)
    inside = cv2.warpAffine(np.ones(photo.shape[:2], np.float32), m, (W, H))[..., None]
    return np.clip(warped * inside + background * (1 - inside) + 0.5, 0, 255).astype(np.uint8)


def write_video(path: Path, frames: list[np.ndarray], fps: int = 25) -> None:
    with av.open(str(path), "w") as dst:
        stream = dst.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "0"}  # only the 4:2:0 chroma loss: decoded frames are the input
        for image in frames:
            for p in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                dst.mux(p)
        for p in stream.encode():
            dst.mux(p)


def read_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points, float) @ m[:, :2].T + m[:, 2]


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory) -> Path:
    """The portrait's face at 43 px on a plain background, drifting right and down."""
    portrait = read_image(api.bundled_portrait())
    background = np.full((H, W, 3), (118, 128, 140), np.uint8)
    path = tmp_path_factory.mktemp("small") / "small_face.mp4"
    write_video(path, [place(portrait, placement(t), background) for t in range(FRAMES)])
    return path


@pytest.fixture(scope="module")
def small_frames(small_clip) -> list[np.ndarray]:
    return read_frames(small_clip)


@pytest.mark.parametrize("max_faces", [1, 4])  # the video-source path asks for 1, the tracking stage for 4
def test_a_small_face_is_found_and_followed_in_video_mode(small_frames, max_faces):
    with FaceAnalyzer(static=False, max_faces=max_faces) as analyzer:
        found = [analyzer.detect(image) for image in small_frames]
    assert [len(faces) for faces in found] == [1] * FRAMES  # found in every frame, and only once
    for t, faces in enumerate(found):
        pupils = faces[0].landmarks[[468, 473], :2]  # MediaPipe's iris centres
        assert np.abs(pupils - apply(placement(t), PUPILS)).max() < 2.5, t
    # The motion itself (1.5, 0.5) px per frame, to well under a pixel over the clip.
    moved = (found[-1][0].landmarks[:, :2] - found[0][0].landmarks[:, :2]).mean(0)
    assert np.abs(moved - SPEED * (FRAMES - 1)).max() < 1.0
    width = found[0][0].box[2] - found[0][0].box[0]
    assert width == pytest.approx(FACE_WIDTH * SCALE, rel=0.15)


def test_a_tracked_face_needs_no_detector_run_per_frame(small_frames):
    """The full-range detector runs to find the face, then the crop follows the landmarks. A black frame loses
    the face (the detector is spared there: a blank picture holds no face) and the detector looks again on the
    next frame, which has the face."""
    black = np.zeros_like(small_frames[0])
    with FaceAnalyzer(static=False, max_faces=4) as analyzer:
        ran = _detector_ran(analyzer)
        assert [ran(image) for image in small_frames[:10]] == [(1, True)] + [(1, False)] * 9
        assert ran(black) == (0, False)
        assert ran(small_frames[10]) == (1, True)
        assert ran(small_frames[11]) == (1, False)
        background = np.full_like(black, 128)
        background[500:520, 300:400] = 200  # not blank, and no face: the detector looks, every frame
        assert [ran(background) for _ in range(3)] == [(0, True)] * 3


def test_a_big_face_costs_nothing_extra(portrait):
    """Where the face mesh finds the face itself, the full-range detector never runs, even asked for 4 faces."""
    with FaceAnalyzer(static=False, max_faces=4) as analyzer:
        ran = _detector_ran(analyzer)
        assert [ran(portrait) for _ in range(5)] == [(1, False)] * 5


def _detector_ran(analyzer: FaceAnalyzer):
    """``detect`` as (faces found, whether the full-range detector ran), watching the analyzer's detector."""
    calls = [0]
    detector = getattr(analyzer, "_detector", None)
    if detector is not None:
        process = detector.process

        def counted(image):
            calls[0] += 1
            return process(image)

        detector.process = counted

    def detect(image):
        before = calls[0]
        return len(analyzer.detect(image)), calls[0] > before

    return detect


def test_a_face_growing_into_the_mesh_own_range_is_returned_once():
    """A zoom from a 43 px face to a 330 px one: followed while small, found by the mesh itself once big; a face
    seen by both must come back once, at the size the zoom gives it."""
    portrait = read_image(api.bundled_portrait())
    background = np.full((H, W, 3), (90, 100, 90), np.uint8)
    scales = np.geomspace(SCALE, 3.6, 20)
    centre = np.array((W / 2, 420.0))
    face_centre = np.array((224.0, 124.0))  # between the eyes and the mouth, in the photo
    with FaceAnalyzer(static=False, max_faces=4) as analyzer:
        for s in scales:
            m = placement(0, start=centre - s * face_centre, speed=np.zeros(2), scale=s)
            faces = analyzer.detect(place(portrait, m, background))
            assert len(faces) == 1, s
            width = faces[0].box[2] - faces[0].box[0]
            assert width == pytest.approx(FACE_WIDTH * s, rel=0.15), s


def test_a_small_face_in_a_video_source_is_animated_in_place(tmp_path, small_clip, small_frames):
    out = tmp_path / "edited.mp4"
    result = api.animate(small_clip, "preset:talk", out, progress=False)
    edited = read_frames(out)
    assert result.frames == len(edited) == FRAMES
    mouth_change, far_change, far_masks = [], [], []
    for t, (a, b) in enumerate(zip(edited, small_frames)):
        diff = np.abs(a.astype(int) - b).mean(-1)
        mx, my = np.round(apply(placement(t), MOUTH)).astype(int)
        mouth_change.append(diff[my - 5 : my + 6, mx - 8 : mx + 9].mean())  # the lips, ~17 x 11 px
        far = np.ones(diff.shape, bool)  # farther than two face widths from the face
        cx, cy = apply(placement(t), (PUPILS.mean(0) + MOUTH) / 2)
        reach = 2 * FACE_WIDTH * SCALE
        far[max(0, int(cy - reach)) : int(cy + reach), max(0, int(cx - reach)) : int(cx + reach)] = False
        far_change.append(diff[far].mean())
        far_masks.append(far)
    assert max(mouth_change) > 6.0  # the preset talks: the lips move
    baseline = tmp_path / "baseline.mp4"  # what re-encoding alone does to the source (crf 18, as the output)
    with VideoWriter(baseline, 25) as writer:
        for image in small_frames:
            writer.write(image)
    for t, (a, b) in enumerate(zip(read_frames(baseline), small_frames)):
        far_change[t] -= np.abs(a.astype(int) - b).mean(-1)[far_masks[t]].mean()
    assert max(far_change) < 0.3  # away from the face the picture is the source


@pytest.fixture(scope="module")
def small_driver(tmp_path_factory) -> Path:
    """Grace Hopper (US Navy, public domain) at a 6 % face over a blurred room, nodding slightly and walking."""
    import matplotlib

    hopper = read_image(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))
    room = cv2.GaussianBlur(cv2.resize(hopper, (W, H)), (0, 0), 40)
    frames = []
    for t in range(FRAMES):
        m = placement(t, start=np.array((250.0, 300.0)), speed=np.array((-1.0, 0.3)), scale=0.24)
        angle = 4.0 * np.sin(2 * np.pi * t / FRAMES)  # a small roll about her face
        r = cv2.getRotationMatrix2D((256.0, 230.0), angle, 1.0)
        m3 = np.vstack([m, (0, 0, 1)]) @ np.vstack([r, (0, 0, 1)])
        frames.append(place(hopper, m3[:2], room))
    path = tmp_path_factory.mktemp("driver") / "small_driver.mp4"
    write_video(path, frames)
    return path


def test_a_small_driving_face_drives_a_portrait(tmp_path, portrait_path, small_driver):
    out = tmp_path / "driven.mp4"
    result = api.animate(portrait_path, small_driver, out, progress=False)
    assert result.frames == FRAMES
    assert result.lost_frames <= 2
