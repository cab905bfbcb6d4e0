"""The keypoint engine end to end on tiny random weights written in the official layout."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from enliven import api
from enliven.cli import main
from enliven.engines.keypoint import tiny_config
from enliven.errors import EnlivenError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import read_frames


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


def _liveportrait_pkl(path, frames=6):
    """A template in LivePortrait's .pkl layout, from random but plausible keypoint motion."""
    import pickle

    from enliven.engines.keypoint import kinematics as kin

    g = torch.Generator().manual_seed(5)
    motion = []
    for i in range(frames):
        angles = [torch.tensor([5.0 * i]), torch.tensor([-3.0 * i]), torch.tensor([1.0])]
        rot = kin.rotation_matrix(*angles)
        motion.append({
            "scale": np.full((1, 1), 1.5, np.float32), "R": rot.numpy().astype(np.float32),
            "exp": (torch.randn(1, 21, 3, generator=g) * 0.01).numpy(), "t": np.zeros((1, 3), np.float32),
            "kp": (torch.randn(1, 21, 3, generator=g) * 0.2).numpy(), "x_s": np.zeros((1, 21, 3), np.float32),
        })
    data = {"n_frames": frames, "output_fps": 20, "motion": motion,
            "c_eyes_lst": [np.full((1, 2), 0.3)] * frames, "c_lip_lst": [np.zeros((1, 1))] * frames}
    with open(path, "wb") as fh:
        pickle.dump(data, fh)
    return path


class _Boom:
    def __reduce__(self):
        import os

        return (os.mkdir, ("/tmp/enliven-pickle-ran",))


def test_pickles_are_refused_without_the_flag(tmp_path, capsys):
    import pickle
    import shutil

    shutil.rmtree("/tmp/enliven-pickle-ran", ignore_errors=True)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"motion": [_Boom()]}))
    out = tmp_path / "o.npz"
    assert main(["motion", "import-pkl", str(evil), "-o", str(out)]) == 2
    assert "--allow-pickle" in capsys.readouterr().err
    code = main(["animate", str(api.bundled_portrait()), str(evil), "-o", str(tmp_path / "o.mp4")])
    assert code == 2
    assert not Path("/tmp/enliven-pickle-ran").exists() and not out.exists()


def test_liveportrait_template_import_drives_the_keypoint_engine(tmp_path, tiny_weights, capsys):
    pkl = _liveportrait_pkl(tmp_path / "lp.pkl")
    npz = tmp_path / "lp.npz"
    assert main(["-q", "motion", "import-pkl", str(pkl), "-o", str(npz), "--allow-pickle"]) == 0
    from enliven.motion.template import load_template

    seq = load_template(npz)
    frames = list(seq)
    assert seq.fps == 20 and len(frames) == 6 and not seq.has_landmarks
    assert frames[3].keypoints["angles"] == pytest.approx([15.0, -9.0, 1.0], abs=1e-3)  # pitch, yaw, roll back
    src = str(api.bundled_portrait())
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    api.animate(src, npz, a, engine="keypoint", weights=str(tiny_weights), progress=False)
    api.animate(src, pkl, b, engine="keypoint", weights=str(tiny_weights), allow_pickle=True, progress=False)
    fa, fb = read_frames(a), read_frames(b)
    assert len(fa) == 6 and all(np.array_equal(x, y) for x, y in zip(fa, fb))
    with pytest.raises(EnlivenError, match="use --engine keypoint"):
        api.animate(src, npz, tmp_path / "c.mp4", progress=False)


def test_keypoint_template_round_trip_equals_the_video(tmp_path, tiny_weights, driving_video):
    npz = tmp_path / "kp.npz"
    api.extract_motion(driving_video, npz, progress=False, engine="keypoint", weights=str(tiny_weights))
    src = str(api.bundled_portrait())
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    api.animate(src, driving_video, a, engine="keypoint", weights=str(tiny_weights), fps=5, progress=False)
    api.animate(src, npz, b, engine="keypoint", weights=str(tiny_weights), fps=5, progress=False)
    fa, fb = read_frames(a), read_frames(b)
    assert len(fa) == len(fb) == 25
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb))


def test_video_source_with_the_keypoint_engine(tmp_path, tiny_weights, portrait, driving_video):
    from conftest import write_still_video

    source = tmp_path / "source.mp4"
    write_still_video(source, portrait, frames=10)
    out = tmp_path / "v2v.mp4"
    result = api.animate(source, driving_video, out, engine="keypoint", weights=str(tiny_weights), progress=False)
    assert result.frames == len(read_frames(out)) == 10  # min(10 source frames, 125 driving frames)


def test_onnx_export_matches_pytorch_and_drives_the_engine(tmp_path, tiny_weights, driving_video, capsys):
    from enliven.engines.keypoint import load_official
    from enliven.engines.keypoint.onnx_export import OnnxModules

    onnx_dir = tmp_path / "onnx"
    assert main(["-q", "weights", "export-onnx", str(tiny_weights), "-o", str(onnx_dir)]) == 0
    graphs = OnnxModules(onnx_dir)
    torch_modules = load_official(tiny_weights, config=tiny_config())
    torch.manual_seed(7)
    image = torch.rand(1, 3, 64, 64)
    kp_s, kp_d = torch.rand(1, 21, 3) - 0.5, torch.rand(1, 21, 3) - 0.5
    # Each output against its own scale: float32 rounds to ~1e-7 of a value, and a graph of a few layers piles up a
    # few dozen such roundings, so the shallow graphs agree to ~5e-7 of their largest output (measured here); 2e-5
    # leaves 40× for other CPUs' kernels, while a wrong weight, bias or input order is off by a sizeable part of the
    # output. The random-weight decoder amplifies rounding (6e-5 of its 0..1 output measured): 5e-4 for it. One
    # absolute bound would be loose for the MLPs, whose outputs are ~0.15, and tight for larger ones.
    shallow, deep = 2e-5, 5e-4
    with torch.no_grad():
        feature = torch_modules["appearance_feature_extractor"](image)
        pairs = [
            ("appearance", graphs.appearance_feature_extractor(image), feature, shallow),
            ("warp_decode", graphs.warp_decode(feature, kp_d, kp_s),
             torch_modules["spade_generator"](torch_modules["warping_module"](feature, kp_d, kp_s)["out"]), deep),
        ]
        raw = torch_modules["motion_extractor"](image)
        for key, value in graphs.motion_extractor(image).items():
            pairs.append((f"motion {key}", value, raw[key], shallow))
        for name, width in (("stitching", 126), ("retarget_eye", 66), ("retarget_lip", 65)):
            x = torch.rand(1, width)
            pairs.append((name, graphs.mlp(name, x), torch_modules[name](x), shallow))
    assert len(pairs) == 2 + 7 + 3
    for name, ours, ref, rel in pairs:
        scale = float(ref.abs().max())
        assert scale > 0.05, name  # an output that is all but zero would make any bound meaningless
        assert float((ours - ref).abs().max()) <= rel * scale, name
    out_torch, out_onnx = tmp_path / "t.mp4", tmp_path / "o.mp4"
    common = dict(engine="keypoint", weights=str(tiny_weights), fps=5, progress=False)
    api.animate(api.bundled_portrait(), driving_video, out_torch, **common)
    api.animate(api.bundled_portrait(), driving_video, out_onnx, engine_options={"backend": "onnx", "onnx_dir": str(onnx_dir)}, **common)
    a, b = read_frames(out_torch), read_frames(out_onnx)
    assert len(a) == len(b) == 25
    # Untrained decoders amplify rounding differences, so compare on average: the same picture, codec noise aside.
    assert max(np.abs(x.astype(int) - y).mean() for x, y in zip(a, b)) < 0.5


def test_eye_and_lip_targets_reach_the_retargeting_mlps(tmp_path, tiny_weights, driving_video, monkeypatch):
    from enliven.engines.keypoint import kinematics
    from enliven.motion.align import Controls

    seen = {"eye": [], "lip": []}
    real_eye, real_lip = kinematics.retarget_eyes, kinematics.retarget_lip

    def eye(module, x_s, source, target):
        seen["eye"].append(float(target))
        return real_eye(module, x_s, source, target)

    def lip(module, x_s, source, target):
        seen["lip"].append(float(target))
        return real_lip(module, x_s, source, target)

    monkeypatch.setattr(kinematics, "retarget_eyes", eye)
    monkeypatch.setattr(kinematics, "retarget_lip", lip)
    api.animate(api.bundled_portrait(), driving_video, tmp_path / "o.mp4", engine="keypoint", weights=str(tiny_weights),
                fps=2, controls=Controls(eyes_open=(0.1, 0.3), lip_open=0.25), progress=False)
    assert seen["eye"] and all(v == pytest.approx(0.2) for v in seen["eye"])
    assert seen["lip"] and all(v == pytest.approx(0.25) for v in seen["lip"])
