"""Smoke training of the audio-diffusion engine: 2 processes under torchrun (gloo, CPU) on a talking clip made by
enliven itself (the mesh engine driven by a synthetic voice), tiny random Hallo weights.

Checked: preprocessing writes the cache; every stage's loss on its fixed evaluation batch falls; checkpoints are
written; a run resumed from the middle checkpoint ends with the same weights as the uninterrupted one; the exported
weights load into ``--engine audio-diffusion`` and render a video of the audio's length. Plus the pieces with
independent golden values: CRC-32C's check value, the event records read back with protobuf's own parser, the
optimizer state's round trip, the config's one-line refusals.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from enliven.engines.audio_diffusion.training import events  # noqa: E402
from enliven.engines.audio_diffusion.training.config import load_config  # noqa: E402
from enliven.errors import EnlivenError  # noqa: E402

PORTRAIT = Path(__file__).parents[2] / "src" / "enliven" / "assets" / "portrait.png"
STEPS = {"image": 4, "video": 8, "speed": 4}
# the loss on each stage's fixed batch (fixed noise and timesteps) at the end, at most this fraction of the start;
# the speed layers start at zero and move little in 4 steps
FALLS = {"image": 0.9, "video": 0.97, "speed": 0.999}

CONFIG = """
[data]
videos = "videos"
cache = "cache"
size = 64
clip_frames = 4
motion_frames = 2
sample_margin = 5
[init]
hallo = "weights"
[optimizer]
lr = 3e-3
[run]
output = "{output}"
mixed_precision = "no"
checkpoint_every = 4
keep_checkpoints = 10
log_every = 1
[stages.image]
steps = {image}
[stages.video]
steps = {video}
[stages.speed]
steps = {speed}
"""


def _speech(path: Path, seconds: float = 1.4, rate: int = 16000) -> None:
    """A voiced buzz (130 Hz and harmonics) opening and closing three times a second, like syllables."""
    t = np.arange(int(rate * seconds)) / rate
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 0.7
    signal = sum(np.sin(2 * np.pi * f * t) / (k + 1) for k, f in enumerate((130, 260, 390, 520, 650))) * envelope
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((signal * 0.3 * 32767).astype(np.int16).tobytes())


def _torchrun(folder: Path, config: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # --standalone: a rendezvous on a free local port (``--master-port 0`` waits forever in torch 2.13)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "enliven", "train", "audio-diffusion", str(config), *extra]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from enliven.cli import main
    from enliven.engines.audio_diffusion.tiny import save_tiny_official

    folder = tmp_path_factory.mktemp("train")
    _speech(folder / "speech.wav")
    (folder / "videos").mkdir()
    assert main(["-q", "animate", str(PORTRAIT), "--audio", str(folder / "speech.wav"),
                 "-o", str(folder / "videos" / "talk.mp4")]) == 0
    save_tiny_official(folder / "weights")
    config = folder / "train.toml"
    config.write_text(CONFIG.format(output="run", **STEPS))
    _torchrun(folder, config)
    return folder


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "logs" / "log.jsonl").read_text().splitlines()]


def test_every_stage_lowers_its_loss_and_checkpoints(trained):
    assert (trained / "cache" / "talk.safetensors").is_file()
    log = _log(trained / "run")
    for stage in STAGES_ORDER:
        scores = [row[f"eval/{stage}"] for row in log if f"eval/{stage}" in row]
        assert len(scores) == 2, scores
        print(f"{stage}: eval loss {scores[0]:.5f} -> {scores[1]:.5f} ({scores[1] / scores[0]:.2f}x)")
        assert scores[1] < FALLS[stage] * scores[0], (stage, scores)
    names = sorted(p.name for p in (trained / "run" / "checkpoints").iterdir())
    assert names == [f"step-{n:07d}" for n in (4, 8, 12, 16)]
    state = json.loads((trained / "run" / "checkpoints" / "step-0000016" / "state.json").read_text())
    assert (state["stage"], state["stage_step"], state["total_step"], state["world_size"]) == ("speed", 4, 16, 2)
    assert list((trained / "run" / "logs").glob("events.out.tfevents.*"))


STAGES_ORDER = ("image", "video", "speed")


def test_resumed_run_ends_where_the_uninterrupted_one_does(trained):
    from safetensors.torch import load_file

    resumed = trained / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    middle = trained / "run" / "checkpoints" / "step-0000008"  # the video stage's 4th of 8 steps
    shutil.copytree(middle, resumed / "checkpoints" / middle.name)
    config = trained / "resume.toml"
    config.write_text(CONFIG.format(output="resumed", **STEPS))
    out = _torchrun(trained, config)
    assert "resuming from step-0000008: video step 4" in out.stdout + out.stderr
    first = [row for row in _log(resumed) if "loss/video" in row][0]
    assert first["step"] == 9  # the step count goes on
    a = load_file(str(trained / "run" / "checkpoints" / "step-0000016" / "model.safetensors"))
    b = load_file(str(resumed / "checkpoints" / "step-0000016" / "model.safetensors"))
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    moved = max(float((a[k] - load_file(str(middle / "model.safetensors"))[k]).abs().max()) for k in a)
    print(f"resumed vs uninterrupted: largest difference {worst:.2e} (training moved weights by up to {moved:.2e})")
    assert moved > 1e-4
    assert worst < 1e-5


def test_exported_weights_render_with_the_engine(trained):
    import av

    from enliven.cli import main

    out = trained / "rendered.mp4"
    assert main(["-q", "animate", str(PORTRAIT), "--audio", str(trained / "speech.wav"), "--engine",
                 "audio-diffusion", "--weights", str(trained / "run" / "weights"), "--steps", "2",
                 "-o", str(out)]) == 0
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 35  # 1.4 s at 25 fps
    assert all(np.isfinite(f).all() and f.std() > 1 for f in frames)


def test_crc32c_and_events_read_back_by_protobuf(tmp_path):
    assert events.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720, B.4)
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    # tensorflow/core/util/event.proto and framework/summary.proto, the fields we write, by number
    proto = descriptor_pb2.FileDescriptorProto(name="ev.proto", package="t", syntax="proto3")
    value = proto.message_type.add(name="Value")
    value.field.add(name="tag", number=1, type=9, label=1)
    value.field.add(name="simple_value", number=2, type=2, label=1)
    summary = proto.message_type.add(name="Summary")
    summary.field.add(name="value", number=1, type=11, label=3, type_name=".t.Value")
    event = proto.message_type.add(name="Event")
    event.field.add(name="wall_time", number=1, type=1, label=1)
    event.field.add(name="step", number=2, type=3, label=1)
    event.field.add(name="file_version", number=3, type=9, label=1)
    event.field.add(name="summary", number=5, type=11, label=1, type_name=".t.Summary")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    Event = message_factory.GetMessageClass(pool.FindMessageTypeByName("t.Event"))

    writer = events.EventWriter(tmp_path)
    writer.scalars(7, {"loss/video": 0.25, "eval/video": 1.5})
    writer.close()
    data, parsed = writer.path.read_bytes(), []
    while data:
        (length,) = struct.unpack("<Q", data[:8])
        assert struct.unpack("<I", data[8:12])[0] == events.masked_crc(data[:8])
        body = data[12:12 + length]
        assert struct.unpack("<I", data[12 + length:16 + length])[0] == events.masked_crc(body)
        parsed.append(Event.FromString(body))
        data = data[16 + length:]
    assert parsed[0].file_version == "brain.Event:2"
    assert parsed[1].step == 7
    assert {v.tag: v.simple_value for v in parsed[1].summary.value} == {"loss/video": 0.25, "eval/video": 1.5}


def test_optimizer_state_round_trip():
    from enliven.engines.audio_diffusion.training.state import load_optimizer, optimizer_state

    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(4))]
    names = ["a.weight", "b.bias"]
    first = torch.optim.AdamW(params, lr=0.01)
    for _ in range(3):
        first.zero_grad()
        sum((p**2).sum() for p in params).backward()
        first.step()
    tensors, groups = optimizer_state(first, names)
    json.dumps(groups)  # plain JSON
    second = torch.optim.AdamW([torch.nn.Parameter(p.detach().clone()) for p in params], lr=0.5)
    load_optimizer(second, names, tensors, groups)
    for p, q in zip(first.state_dict()["state"].values(), second.state_dict()["state"].values()):
        for key in p:
            assert torch.equal(torch.as_tensor(p[key]), torch.as_tensor(q[key]))
    assert second.param_groups[0]["lr"] == 0.01


@pytest.mark.parametrize("text, message", [
    ("[data]\nsize = 60\n[init]\nhallo='x'", "multiple of 64"),
    ("[data]\nsise = 64\n[init]\nhallo='x'", "unknown setting 'data.sise'"),
    ("[run]\nmixed_precision = 'fp8'\n[init]\nhallo='x'", "mixed_precision"),
    ("[optimizer]\nlr = 'fast'\n[init]\nhallo='x'", "'optimizer.lr' must be float"),
    ("[run]\nseed = 1", "init.hallo"),
])
def test_config_refusals(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(EnlivenError, match=message):
        load_config(path)


def test_cli_bad_config_is_one_line_and_exit_2(tmp_path, capsys):
    from enliven.cli import main

    assert main(["train", "audio-diffusion"]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[data]\nsise = 1\n")
    assert main(["train", "audio-diffusion", str(bad)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == "enliven: error: unknown setting 'data.sise' in the training config (see default.toml)"
    assert main(["train", "audio-diffusion", "--print-config"]) == 0
    assert "[stages.speed]" in capsys.readouterr().out


def test_starting_from_sd_animatediff_and_wav2vec_parts(tmp_path):
    """``[init]`` from parts: an SD-1.5 UNet folder (diffusers' own save), an AnimateDiff motion-module file, a VAE
    and a wav2vec2 folder. The reference net is the SD UNet (less its output norm and convolution, which
    Hallo's reference net lacks), the denoiser's spatial layers are the SD UNet's and its motion modules the
    file's, exactly; only the audio layers, projections and face locator start fresh."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    from enliven.engines.audio_diffusion.checkpoints import VAE, WAV2VEC, weights_root
    from enliven.engines.audio_diffusion.tiny import save_tiny_official, tiny_unet_config
    from enliven.engines.audio_diffusion.training.init import from_parts

    root = weights_root(save_tiny_official(tmp_path / "hallo", widths=(32, 32, 32, 32)))
    torch.manual_seed(3)
    sd = UNet2DConditionModel.from_config(tiny_unet_config(32, (32, 32, 32, 32)))
    with torch.no_grad():
        for parameter in sd.parameters():
            parameter.normal_(0, 0.1)  # distinct values, so a tensor loaded in the wrong place shows
    sd.save_pretrained(tmp_path / "sd" / "unet")
    motion = {k: torch.randn_like(v) for k, v in from_parts_denoiser_motion(root).items()}
    save_file(motion, str(tmp_path / "mm.safetensors"))
    init = {"base": str(tmp_path / "sd"), "motion_module": str(tmp_path / "mm.safetensors"),
            "vae": str(root / VAE), "wav2vec": str(root / WAV2VEC), "face_embedding": 16}
    modules, config = from_parts(init)
    sd_state = sd.state_dict()
    reference = modules["reference_net"].state_dict()
    assert set(reference) == {k for k in sd_state if not k.startswith(("conv_norm_out.", "conv_out."))}
    assert all(torch.equal(reference[k], sd_state[k]) for k in reference)
    denoiser = modules["denoiser"].state_dict()
    for key, value in sd_state.items():
        assert torch.equal(denoiser[key], value), key
    for key, value in motion.items():
        assert torch.equal(denoiser[key], value), key
    fresh = [k for k in denoiser if k not in sd_state and k not in motion]
    assert fresh and all(".audio_modules." in f".{k}" for k in fresh)
    with pytest.raises(EnlivenError, match="init.vae"):
        from_parts(dict(init, vae=""))


def from_parts_denoiser_motion(root) -> dict:
    """The motion-module tensors (names and shapes) of a denoiser built on ``root``'s UNet config."""
    from enliven.engines.audio_diffusion.checkpoints import build_modules

    state = build_modules(root)["denoiser"].state_dict()
    return {k: v for k, v in state.items() if ".motion_modules." in k}
