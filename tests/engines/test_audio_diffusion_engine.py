"""``--engine audio-diffusion`` end to end on the CPU, with tiny random weights in Hallo's official layout.

Golden values: frame counts from the speech's duration at the release's 25 frames per second; the source picture
(as the same encoder gives it back) away from the paste mask; the strict loader's contract (a key removed from or
added to ``net.pth`` is named in the error). Parity with the release itself is in test_audio_diffusion_release.py.
"""

from __future__ import annotations

import os
import time

import av
import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import torch  # noqa: E402

from enliven import api  # noqa: E402
from enliven.cli import main  # noqa: E402
from enliven.engines.audio_diffusion.checkpoints import load_official  # noqa: E402
from enliven.engines.audio_diffusion.pipeline import Conditions, generate  # noqa: E402
from enliven.engines.audio_diffusion.tiny import save_tiny_official  # noqa: E402
from enliven.errors import EnlivenError  # noqa: E402
from enliven.io.video import VideoWriter  # noqa: E402

from conftest import read_frames, vowels_and_silence  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NARROW = dict(widths=(32, 32, 32, 32))  # the engine's tests need each part, not the release's width ratios


@pytest.fixture(scope="module")
def tiny_hallo(tmp_path_factory):
    """The folder holding ``pretrained_models/`` (what ``--weights`` names)."""
    return save_tiny_official(tmp_path_factory.mktemp("hallo"), seed=0, **NARROW).parent


@pytest.fixture(scope="module")
def models(tiny_hallo):
    return load_official(tiny_hallo)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    vowels_and_silence(path, seconds=0.8)  # 20 frames at 25 fps: a clip of 16 and a second one after it
    return path


def _paste_mask(job) -> np.ndarray:
    full = np.zeros(job.image.shape[:2])
    paster = job.faces[0].paster
    full[paster.roi] = paster.mask[..., 0]
    return full


def test_cli_animates_speech_pasted_back_with_its_sound(tiny_hallo, models, speech, portrait_path, portrait,
                                                         tmp_path, capsys):
    out = tmp_path / "out.mp4"
    started = time.perf_counter()
    args = ["animate", str(portrait_path), "--audio", str(speech), "--engine", "audio-diffusion", "--weights",
            str(tiny_hallo), "-o", str(out), "--steps", "2", "--device", "cpu", "--crf", "0", "-q"]
    assert main(args) == 0, capsys.readouterr().err
    seconds = time.perf_counter() - started
    frames = read_frames(out)
    assert len(frames) == 20  # 0.8 s at 25 fps: two clips chained by motion frames, the padded tail dropped
    with av.open(str(out)) as container:
        assert container.streams.audio, "the speech is muxed in"
    job = api.prepare_animation(portrait, speech, engine="audio-diffusion", progress=False,
                                engine_options=dict(models=models, weights_root=str(tiny_hallo)))
    full = _paste_mask(job)
    import cv2

    far = cv2.dilate((full > 0).astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    with VideoWriter(tmp_path / "baseline.mp4", 25, crf=0) as writer:
        writer.write(portrait)
    baseline = read_frames(tmp_path / "baseline.mp4")[0]
    assert far.any() and max(np.abs(f.astype(int) - baseline)[far].max() for f in frames) == 0
    for frame in frames:  # the random model redraws the whole crop
        assert np.abs(frame.astype(int) - portrait)[full > 0.99].mean() > 5
    print(f"end-to-end {seconds:.1f} s for {len(frames)} frames")


def test_text_is_spoken_and_drives_it(tiny_hallo, portrait_path, tmp_path, capsys):
    """``--text`` goes through the shared TTS path (espeak-ng): as many frames as the spoken audio lasts."""
    import shutil

    if not shutil.which("espeak-ng") and not os.environ.get("CI"):
        pytest.skip("espeak-ng is not installed")
    out = tmp_path / "said.mp4"
    args = ["animate", str(portrait_path), "--text", "Hi.", "--engine", "audio-diffusion", "--weights",
            str(tiny_hallo), "-o", str(out), "--steps", "1", "--device", "cpu", "-q"]
    assert main(args) == 0, capsys.readouterr().err
    with av.open(str(out)) as container:
        sound = container.streams.audio[0]
        seconds = float(sound.duration * sound.time_base)
        frames = sum(1 for _ in container.decode(video=0))
    assert abs(frames - seconds * 25) <= 1.5


def test_speech_is_required_before_any_sampling(tiny_hallo, portrait_path, tmp_path, capsys):
    code = main(["animate", str(portrait_path), "preset:mouth", "--engine", "audio-diffusion", "--weights",
                 str(tiny_hallo), "-o", str(tmp_path / "x.mp4"), "--device", "cpu", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--audio" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.mp4").exists()


def _conditions(models, size=64):
    generator = torch.Generator().manual_seed(1)
    masks = []
    for level in (8, 4, 2, 1):
        flat = torch.zeros(level * level)
        flat[: level * level // 2] = 1
        masks.append((torch.ones(level * level), flat, flat.flip(0)))
    return Conditions(reference=torch.rand(3, size, size, generator=generator) * 2 - 1,
                      face_region=(torch.rand(3, size, size, generator=generator) > 0.5).float(), masks=masks,
                      face_embedding=torch.randn(models["image_proj"].proj.in_features, generator=generator))


def _windows(models, frames):
    encoder = models["audio_encoder"].config
    return torch.randn(frames, 5, encoder.num_hidden_layers, encoder.hidden_size,
                       generator=torch.Generator().manual_seed(2))


def test_clips_chain_through_motion_frames(models):
    """The second clip starts from the first one's last decoded frames: change the first clip's audio and the
    second clip changes too, though its own audio and noise are the same."""
    conditions = _conditions(models)
    windows = _windows(models, 32)
    first = list(generate(models, conditions, windows, steps=2, clip=16))
    other = windows.clone()
    other[:16] = torch.randn(other[:16].shape, generator=torch.Generator().manual_seed(3))
    second = list(generate(models, conditions, other, steps=2, clip=16))
    assert [c.shape[0] for c in first] == [16, 16]
    assert (first[0] - second[0]).abs().max() > 1e-3
    assert (first[1] - second[1]).abs().max() > 1e-3
    no_motion = list(generate(models, conditions, windows, steps=2, clip=16, motion_frames=0))
    assert (no_motion[1] - first[1]).abs().max() > 1e-3  # the motion frames' tokens act


@pytest.mark.parametrize("guidance", [0.0, 1.0])
def test_guidance_at_most_one_runs_the_conditional_branch_alone(models, guidance):
    """The release crashes there (its audio batch is doubled, its latents are not); ours samples."""
    conditions = _conditions(models)
    windows = _windows(models, 16)
    plain = next(generate(models, conditions, windows, length=5, steps=2, guidance=guidance))
    guided = next(generate(models, conditions, windows, length=5, steps=2, guidance=3.5))
    assert plain.shape == guided.shape == (5, 3, 64, 64) and torch.isfinite(plain).all()
    assert (plain - guided).abs().max() > 1e-3
    again = next(generate(models, conditions, windows, length=5, steps=2, guidance=0.5))
    assert torch.equal(plain, again)  # every guidance ≤ 1 is the same conditional run


def test_loading_is_strict_and_names_the_keys(tiny_hallo, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_hallo, copy)
    net = copy / "pretrained_models" / "hallo" / "net.pth"
    state = torch.load(net, weights_only=True)
    dropped = "face_locator.conv_in.weight"
    state.pop(dropped)
    state["audioproj.extra"] = torch.zeros(1)
    torch.save(state, net)
    with pytest.raises(EnlivenError) as error:
        load_official(copy)
    assert dropped in str(error.value) and "audioproj.extra" in str(error.value)


def test_half_precision_as_on_a_gpu_samples_near_full_precision(tiny_hallo, models):
    """What a CUDA run loads (every module fp16 but the CPU's fp32 audio encoder) runs the same code on the CPU:
    no dtype clash anywhere in the two clips, frames near the fp32 run's (measured: mean 0.0015 and 0.004 of the
    [0, 1] range per clip on these random weights, which amplify rounding far more than trained ones)."""
    half = load_official(tiny_hallo, dtype=torch.float16)
    assert half["denoiser"].dtype == torch.float16 and half["audio_encoder"].dtype == torch.float32
    conditions = _conditions(models)
    windows = _windows(models, 32)
    full = list(generate(models, conditions, windows, steps=1))
    rounded = list(generate(half, conditions, windows, steps=1))
    for ours, reference in zip(rounded, full, strict=True):
        assert ours.dtype == torch.float32 and (ours - reference).abs().mean() < 0.02


def test_trained_speed_layers_load_beside_hallo_and_condition_the_run(tiny_hallo, tmp_path):
    """EMO's speed layers, written where training exports them (``hallo/speed_layers.safetensors``), load with
    the official files, and the bucket given reaches the frames; Hallo's own weights have none, so asking for a
    speed bucket there is one clear error."""
    import shutil

    from safetensors.torch import save_file

    from enliven.engines.audio_diffusion.checkpoints import build_modules, weights_root
    from enliven.engines.audio_diffusion.engine import AudioDiffusionEngine
    from enliven.engines.audio_diffusion.model import SpeedLayers

    with pytest.raises(EnlivenError, match="no speed layers"):
        AudioDiffusionEngine(weights=str(tiny_hallo), device="cpu", speed=1)
    trained = tmp_path / "trained"
    shutil.copytree(tiny_hallo, trained)
    # speed layers of 3 buckets shaped for this denoiser's motion modules, with random (trained-like) values
    with_layers = build_modules(weights_root(trained), speed_buckets=3, speed_dim=8)["denoiser"].speed_layers
    assert isinstance(with_layers, SpeedLayers)
    torch.manual_seed(5)
    state = {f"denoising_unet.speed_layers.{k}": torch.randn_like(v) * 0.5
             for k, v in with_layers.state_dict().items()}
    save_file(state, str(weights_root(trained) / "hallo" / "speed_layers.safetensors"))
    loaded = load_official(trained)
    layers = loaded["denoiser"].speed_layers
    assert layers.embedding.num_embeddings == 3
    for key, value in layers.state_dict().items():
        assert torch.equal(value, state[f"denoising_unet.speed_layers.{key}"])
    with pytest.raises(EnlivenError, match="speed"):
        AudioDiffusionEngine(models=loaded, device="cpu", speed=3)  # buckets 0..2
    reference = torch.rand(3, 64, 64) * 2 - 1
    latent = 8
    conditions = Conditions(reference=reference, face_region=torch.rand(3, 64, 64),
                            masks=[tuple(torch.rand((latent >> i) ** 2) for _ in range(3)) for i in range(4)],
                            face_embedding=torch.zeros(loaded["image_proj"].proj.in_features))
    features = torch.randn(16, 2, 32)
    slow, fast = (next(generate(loaded, conditions, features, steps=2, guidance=1.0, speed=s)) for s in (0, 2))
    assert (slow - fast).abs().max() > 1e-3
