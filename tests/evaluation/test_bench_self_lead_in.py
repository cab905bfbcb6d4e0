"""`enliven bench self` on real-world openings: a clip that starts on black is re-created from its first frame with a
face (and says which), a clip with no face at all is skipped with the reason, and the other clips still run."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from enliven.cli import main

from conftest import read_frames

LEAD_IN = 5  # black frames before the face appears
TALKING = 25  # frames of the talking clip kept: enough motion to score, quick to render on 2 cores


def _write_clip(path: Path, frames: list[np.ndarray], fps: int = 25) -> None:
    with av.open(str(path), "w") as dst:
        stream = dst.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0"}  # near-lossless: the ground truth stays the rendered talking face
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)


@pytest.fixture(scope="module")
def talking(driving_video) -> list[np.ndarray]:
    return read_frames(driving_video)[:TALKING]  # the bundled portrait talking and nodding (the demo preset)


def test_lead_in_clip_uses_its_first_face_and_a_faceless_clip_is_skipped(tmp_path, talking, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    black = np.zeros_like(talking[0])
    _write_clip(videos / "lead_in.mp4", [black] * LEAD_IN + talking)
    _write_clip(videos / "all_black.mp4", [black] * 10)
    _write_clip(videos / "talking.mp4", talking)
    out = tmp_path / "report"

    code = main(["-q", "bench", "self", str(videos), "--engines", "mesh", "--identity-every", "0", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    data = json.loads((out / "report.json").read_text())

    assert data["source_frames"] == {"lead_in.mp4": LEAD_IN, "talking.mp4": 0}
    assert "all_black.mp4" not in data["cases"]
    assert any(line.startswith("all_black.mp4: skipped, no face in any of the 10 frames") for line in data["skipped"])
    lead_in, plain = data["cases"]["lead_in.mp4"]["mesh"], data["cases"]["talking.mp4"]["mesh"]
    # The black lead-in is not scored: the same talking frames are scored in both clips, and about as well.
    assert lead_in["frames"] == plain["frames"] == TALKING
    assert len(data["per_frame"]["lead_in.mp4"]["mesh"]["psnr"]) == TALKING
    assert "truth_face_lost" not in lead_in
    assert plain["lmd"] < 0.03 and lead_in["lmd"] < 0.03
    assert abs(lead_in["lmd"] - plain["lmd"]) < 0.01 and lead_in["ssim"] > 0.9

    md = (out / "report.md").read_text()
    lead_in_line = f"frames 0–{LEAD_IN - 1} are rendered but not scored."
    assert f"Source: frame {LEAD_IN}, the first with a face; {lead_in_line}" in md
    assert "- all_black.mp4: skipped, no face" in md


def test_a_folder_with_no_face_in_any_clip_is_one_line_and_exit_2(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    _write_clip(videos / "all_black.mp4", [np.zeros((64, 64, 3), np.uint8)] * 4)
    code = main(["-q", "bench", "self", str(videos), "--identity-every", "0", "-o", str(tmp_path / "report")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no video in" in err[0] and "all_black.mp4: skipped, no face" in err[0]
    assert not (tmp_path / "report").exists()
