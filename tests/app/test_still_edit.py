"""The Edit tab's live update: ``Animation.still`` on a prepared picture (mesh engine), timed on this machine."""

from __future__ import annotations

import time

import numpy as np

from enliven import api
from enliven.motion.align import Controls

LIVE_LIMIT_S = 0.25  # one update, well under a second on 2 shared cores (measured ~35 ms)


def test_still_edits_are_fast_and_only_change_the_face(portrait, portrait_face):
    job = api.prepare_animation(portrait, "preset:blink", progress=False)
    rest = job.still(Controls())
    assert np.abs(rest.astype(int) - portrait).mean() < 1  # no edit: the picture as it was
    times, smiles = [], []
    for smile in (0.4, 0.8, 1.2):
        started = time.perf_counter()
        smiles.append(job.still(Controls(smile=smile)))
        times.append(time.perf_counter() - started)
    print(f"still edit: median {1000 * sorted(times)[1]:.0f} ms")
    assert sorted(times)[1] < LIVE_LIMIT_S
    changes = [np.abs(s.astype(int) - rest).max(axis=2) > 20 for s in smiles]
    assert changes[0].sum() < changes[1].sum() < changes[2].sum()  # a larger smile moves more of the picture
    rows, cols = np.nonzero(changes[2])
    (left, top), (right, bottom) = portrait_face.landmarks[:, :2].min(0), portrait_face.landmarks[:, :2].max(0)
    assert top - 5 < rows.min() and rows.max() < bottom + 5 and left - 5 < cols.min() and cols.max() < right + 5


def test_the_animate_tabs_mouth_and_wrinkles_reach_the_mesh_engine_only(tmp_path):
    """The page's mouth and wrinkle choices become the mesh engine's options (a run with them renders), and are
    left out for other engines, which have no such options."""
    import pytest

    page = pytest.importorskip("enliven.app.page")
    common = dict(relative=True, multiplier=1.0, smooth=True, normalize_lip=False, fps=0, face_index=0,
                  all_faces=False, driver_face="auto", reference="neutral", follow_camera=False, crop_scale=2.3,
                  audio=True, crf=18, mouth="synth", wrinkles=0.5, controls=Controls())
    mesh = page._options("mesh", **common)
    assert mesh["engine_options"] == {"mouth": "synth", "wrinkles": 0.5}
    assert page._options("keypoint", **common)["engine_options"] == {}
    result = api.animate(api.bundled_portrait(), "preset:talk", tmp_path / "talk.mp4", **{**mesh, "fps": 5})
    assert result.frames > 0
