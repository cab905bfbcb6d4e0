"""Video-mode face analysis on its cheap path: once the number of faces holds, a mesh limited to that many follows
them (no face detector on every frame) — the same landmarks as the full mesh, and new faces still found."""

from __future__ import annotations

import numpy as np

from enliven.face.analyzer import FaceAnalyzer

from conftest import read_frames


def _landmarks(frames, settled=None):
    with FaceAnalyzer(static=False, max_faces=4) as analyzer:
        if settled is not None:
            analyzer.SETTLED = settled  # an instance setting: never settle = the full mesh (and detector) every frame
        return [[f.landmarks for f in analyzer.detect(image)] for image in frames]


def test_the_limited_mesh_follows_a_face_as_the_full_mesh_does(driving_video):
    frames = read_frames(driving_video)[:60]
    full = _landmarks(frames, settled=10**9)
    cheap = _landmarks(frames)
    assert [len(f) for f in full] == [len(f) for f in cheap] == [1] * 60
    worst = max(float(np.abs(a[0] - b[0]).max()) for a, b in zip(full, cheap))
    assert worst < 0.5  # pixels, on a 512² clip (MediaPipe's own frame-to-frame jitter is about a pixel)


def test_a_face_walking_in_is_found_within_the_recheck(portrait):
    """Grace Hopper (US Navy photo, public domain, shipped with matplotlib) slides into the picture beside the
    portrait (no cut: the picture changes little from frame to frame) while the portrait's face is followed by the
    limited mesh: she is found within RECHECK frames of being whole in the picture, and both stay found."""
    import cv2
    import matplotlib

    from enliven.io.images import read_image

    hopper = read_image(f"{matplotlib.get_data_path()}/sample_data/grace_hopper.jpg")[44:556, :]
    h, w = portrait.shape[:2]
    hopper = cv2.resize(hopper, (w, h))
    frames = []
    for t in range(45):
        canvas = np.full((h, 2 * w, 3), 90, np.uint8)
        canvas[:, :w] = portrait
        x = int(2 * w - min(t, 20) / 20.0 * w)  # she slides in from the right over frames 0-20 ...
        if t >= 10:  # ... shown from frame 10 on, half inside by then
            canvas[:, x:] = hopper[:, : 2 * w - x]
        frames.append(canvas)
    counts = [len(f) for f in _landmarks(frames)]
    assert counts[:10] == [1] * 10
    assert counts.index(2) <= 20 + FaceAnalyzer.RECHECK  # whole in the picture from frame 20 on
    assert counts[counts.index(2):] == [2] * (45 - counts.index(2))


def test_landmarks_read_from_the_message_bytes_equal_protobuf_field_reads(portrait):
    """The face mesh's landmarks are read from the serialised message in one go; the same numbers as reading each
    landmark's x, y, z through protobuf, at picture sizes where the scaling is not exact."""
    from enliven.face import analyzer as an

    with FaceAnalyzer(static=True) as analyzer:
        found = analyzer._mesh.process(np.ascontiguousarray(portrait)).multi_face_landmarks[0]
    for width, height in ((512, 512), (1919, 1077), (333, 701)):
        fields = np.array([(p.x * width, p.y * height, p.z * width) for p in found.landmark], np.float32)
        assert np.array_equal(an._landmarks(found, width, height), fields)


def test_graphs_give_what_mediapipe_s_own_process_gives(driving_video):
    """The analyser runs MediaPipe's graphs without SolutionBase.process (``analyzer._outputs``): in video mode,
    frame after frame, the same landmarks and detections as process() gives on twin graphs."""
    from enliven.face.analyzer import _mediapipe_solutions, _outputs

    face_detection, face_mesh = _mediapipe_solutions()
    frames = read_frames(driving_video)[:12]
    pairs = [
        [face_mesh.FaceMesh(static_image_mode=False, max_num_faces=2, refine_landmarks=True) for _ in range(2)],
        [face_detection.FaceDetection(model_selection=0) for _ in range(2)],
    ]
    try:
        for own, ours in pairs:
            for image in frames:
                theirs, mine = own.process(image), _outputs(ours, image)
                for name in ("multi_face_landmarks", "detections"):
                    if hasattr(theirs, name):
                        a, b = getattr(theirs, name), getattr(mine, name)
                        assert a is not None and [m.SerializeToString() for m in a] == [
                            m.SerializeToString() for m in b]
    finally:
        for graph in (g for pair in pairs for g in pair):
            graph.close()
