"""The benchmark end to end: reports exist and parse; our own render, benchmarked, has small errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from enliven.cli import main
from enliven.engines.base import SourceState
from enliven.evaluation import runner
from enliven.evaluation.report import write_report
from enliven.evaluation.runner import Series
from enliven.face.crop import CropSpec
from enliven.face.paste import feathered_mask


def test_self_reenactment_of_our_own_render(tmp_path, driving_video, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(driving_video, videos / "demo.mp4")  # the portrait animated by the demo preset
    out = tmp_path / "report"
    assert main(["-q", "bench", "self", str(videos), "--engines", "mesh", "-o", str(out)]) == 0
    data = json.loads((out / "report.json").read_text())
    mesh = data["overall"]["mesh"]
    assert data["kind"] == "self" and mesh["frames"] == 125
    # Re-animating a mesh-engine clip from its own first frame: expression and pose come back closely.
    assert mesh["lmd"] < 0.03 and mesh["lip_error"] < 0.03 and mesh["eye_error"] < 0.05
    assert max(mesh["yaw_error"], mesh["pitch_error"], mesh["roll_error"]) < 3.0
    assert mesh["identity"] > 0.95 and mesh["ssim"] > 0.9
    assert len(data["per_frame"]["demo.mp4"]["mesh"]["psnr"]) == 125
    assert any("LPIPS: skipped" in line for line in data["skipped"])
    md = (out / "report.md").read_text()
    assert "| mesh |" in md and "LMD" in md
    assert (out / "frames_00.png").stat().st_size > 1000 and (out / "metrics_by_engine.png").stat().st_size > 1000


class _StillEngine:
    """Known bad: holds the source still whatever the driver does (no expression or pose carried over)."""

    name, driving_crop, pose_limits = "still", None, (25.0, 20.0, 30.0)

    def __init__(self, **options):
        pass

    def prepare(self, crop_image, landmarks, session=None):
        return SourceState(crop_image, landmarks, np.zeros(crop_image.shape[:2], np.float32), {})

    def render(self, state, target, frame=None):
        return state.crop_image


class _CopyDriverEngine(_StillEngine):
    """Known bad: pastes the driver's face crop (cut like the source's) over the source's face: expression and pose
    come over perfectly, and so does the driver's identity."""

    name, driving_crop = "copy-driver", CropSpec()

    def prepare(self, crop_image, landmarks, session=None):
        hull = cv2.convexHull(landmarks[:, :2].astype(np.float32))[:, 0]
        size = crop_image.shape[0]
        return SourceState(crop_image, landmarks, feathered_mask(hull, size, 0.05 * size), {})

    def render(self, state, target, frame=None):
        return state.crop_image if frame is None or frame.crop is None else frame.crop


def test_cross_reenactment_report(tmp_path, portrait_path, monkeypatch):
    import matplotlib

    from enliven import api
    from enliven.engines import base
    from enliven.engines.descriptor import EngineDescriptor

    base.descriptors()  # the built-in ones first: the two below are added beside them, for this test only
    for name, factory in (("still", _StillEngine), ("copy-driver", _CopyDriverEngine)):
        monkeypatch.setitem(base._DESCRIPTORS, name, EngineDescriptor(name, "a test's", factory, "nothing"))
    sources, driving = tmp_path / "sources", tmp_path / "driving"
    sources.mkdir()
    driving.mkdir()
    shutil.copy(portrait_path, sources / "collins.png")
    # Another person drives, so identity leaking from the driver can show: Grace Hopper (public domain, shipped with
    # matplotlib) nodding, blinking, talking and smiling, at 10 fps to keep the test short.
    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    api.animate(hopper, "preset:demo", driving / "hopper.mp4", fps=10, progress=False)
    out = tmp_path / "report"
    engines = "mesh,still,copy-driver"
    assert main(["-q", "bench", "cross", str(sources), str(driving), "-o", str(out), "--engines", engines,
                 "--identity-every", "5"]) == 0
    data = json.loads((out / "report.json").read_text())
    name = "collins.png × hopper.mp4"
    case, still, copy = (data["cases"][name][e] for e in engines.split(","))
    assert data["kind"] == "cross" and case["frames"] == 50
    assert case["expression_error"] < 0.05 and case["identity"] > 0.95
    # Whole and in place, on frames 0, 5, … 45: the portrait driven by someone else stays put and itself, within
    # issue 15's targets (found on every frame, shift ≤ 0.15 / 0.25 face widths, ID dist ≤ 0.35 / 0.45).
    assert len(data["per_frame"][name]["mesh"]["face_found"]) == 10
    assert case["face_found"] == 1.0 and "face_missing" not in case
    assert case["face_shift_p90"] <= 0.15 and case["face_shift_max"] <= 0.25
    assert 0.9 < case["face_zoom_min"] <= case["face_zoom_max"] < 1.1
    assert case["id_distance"] <= 0.35 and case["id_distance_max"] <= 0.45
    # The known-bad engines score worse where they are bad. Copying the driver's face takes the driver's identity:
    # dlib's distance to the source rises past the ~0.6 that separates two people and the embedding's cosine drops
    # (measured 0.69 and 0.883 against the mesh engine's 0.18 and 0.992).
    assert copy["id_distance"] > 0.6 and copy["id_distance"] > case["id_distance"] + 0.3
    assert copy["identity"] < case["identity"] - 0.05
    # Holding the source still carries none of the driver's expression over (measured 0.029 against the mesh
    # engine's 0.017), nor its head roll (0.84° against 0.48°). Pitch and yaw do not separate them: the mesh engine's
    # errors there (1.2° and 1.3°) are as large as standing still gives (1.4° and 1.1°).
    assert still["expression_error"] > 1.3 * case["expression_error"]
    assert still["roll_error"] > 1.3 * case["roll_error"]
    md = (out / "report.md").read_text()
    assert "shift p90 ↓" in md and "Targets (issue 15)" in md and "| copy-driver |" in md


def test_cross_report_takes_the_worst_case_of_extremes_across_cases(tmp_path):
    def case(shift_max: float, zoom_min: float, found: list[float]) -> Series:
        s = Series(values={"face_shift_max": [shift_max], "face_zoom_min": [zoom_min], "face_found": found})
        s.counts = {"frames": 10, "face_missing": found.count(0.0)}
        return s

    run = {"kind": "cross", "engines": ["mesh"], "results": {
        "a × x": {"mesh": case(0.10, 0.95, [1.0, 1.0])},
        "b × x": {"mesh": case(0.30, 0.80, [1.0, 0.0])},
    }}
    write_report(run, tmp_path)
    overall = json.loads((tmp_path / "report.json").read_text())["overall"]["mesh"]
    assert overall["face_shift_max"] == 0.30 and overall["face_zoom_min"] == 0.80  # the worse case, not the mean
    assert overall["face_found"] == 0.75 and overall["face_missing"] == 1 and overall["frames"] == 20


def test_cross_without_dlib_measures_says_so(tmp_path, monkeypatch, portrait_path, driving_video):
    sources, driving = tmp_path / "sources", tmp_path / "driving"
    sources.mkdir()
    driving.mkdir()
    shutil.copy(portrait_path, sources / "astronaut.png")
    shutil.copy(driving_video, driving / "demo.mp4")
    seen = {}

    def fake_cross(source, drive, engine, **kwargs):  # no render: only the wiring is under test here
        seen.update(kwargs)
        return Series()

    monkeypatch.setattr(runner, "cross_reenactment", fake_cross)
    run = runner.run_cross(sources, driving, ["mesh"], identity_every=0, progress=False)
    assert seen["dlib_faces"] is None and seen["embed"] is None
    assert sorted(line.split(":")[0] for line in run["skipped"]) == ["identity", "placement"]


def test_bad_folders_are_clear(tmp_path, capsys):
    assert main(["bench", "self", str(tmp_path / "none"), "-o", str(tmp_path / "r")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["bench", "self", str(tmp_path), "-o", str(tmp_path / "r")]) == 2
    assert "no " in capsys.readouterr().err


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_identity_can_be_turned_off_and_is_then_reported_skipped(tmp_path, driving_video):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(driving_video, videos / "demo.mp4")
    out = tmp_path / "report"
    assert main(["-q", "bench", "self", str(videos), "-o", str(out), "--identity-every", "0"]) == 0
    data = json.loads((out / "report.json").read_text())
    assert "identity" not in data["overall"]["mesh"]
    assert any(line.startswith("identity: skipped") for line in data["skipped"])
