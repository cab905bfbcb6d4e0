"""The keypoint engine end to end on tiny random weights written in the official layout."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from enliven import api
from enliven.cli import main
from enliven.engines.keypoint import build_modules, save_official, tiny_config
from enliven.errors import EnlivenError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import read_frames


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("lp") / "liveportrait"
    save_official(build_modules(tiny_config()), root, config=tiny_config())
    return root.parent


def test_cli_renders_a_video_with_the_keypoint_engine(tmp_path, tiny_weights, driving_video, capsys):
    out = tmp_path / "kp.mp4"
    code = main(["animate", str(api.bundled_portrait()), str(driving_video), "-o", str(out),
                 "--engine", "keypoint", "--weights", str(tiny_weights), "-q"])
    assert code == 0
    frames = read_frames(out)
    assert len(frames) == 125 and frames[0].shape == (512, 512, 3)


def test_presets_drive_the_keypoint_engine_without_pixels(tmp_path, tiny_weights, portrait):
    out = tmp_path / "nod.mp4"
    result = api.animate(api.bundled_portrait(), "preset:nod", out, engine="keypoint", weights=str(tiny_weights),
                         progress=False)
    frames = read_frames(out)
    assert result.frames == len(frames) == 75
    # random weights draw noise inside the paste mask, but the picture outside it is the source
    corner = (slice(0, 40), slice(0, 40))
    assert np.abs(frames[10][corner].astype(int) - portrait[corner]).mean() < 4


def test_missing_weights_and_unknown_options_are_clear(tmp_path):
    with pytest.raises(EnlivenError, match="does not look like LivePortrait weights"):
        api.animate(api.bundled_portrait(), "preset:nod", tmp_path / "o.mp4", engine="keypoint", weights=str(tmp_path))
    with pytest.raises(EnlivenError, match="no liveportrait weights"):
        api.animate(api.bundled_portrait(), "preset:nod", tmp_path / "o.mp4", engine="keypoint",
                    weights=str(tmp_path / "absent"))
    with pytest.raises(EnlivenError, match="has no option"):
        api.animate(api.bundled_portrait(), "preset:nod", tmp_path / "o.mp4", engine_options={"colour": "red"})
    assert not list(tmp_path.glob("*.mp4"))


def test_weights_commands(tmp_path, tiny_weights, monkeypatch, capsys):
    import shutil

    copy = tmp_path / "w"
    shutil.copytree(tiny_weights, copy)
    assert main(["weights", "convert", str(copy)]) == 0
    assert len(list(copy.rglob("*.safetensors"))) == 5
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what a machine without a network sees, without waiting
    code = main(["weights", "download", "liveportrait", "--dir", str(tmp_path / "dl")])
    err = capsys.readouterr().err
    assert code == 2 and "could not download" in err and "online" in err
