"""The benchmark end to end: reports exist and parse; our own render, benchmarked, has small errors."""

from __future__ import annotations

import json
import shutil

import pytest

from enliven.cli import main


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


def test_cross_reenactment_report(tmp_path, driving_video, portrait_path):
    sources, driving = tmp_path / "sources", tmp_path / "driving"
    sources.mkdir()
    driving.mkdir()
    shutil.copy(portrait_path, sources / "astronaut.png")
    shutil.copy(driving_video, driving / "demo.mp4")
    out = tmp_path / "report"
    assert main(["-q", "bench", "cross", str(sources), str(driving), "-o", str(out), "--identity-every", "10"]) == 0
    data = json.loads((out / "report.json").read_text())
    case = data["cases"]["astronaut.png × demo.mp4"]["mesh"]
    assert data["kind"] == "cross" and case["frames"] == 125
    assert case["expression_error"] < 0.05 and case["identity"] > 0.95


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
