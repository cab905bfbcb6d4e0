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


def _face_box(face) -> tuple[slice, slice]:
    """Rows and columns of the face's landmarks: well inside the paste mask, where the engine's pixels show."""
    (x0, y0), (x1, y1) = face.landmarks[:, :2].min(0).astype(int), face.landmarks[:, :2].max(0).astype(int)
    return slice(y0, y1), slice(x0, x1)


def _change_from_first(frames, box=(slice(None), slice(None))) -> np.ndarray:
    """Per frame, the mean absolute difference from the first frame inside ``box``."""
    first = frames[0][box].astype(int)
    return np.array([np.abs(f[box].astype(int) - first).mean() for f in frames])


def _assert_follows_driver(ours: np.ndarray, driving_video, least: float, what: str) -> None:
    """``ours``, a change per frame since the first, rises and falls with the driver's change since its first frame.

    Random weights turn the driver's crop into arbitrary (but smooth) keypoint motion, so nothing can be compared
    with the driver's pose; what must hold is that the motion moves when, and as much as, the driver moves. An
    engine that ignores the driver gives no change at all (the correlation is then undefined and fails).
    """
    theirs = _change_from_first(read_frames(driving_video)[: len(ours)])
    corr = np.corrcoef(ours, theirs)[0, 1]
    assert ours.max() > least, f"{what} never changes by more than {ours.max():.3g}"
    assert corr >= 0.6, f"{what} vs the driver's change: correlation {corr:.2f}"


def test_cli_renders_a_video_with_the_keypoint_engine(tmp_path, tiny_weights, driving_video, portrait_face, capsys):
    out = tmp_path / "kp.mp4"
    code = main(["animate", str(api.bundled_portrait()), str(driving_video), "-o", str(out),
                 "--engine", "keypoint", "--weights", str(tiny_weights), "-q"])
    assert code == 0
    frames = read_frames(out)
    assert len(frames) == 125 and frames[0].shape == (512, 512, 3)
    # the output's face changes as the driver does: largest change 5.5 grey levels, correlation 0.84 measured
    _assert_follows_driver(_change_from_first(frames, _face_box(portrait_face)), driving_video, 1.5, "the face")


def test_presets_drive_the_keypoint_engine_without_pixels(tmp_path, tiny_weights, portrait, monkeypatch):
    from enliven.engines.keypoint import kinematics
    from enliven.engines.keypoint.engine import KeypointEngine
    from enliven.face.geometry import rotation_to_angles
    from enliven.motion.presets import PRESETS

    # Spy on what each frame hands the networks: the rotation its keypoints are posed with (relative to the
    # source's own), and the rendered crop inside the paste mask.
    turns, crops, masks = [], [], []
    posed, real_transform, real_render = [], kinematics.transform_keypoints, KeypointEngine.render

    def transform(kp, rotation, *rest):
        posed.append(rotation[0].double().numpy())
        return real_transform(kp, rotation, *rest)

    def render(self, state, target, frame=None):
        posed.clear()
        crop = real_render(self, state, target, frame)
        assert len(posed) == 1, "a landmark frame poses the source's keypoints once"
        source = state.cache["info"].rotation[0].double().numpy()
        turns.append(rotation_to_angles((source.T @ posed[0]).T))  # row-vector matrices: R = R_s · Δᵀ
        crops.append(crop.astype(int))
        masks.append(state.paste_mask > 0.5)
        return crop

    monkeypatch.setattr(kinematics, "transform_keypoints", transform)
    monkeypatch.setattr(KeypointEngine, "render", render)
    out = tmp_path / "nod.mp4"
    result = api.animate(api.bundled_portrait(), "preset:nod", out, engine="keypoint", weights=str(tiny_weights),
                         progress=False)
    frames = read_frames(out)
    assert result.frames == len(frames) == len(turns) == 75
    # The head turn reaching the engine is the preset's own pitch curve (two 8° nods, read off its keyframes at
    # each frame's time), with no yaw or roll: measured equal to 0.01°.
    curve = np.array([PRESETS["nod"].value("pitch", i / 25) for i in range(75)])
    yaw, pitch, roll = np.array(turns).T
    assert np.corrcoef(pitch, curve)[0, 1] > 0.99
    assert np.abs(pitch - curve).max() < 0.5 and np.abs(yaw).max() < 0.5 and np.abs(roll).max() < 0.5
    # ... and it shows in the pixels: inside the paste mask, frames at equal pitch are the same picture and frames
    # at different pitch are not, the difference growing with the difference in pitch.
    inside = masks[0]

    def diff(i, j):
        return np.abs(crops[i] - crops[j])[inside].mean()

    peak, second_peak = int(np.argmax(curve[:25])), 25 + int(np.argmax(curve[25:50]))
    assert abs(curve[peak] - curve[second_peak]) < 0.5 and curve[0] == curve[-1] == 0.0
    assert diff(0, 74) < 0.01 and diff(peak, second_peak) < 0.2 * diff(0, peak)
    pairs = [(i, j) for i in range(0, 75, 3) for j in range(i + 3, 75, 3)]
    corr = np.corrcoef([diff(i, j) for i, j in pairs], [abs(curve[i] - curve[j]) for i, j in pairs])[0, 1]
    assert corr > 0.8, f"pixel change vs pitch change: correlation {corr:.2f}"
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


def test_video_source_with_the_keypoint_engine(tmp_path, tiny_weights, portrait, driving_video, monkeypatch):
    from enliven.engines.keypoint.engine import KeypointEngine

    from conftest import write_still_video

    # Spy on the motion the engine applies to each source frame (expression, rotation, zoom and shift offsets).
    # The rendered pixels cannot show it here: random networks turn the sub-pixel jitter of each source frame's
    # face crop into changes of 12-15 grey levels, larger than the driver's motion makes.
    applied, real = [], KeypointEngine._from_vector

    def from_vector(self, state, vector):
        applied.append(np.array(vector))
        return real(self, state, vector)

    monkeypatch.setattr(KeypointEngine, "_from_vector", from_vector)
    source = tmp_path / "source.mp4"
    write_still_video(source, portrait, frames=35)  # takes in the driver's first blink (0.3 s) and nod (0.5-1.3 s)
    out = tmp_path / "v2v.mp4"
    result = api.animate(source, driving_video, out, engine="keypoint", weights=str(tiny_weights), progress=False)
    assert result.frames == len(read_frames(out)) == len(applied) == 35  # min(35 source frames, 125 driving frames)
    # largest change 0.29, correlation 0.96 measured
    change = np.linalg.norm(np.array(applied) - applied[0], axis=1)
    _assert_follows_driver(change, driving_video, 0.1, "the applied motion")


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
    onnx_options = {"backend": "onnx", "onnx_dir": str(onnx_dir)}
    api.animate(api.bundled_portrait(), driving_video, out_onnx, engine_options=onnx_options, **common)
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
