"""The command line: error paths exit 2 with one line and leave no file; the happy paths write outputs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from enliven.cli import main

from conftest import read_frames


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err


@pytest.fixture
def faceless(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.png"
    smooth = np.kron(rng.integers(0, 255, (16, 16, 3)), np.ones((32, 32, 1))).astype(np.uint8)
    Image.fromarray(smooth).save(path)
    return path


def _assert_clean_failure(code, err, folder, expect):
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("enliven:")]
    assert len(lines) == 1 and expect in lines[0], err
    leftovers = [p.name for p in folder.iterdir() if p.suffix in {".mp4", ".png", ".npz"} or ".part" in p.name]
    return leftovers


def test_source_without_a_face(tmp_path, faceless, capsys):
    out = tmp_path / "out" / "o.mp4"
    out.parent.mkdir()
    code, err = _run(["-q", "animate", str(faceless), "preset:blink", "-o", str(out)], capsys)
    assert _assert_clean_failure(code, err, out.parent, "no face found") == []


@pytest.mark.parametrize("content,expect", [(b"", "empty"), (b"not an image at all", "cannot read image")])
def test_unreadable_or_empty_source(tmp_path, capsys, content, expect):
    src = tmp_path / "bad.png"
    src.write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    code, err = _run(["animate", str(src), "preset:blink", "-o", str(out / "o.mp4")], capsys)
    assert _assert_clean_failure(code, err, out, expect) == []


def test_unreadable_driving_video(tmp_path, portrait_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    out = tmp_path / "out"
    out.mkdir()
    code, err = _run(["animate", str(portrait_path), str(bad), "-o", str(out / "o.mp4")], capsys)
    assert _assert_clean_failure(code, err, out, "cannot read video") == []


def test_missing_driving_and_unknown_preset(tmp_path, portrait_path, capsys):
    code, err = _run(["animate", str(portrait_path), str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o.mp4")], capsys)
    assert _assert_clean_failure(code, err, tmp_path, "no such file") == []
    code, err = _run(["animate", str(portrait_path), "preset:moonwalk", "-o", str(tmp_path / "o.mp4")], capsys)
    assert _assert_clean_failure(code, err, tmp_path, "unknown motion preset") == []


def test_unwritable_output(tmp_path, portrait_path, capsys):
    code, err = _run(["demo", "-o", str(tmp_path / "missing-folder" / "o.mp4")], capsys)
    assert _assert_clean_failure(code, err, tmp_path, "output folder does not exist") == []
    code, err = _run(["demo", "-o", str(tmp_path)], capsys)
    assert _assert_clean_failure(code, err, tmp_path, "is a directory") == []


def test_failure_mid_render_leaves_no_file_and_keeps_an_old_one(tmp_path, portrait_path, monkeypatch, capsys):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"previous result")
    from enliven.engines.mesh import MeshEngine

    calls = {"n": 0}
    real = MeshEngine.render

    def failing(self, state, target, frame=None):
        calls["n"] += 1
        if calls["n"] == 10:
            raise RuntimeError("boom")
        return real(self, state, target, frame)

    monkeypatch.setattr(MeshEngine, "render", failing)
    with pytest.raises(RuntimeError):
        main(["-q", "demo", "-o", str(out)])
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4"]


def test_demo_command_writes_a_video(tmp_path, capsys):
    out = tmp_path / "demo.mp4"
    code, err = _run(["demo", "-o", str(out), "--preset", "blink"], capsys)
    assert code == 0 and out.is_file()
    assert "wrote" in err
    assert len(read_frames(out)) == 75


def test_motion_extract_and_render(tmp_path, driving_video, capsys):
    template = tmp_path / "m.npz"
    code, _ = _run(["-q", "motion", "extract", str(driving_video), "-o", str(template)], capsys)
    assert code == 0 and template.is_file()
    drawing = tmp_path / "lmk.mp4"
    code, _ = _run(["-q", "motion", "render", str(template), "-o", str(drawing), "--size", "256"], capsys)
    assert code == 0
    frames = read_frames(drawing)
    assert len(frames) == 125 and frames[0].shape == (256, 256, 3)
    assert all(f.max() > 100 for f in frames)  # something is drawn on every frame


def test_quiet_works_before_and_after_the_command(tmp_path, capsys):
    out = tmp_path / "q.mp4"
    assert main(["demo", "-o", str(out), "--preset", "mouth", "-q"]) == 0
    assert out.is_file() and capsys.readouterr().err == ""


def test_listing_commands(capsys):
    assert main(["presets"]) == 0
    assert "preset:demo" in capsys.readouterr().out
    assert main(["engines"]) == 0
    assert "mesh" in capsys.readouterr().out


def test_console_script_help_runs():
    done = subprocess.run([sys.executable, "-m", "enliven", "--help"], capture_output=True, text=True, check=True)
    assert "enliven demo" in done.stdout and "animate" in done.stdout


def test_animate_json_reports_shots_person_and_held_frames(tmp_path, portrait_path, driving_video, capsys):
    import json

    out = tmp_path / "o.mp4"
    assert main(["-q", "animate", str(portrait_path), str(driving_video), "-o", str(out), "--json", "--fps", "5"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["output"] == str(out) and report["frames"] == 25 and report["lost_frames"] == 0
    assert report["tracking"]["shots"] == 1 and report["tracking"]["people"] == 1
    assert report["tracking"]["followed"].startswith("person 1 of 1")
