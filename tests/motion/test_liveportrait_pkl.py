"""LivePortrait's own motion templates (.pkl): every layout its releases have written imports, and drives the
keypoint engine as LivePortrait's pipeline does.

The templates here are built from the layout LivePortrait's template writer (``make_motion_template``) has
produced over its history, as plain dicts, lists and numpy arrays; no LivePortrait file is used:

- 2024-07-04 (``video2template.py``): a list ``[frames, landmarks]``, each frame a dict with ``n_frames``,
  ``frames_index``, ``scale``, ``R_d``, ``exp``, ``t``;
- 2024-07-07: ``{n_frames, output_fps, motion: [{scale, R_d, exp, t}], c_d_eyes_lst, c_d_lip_lst}`` (the layout of
  the example templates it ships, d1.pkl ... d8.pkl);
- 2024-07-19: ``R`` for ``R_d``, ``c_eyes_lst``/``c_lip_lst``, and ``x_i_info_lst`` (the motion extractor's
  output as torch tensors, on the GPU it ran on);
- 2024-08-02: without ``x_i_info_lst``; 2024-08-19 on: each frame also has ``kp`` and ``x_s``;
- the expression examples (wink.pkl, laugh.pkl ...) and the animals pipeline: ``{n_frames, output_fps, motion:
  [{scale, R, exp, t}]}``, no ratio lists.

Per frame: scale (1, 1), R (1, 3, 3) for row vectors, exp (1, 21, 3), t (1, 3), kp and x_s (1, 21, 3), float32.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from enliven import api
from enliven.cli import main
from enliven.errors import EnlivenError
from enliven.motion.liveportrait_pkl import load_liveportrait_pkl
from enliven.motion.template import load_template, save_template

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import read_frames

LAYOUTS = ("2024-08-19", "2024-08-02", "2024-07-19", "2024-07-07", "expression", "2024-07-04")


def lp_rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """LivePortrait's (1, 3, 3) matrix for row vectors, (Rz(roll)·Ry(yaw)·Rx(pitch))ᵀ, written out here."""
    p, y, r = np.deg2rad([pitch, yaw, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return (rz @ ry @ rx).T[None].astype(np.float32)


def motion_frames(n=5, yaw=20.0, vary=False, seed=3):
    """Per-frame motion as LivePortrait writes it: the head, tilted, turns ``yaw`` degrees about its vertical axis
    over the frames (from yaw −10°: the first frame is not the identity, so a rule that forgot it would show);
    ``vary``: expression, scale and shift change too."""
    g = np.random.default_rng(seed)
    exp0 = (g.normal(size=(1, 21, 3)) * 0.02).astype(np.float32)
    frames = []
    for i in range(n):
        k = i / (n - 1)
        frames.append({
            "scale": np.full((1, 1), 1.4 * (1 + 0.05 * k * vary), np.float32),
            "R": lp_rotation(6.0, -10.0 + yaw * k, 4.0),
            "exp": exp0 + (g.normal(size=(1, 21, 3)) * 0.01 * vary).astype(np.float32),
            "t": np.array([[0.02 + 0.01 * k * vary, -0.03 * k * vary, 0.0]], np.float32),
        })
    return frames


def write_template(path, layout="2024-08-19", frames=None, fps=20):
    frames = motion_frames() if frames is None else frames
    n = len(frames)
    eyes, lip = [np.full((1, 2), 0.3, np.float32)] * n, [np.full((1, 1), 0.01, np.float32)] * n
    g = np.random.default_rng(9)
    if layout == "2024-07-04":
        old = [{"n_frames": n, "frames_index": i, "scale": f["scale"], "R_d": f["R"], "exp": f["exp"], "t": f["t"]}
               for i, f in enumerate(frames)]
        data = [old, [g.normal(size=(203, 2)).astype(np.float32) for _ in range(n)]]
    elif layout == "2024-07-07":
        motion = [{"scale": f["scale"], "R_d": f["R"], "exp": f["exp"], "t": f["t"]} for f in frames]
        data = {"n_frames": n, "output_fps": fps, "motion": motion, "c_d_eyes_lst": eyes, "c_d_lip_lst": lip}
    elif layout in ("2024-07-19", "2024-08-02"):
        data = {"n_frames": n, "output_fps": fps, "motion": frames, "c_eyes_lst": eyes, "c_lip_lst": lip}
        if layout == "2024-07-19":
            data["x_i_info_lst"] = [{k: torch.as_tensor(v) for k, v in f.items()} for f in frames]
    elif layout == "2024-08-19":
        motion = [dict(f, kp=(g.normal(size=(1, 21, 3)) * 0.2).astype(np.float32),
                       x_s=(g.normal(size=(1, 21, 3)) * 0.2).astype(np.float32)) for f in frames]
        data = {"n_frames": n, "output_fps": fps, "motion": motion, "c_eyes_lst": eyes, "c_lip_lst": lip}
    else:  # "expression"
        data = {"n_frames": n, "output_fps": fps, "motion": frames}
    with open(path, "wb") as fh:
        pickle.dump(data, fh)
    return data


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_imports_through_the_cli(tmp_path, layout, capsys):
    pkl, npz = tmp_path / "t.pkl", tmp_path / "t.npz"
    frames = motion_frames(n=5, yaw=20.0, vary=True)
    data = write_template(pkl, layout, frames)
    assert main(["-q", "motion", "import-pkl", str(pkl), "-o", str(npz), "--allow-pickle"]) == 0, capsys.readouterr()
    seq = load_template(npz)
    got = list(seq)
    assert len(got) == 5 and not seq.has_landmarks
    # LivePortrait plays a template at its output_fps; the first layout had none and its pipeline wrote 30 fps
    assert seq.fps == (30 if layout == "2024-07-04" else 20)
    for i, (frame, want) in enumerate(zip(got, frames)):
        kp = frame.keypoints
        np.testing.assert_array_equal(kp["rotation"], want["R"][0])
        np.testing.assert_array_equal(kp["exp"], want["exp"][0])
        np.testing.assert_array_equal(kp["scale"], want["scale"].reshape(1))
        np.testing.assert_array_equal(kp["t"], want["t"][0])
        np.testing.assert_allclose(kp["angles"], [6.0, -10.0 + 20.0 * i / 4, 4.0], atol=1e-3)  # pitch, yaw, roll
        if layout == "2024-08-19":
            np.testing.assert_array_equal(kp["kp"], data["motion"][i]["kp"][0])
        else:  # LivePortrait never reads a driver's own canonical keypoints: absent, marked as NaN
            assert kp["kp"].shape == (21, 3) and np.isnan(kp["kp"]).all()
    # and the .npz round-trips unchanged (NaN marks included)
    again = tmp_path / "again.npz"
    save_template(again, seq)
    for a, b in zip(got, load_template(again)):
        for key, value in a.keypoints.items():
            np.testing.assert_array_equal(value, b.keypoints[key])


def test_n_frames_says_how_many_frames_play(tmp_path):
    """LivePortrait plays ``range(n_frames)`` of the motion list; a template without ``output_fps`` plays at 25."""
    data = write_template(tmp_path / "t.pkl", "2024-08-02")
    data["n_frames"] = 3
    del data["output_fps"]
    (tmp_path / "t.pkl").write_bytes(pickle.dumps(data))
    seq = load_liveportrait_pkl(tmp_path / "t.pkl", allow_pickle=True)
    got = list(seq)
    assert len(got) == 3 and seq.fps == 25
    np.testing.assert_array_equal(got[2].keypoints["exp"], data["motion"][2]["exp"][0])


def test_templates_written_on_a_gpu_import_on_a_cpu(tmp_path, monkeypatch):
    """2024-07-19 templates hold the extractor's torch tensors as they were, on CUDA; a CPU machine unpickles them."""
    import torch.serialization

    frames = motion_frames(n=3)
    data = {"n_frames": 3, "output_fps": 25, "motion": frames, "c_eyes_lst": [np.zeros((1, 2))] * 3,
            "c_lip_lst": [np.zeros((1, 1))] * 3, "x_i_info_lst": [{"kp": torch.ones(1, 63)} for _ in frames]}
    with monkeypatch.context() as m:  # what torch writes for a tensor on a GPU
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        blob = pickle.dumps(data)
    pkl = tmp_path / "gpu.pkl"
    pkl.write_bytes(blob)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            pickle.loads(blob)
    seq = load_liveportrait_pkl(pkl, allow_pickle=True)
    assert len(list(seq)) == 3


def _bad(tmp_path, mutate):
    data = write_template(tmp_path / "ok.pkl", "2024-08-19")
    mutate(data)
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(data))
    return path


@pytest.mark.parametrize(("mutate", "words"), [
    (lambda d: d["motion"][2].pop("exp"), "frame 2 has no 'exp'"),
    (lambda d: d["motion"][0].pop("R"), "frame 0 has no 'R'"),
    (lambda d: d["motion"][1].update(exp=np.zeros((1, 20, 3), np.float32)), "'exp' of frame 1 has shape (1, 20, 3)"),
    (lambda d: d["motion"][1].update(R=np.zeros((1, 3, 3), np.float32)), "'R' of frame 1 is not a rotation"),
    (lambda d: d["motion"][3].update(t=np.zeros((1, 2), np.float32)), "'t' of frame 3 has shape (1, 2)"),
    (lambda d: d["motion"][0].update(scale=np.zeros((1, 1), np.float32)), "'scale' of frame 0"),
    (lambda d: d["motion"][0].update(exp=np.full((1, 21, 3), np.nan, np.float32)), "'exp' of frame 0"),
    (lambda d: d["motion"][0].update(kp="x"), "'kp' of frame 0"),
    (lambda d: d["motion"].__setitem__(1, [1, 2]), "frame 1 is not a dict"),
    (lambda d: d.pop("motion"), "no 'motion' list"),
    (lambda d: d.update(motion=[]), "no motion frames"),
    (lambda d: d.update(n_frames=9), "n_frames is 9 but it holds 5"),
    (lambda d: d.update(output_fps=0), "output_fps"),
])
def test_malformed_templates_give_one_line(tmp_path, capsys, mutate, words):
    pkl, npz = _bad(tmp_path, mutate), tmp_path / "out.npz"
    assert main(["-q", "motion", "import-pkl", str(pkl), "-o", str(npz), "--allow-pickle"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("enliven: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert words in err and str(pkl) in err
    assert not npz.exists()


def test_other_pickles_give_one_line(tmp_path, capsys):
    for name, blob in {"list.pkl": pickle.dumps([1, 2, 3]), "junk.pkl": b"not a pickle at all"}.items():
        pkl = tmp_path / name
        pkl.write_bytes(blob)
        assert main(["-q", "motion", "import-pkl", str(pkl), "-o", str(tmp_path / "o.npz"), "--allow-pickle"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("enliven: error: ") and err.count("\n") == 1, err


class _Marks:
    """Unpickling this creates a folder: proof that a pickle was opened."""

    def __init__(self, folder):
        self.folder = str(folder)

    def __reduce__(self):
        import os

        return (os.mkdir, (self.folder,))


def test_a_template_is_never_unpickled_without_the_flag(tmp_path, capsys):
    data = write_template(tmp_path / "ok.pkl")
    data["motion"][0]["mark"] = _Marks(tmp_path / "ran")
    pkl = tmp_path / "t.pkl"
    pkl.write_bytes(pickle.dumps(data))
    with pytest.raises(EnlivenError, match="--allow-pickle"):
        load_liveportrait_pkl(pkl)
    assert main(["-q", "motion", "import-pkl", str(pkl), "-o", str(tmp_path / "o.npz")]) == 2
    assert "--allow-pickle" in capsys.readouterr().err
    assert not (tmp_path / "ran").exists() and not (tmp_path / "o.npz").exists()
    load_liveportrait_pkl(pkl, allow_pickle=True)  # the test can fail: with the flag, it is opened
    assert (tmp_path / "ran").is_dir()


def _drive(tmp_path, weights, pkl, monkeypatch, **options):
    """Render ``pkl`` with the keypoint engine (stitching off: it adds a learned offset LivePortrait's formula
    has not); returns the source's motion and the x_d handed to the decoder for each frame."""
    from enliven.engines.keypoint.engine import KeypointEngine

    seen = []
    decode = KeypointEngine.decode

    def spy(self, state, x_d):
        seen.append((state.cache["info"], x_d.clone()))
        return decode(self, state, x_d)

    monkeypatch.setattr(KeypointEngine, "decode", spy)
    out = tmp_path / "out.mp4"
    api.animate(api.bundled_portrait(), pkl, out, engine="keypoint", weights=str(weights), allow_pickle=True,
                engine_options={"stitching": False}, progress=False, **options)
    assert len(read_frames(out)) == len(seen)
    return seen[0][0], np.stack([x[0].numpy() for _, x in seen]).astype(np.float64)


def liveportrait_x_d(source, frames) -> np.ndarray:
    """LivePortrait's relative rule on a template, in numpy: against the template's first frame,
    x_d,i = scale_new·(x_c,s·R_new + exp_new) + t_new with R_new = R_i·R_0ᵀ·R_s, exp_new = exp_s + exp_i − exp_0,
    scale_new = scale_s·scale_i/scale_0, t_new = t_s + t_i − t_0 and t_new's z zeroed."""
    x_c, r_s, exp_s, scale_s, t_s = (getattr(source, k)[0].numpy().astype(np.float64)
                                     for k in ("kp", "rotation", "exp", "scale", "t"))
    f0 = frames[0]
    out = []
    for f in frames:
        r_new = f["R"][0] @ f0["R"][0].T @ r_s
        exp_new = exp_s + f["exp"][0] - f0["exp"][0]
        scale_new = scale_s * f["scale"][0] / f0["scale"][0]
        t_new = t_s + f["t"][0] - f0["t"][0]
        t_new[2] = 0.0
        out.append(scale_new * (x_c @ r_new + exp_new) + t_new)
    return np.stack(out)


def test_a_template_turning_20_degrees_turns_the_driving_keypoints_by_20(tmp_path, tiny_weights, monkeypatch):
    frames = motion_frames(n=5, yaw=20.0)
    write_template(tmp_path / "turn.pkl", "2024-07-07", frames)  # R_d, no kp: the keypoints are the source's
    source, x_d = _drive(tmp_path, tiny_weights, tmp_path / "turn.pkl", monkeypatch)
    np.testing.assert_allclose(x_d, liveportrait_x_d(source, frames), atol=2e-5)
    # the same, read off the keypoints alone: expression, scale and shift stay, so between the first and the last
    # frame the posed keypoints (less shift, over scale, less expression) differ by one rotation of 20°
    exp_s, scale_s, t_s = (getattr(source, k)[0].numpy() for k in ("exp", "scale", "t"))
    posed = (x_d - np.array([t_s[0], t_s[1], 0.0])) / scale_s - exp_s
    u, _, vt = np.linalg.svd(posed[0].T @ posed[-1])  # Kabsch: the rotation taking frame 0 onto frame 4
    turn = u @ vt
    angle = np.degrees(np.arccos(np.clip((np.trace(turn) - 1) / 2, -1, 1)))
    assert angle == pytest.approx(20.0, abs=0.01)
    assert np.abs(posed[-1] - posed[0] @ turn).max() < 1e-4


@pytest.mark.parametrize("layout", ["2024-08-19", "expression"])
def test_expression_scale_and_shift_follow_liveportraits_formula(tmp_path, tiny_weights, monkeypatch, layout):
    frames = motion_frames(n=5, yaw=12.0, vary=True)
    write_template(tmp_path / "t.pkl", layout, frames)
    # --follow-camera: a still portrait otherwise follows the driver's zoom and shift only within limits, gliding
    source, x_d = _drive(tmp_path, tiny_weights, tmp_path / "t.pkl", monkeypatch, follow_camera=True)
    np.testing.assert_allclose(x_d, liveportrait_x_d(source, frames), atol=2e-5)


def test_the_npz_drives_like_the_pkl(tmp_path, tiny_weights, monkeypatch):
    frames = motion_frames(n=4, yaw=15.0, vary=True)
    write_template(tmp_path / "t.pkl", "2024-07-07", frames)
    assert main(["-q", "motion", "import-pkl", str(tmp_path / "t.pkl"), "-o", str(tmp_path / "t.npz"),
                 "--allow-pickle"]) == 0
    _, from_pkl = _drive(tmp_path, tiny_weights, tmp_path / "t.pkl", monkeypatch)
    monkeypatch.undo()
    _, from_npz = _drive(tmp_path, tiny_weights, tmp_path / "t.npz", monkeypatch)
    np.testing.assert_array_equal(from_pkl, from_npz)
