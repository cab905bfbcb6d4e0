"""``audio-diffusion``'s pieces around the networks, with tiny random weights in Hallo's layout (CPU).

Golden values: the previous clip's decoded frames (what the release's ``scripts/inference.py`` chains as motion
frames) for the motion frames each later clip gets; the release's ``ceil(seconds × 25)`` frame count and its
clamped ±2 windows (``process_audio_emb``); the masks' definitions (a box, its blurred complement); the release's
repository layout (fudan-generative-vision/hallo keeps ``pretrained_models/`` at its root) for the download plan.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import torch  # noqa: E402

from enliven import weights  # noqa: E402
from enliven.engines.audio_diffusion import audio, pipeline  # noqa: E402
from enliven.engines.audio_diffusion.checkpoints import load_official, weights_root  # noqa: E402
from enliven.engines.audio_diffusion.masks import LIPS, SILHOUETTE, region_conditions  # noqa: E402
from enliven.engines.audio_diffusion.tiny import save_tiny_official  # noqa: E402

from conftest import fake_hub_fetch  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return load_official(save_tiny_official(tmp_path_factory.mktemp("hallo"), seed=0).parent)


def _conditions(size: int = 64, embedding: int = 16):
    rng = np.random.default_rng(3)
    return pipeline.Conditions(
        reference=torch.from_numpy(rng.uniform(-1, 1, (3, size, size)).astype(np.float32)),
        face_region=torch.zeros(3, size, size).index_fill_(1, torch.arange(16, 48), 1.0),
        masks=[tuple(torch.full(((size // 8 >> level) ** 2,), v) for v in (0.2, 0.5, 0.3)) for level in range(4)],
        face_embedding=torch.from_numpy(rng.normal(0, 1, embedding).astype(np.float32)),
    )


def test_each_clip_starts_from_the_previous_clips_last_frames(models, monkeypatch):
    """Three clips of 4 for 10 frames of audio: 10 frames come out; each later clip's motion frames are the
    previous clip's last two decoded frames, unrounded, in [-1, 1]; the first clip's are the reference."""
    seen, decoded = [], []
    sample, decode = pipeline.sample_clip, pipeline.decode
    monkeypatch.setattr(pipeline, "sample_clip", lambda m, c, w, motion, *a, **k: (
        seen.append(motion.clone()), sample(m, c, w, motion, *a, **k))[1])
    monkeypatch.setattr(pipeline, "decode", lambda vae, latents: (decoded.append(decode(vae, latents)),
                                                                  decoded[-1])[1])
    conditions = _conditions()
    windows = audio.windows(torch.randn(12, 2, 32))
    frames = list(pipeline.generate(models, conditions, windows, 10, steps=2, clip=4, guidance=1.0))
    assert [f.shape[0] for f in frames] == [4, 4, 2]
    assert torch.equal(seen[0], conditions.reference[None].repeat(2, 1, 1, 1))
    for motion, previous in zip(seen[1:], decoded):
        assert torch.equal(motion, previous[-2:] * 2 - 1)


def test_audio_windows_follow_the_release_frame_count(models):
    samples = np.random.default_rng(0).normal(0, 0.1, 16000 * 7 // 10).astype(np.float32)  # 0.7 s: 17.5 frames
    features, length = audio.layer_features(models["audio_encoder"], samples, clip=16)
    assert length == 18 and features.shape == (32, 2, 32)  # ceil, then padded to two clips of 16
    windows = audio.windows(features)
    assert torch.equal(windows[0, 0], features[0]) and torch.equal(windows[0, 4], features[2])
    assert torch.equal(windows[-1, 3], features[-1]) and torch.equal(windows[5, 1], features[4])


def test_region_masks():
    landmarks = np.zeros((478, 3))
    landmarks[list(SILHOUETTE), :2] = np.random.default_rng(1).uniform([20, 10], [44, 56], (len(SILHOUETTE), 2))
    landmarks[list(LIPS), :2] = np.random.default_rng(2).uniform([26, 40], [38, 46], (len(LIPS), 2))
    region, levels = region_conditions(landmarks, 64)
    assert region.shape == (3, 64, 64) and set(np.unique(region)) == {0.0, 1.0}
    assert region[0, 32, 32] == 1 and region[0, 2, 2] == 0
    full, face, lip = (m.reshape(8, 8) for m in levels[0])
    assert [m.shape for m in levels[3]] == [(1,), (1,), (1,)]
    assert np.unravel_index(lip.argmax(), lip.shape)[0] >= 5  # the lips sit low in the face
    assert full[0, 0] > 0.9 and full[4, 4] < 0.1  # the background mask is the face mask's complement
    assert 0 <= min(m.min() for m in levels[0]) and max(m.max() for m in levels[0]) <= 1


def test_download_plan_is_the_release_layout(tmp_path):
    hub = {"fudan-generative-vision/hallo": [
        "hallo/net.pth", "stable-diffusion-v1-5/unet/config.json",
        "stable-diffusion-v1-5/unet/diffusion_pytorch_model.safetensors", "motion_module/mm_sd_v15_v2.ckpt",
        "sd-vae-ft-mse/config.json", "sd-vae-ft-mse/diffusion_pytorch_model.safetensors",
        "wav2vec/wav2vec2-base-960h/config.json", "wav2vec/wav2vec2-base-960h/model.safetensors",
        "wav2vec/wav2vec2-base-960h/preprocessor_config.json", "face_analysis/models/glintr100.onnx",
        "face_analysis/models/scrfd_10g_bnkps.onnx", "audio_separator/Kim_Vocal_2.onnx",
    ]}
    target = weights.download("hallo", tmp_path / "hallo", fetch=fake_hub_fetch(hub))
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert "hallo/net.pth" in files and "face_analysis/models/glintr100.onnx" in files
    assert "audio_separator/Kim_Vocal_2.onnx" not in files  # not used: the audio is taken as given
    assert "stable-diffusion-v1-5/unet/diffusion_pytorch_model.safetensors" not in files  # net.pth has it all
    assert weights_root(target) == target and weights.resolve("hallo", target) == target


def test_the_networks_train_with_checkpointing_and_speed_layers():
    """A loss through the reference net's tokens, the denoiser (audio and motion modules, motion frames, face
    locator features) with gradient checkpointing on gives every trained part a gradient, the same gradient as
    without checkpointing; EMO's speed layers start as the identity (zero-initialised) and then act."""
    from enliven.engines.audio_diffusion.model import (
        build_denoiser,
        build_reference_net,
        denoise,
        reference_features,
        set_gradient_checkpointing,
    )
    from enliven.engines.audio_diffusion.tiny import tiny_unet_config

    torch.manual_seed(0)
    config = tiny_unet_config(16, (32, 32, 32, 32))
    reference_net, denoiser = build_reference_net(config), build_denoiser(config, audio_dim=16, speed_buckets=3)
    for name, parameter in denoiser.named_parameters():
        if "zero_conv" in name or "proj_out" in name:
            torch.nn.init.normal_(parameter, 0, 0.05)
    latents, context = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 4, 16)
    audio_tokens, rows = torch.randn(1, 3, 4, 16), torch.randn(3, 4, 8, 8)

    def loss(speed=None):
        tokens = reference_features(reference_net, rows, context.repeat(3, 1, 1))
        reference = {k: v[:1] for k, v in tokens.items()}
        motion = {k: v[1:][None] for k, v in tokens.items()}
        out = denoise(denoiser, latents, torch.tensor(500), context, audio_tokens, reference=reference,
                      motion_features=motion, speed=speed)
        return out.square().mean()

    plain = loss()
    assert torch.equal(loss(torch.tensor([2])), plain)  # speed layers: zero at the start
    plain.backward()
    grads = {n: p.grad.clone() for n, p in denoiser.named_parameters() if p.grad is not None}
    for part in ("audio_modules", "motion_modules", "attn1", "conv_in"):
        assert any(part in n and g.abs().sum() > 0 for n, g in grads.items()), part
    assert reference_net.down_blocks[0].attentions[0].proj_in.weight.grad.abs().sum() > 0
    denoiser.zero_grad()
    set_gradient_checkpointing(denoiser)
    denoiser.train()
    loss().backward()
    again = {n: p.grad for n, p in denoiser.named_parameters() if p.grad is not None}
    assert again.keys() == grads.keys()
    assert max((again[n] - grads[n]).abs().max() for n in again) < 1e-6
    with torch.no_grad():
        next(iter(denoiser.speed_layers.proj.values())).weight.normal_(0, 0.5)
    assert not torch.allclose(loss(torch.tensor([2])), loss(torch.tensor([0])))


def test_long_audio_is_read_in_overlapping_segments(models):
    """Up to a segment the features are the whole-audio pass (the release's); past it, segments with context on
    both sides give every frame once, in order, and the frames far from any cut close to the whole pass."""
    samples = np.random.default_rng(4).normal(0, 0.1, 16000 * 3).astype(np.float32)  # 75 frames, padded to 80
    whole, length = audio.layer_features(models["audio_encoder"], samples, clip=16)
    same, _ = audio.layer_features(models["audio_encoder"], samples, clip=16, segment=80)
    cut, cut_length = audio.layer_features(models["audio_encoder"], samples, clip=16, segment=32, overlap=12)
    assert torch.equal(whole, same) and length == cut_length == 75 and cut.shape == whole.shape
    scale = whole.abs().max()
    near_cut = {31, 32, 63, 64}
    far = [f for f in range(80) if all(abs(f - c) > 8 for c in near_cut) and 8 < f < 72]
    # measured 0.065 of the range; frames one off (a misaligned cut) give 1.15
    assert (cut[far] - whole[far]).abs().max() < 0.2 * scale


def test_windows_made_per_clip_are_the_whole_sequence_windows(models):
    features = torch.randn(12, 2, 32)
    assert torch.equal(audio.windows(features, start=4, stop=8), audio.windows(features)[4:8])
    conditions = _conditions()
    by_windows = list(pipeline.generate(models, conditions, audio.windows(features), 10, steps=1, clip=4))
    by_features = list(pipeline.generate(models, conditions, features, 10, steps=1, clip=4))
    assert all(torch.equal(a, b) for a, b in zip(by_windows, by_features)) and len(by_features) == 3


def test_face_alignment_maps_the_five_points_onto_arcfaces_template(tmp_path):
    """The similarity recovers a known rotation, scale and shift of the template exactly; the five points are
    MediaPipe's iris centres, nose tip and mouth corners, image-left first; no network file: no embedding."""
    from enliven.engines.audio_diffusion.identity import TEMPLATE, face_embedding, five_points, similarity

    angle, scale, shift = 0.3, 2.5, np.array([40.0, -7.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = (TEMPLATE - shift) @ np.linalg.inv(scale * rotation).T
    matrix = similarity(points)
    assert np.allclose(points @ matrix[:, :2].T + matrix[:, 2], TEMPLATE, atol=1e-9)
    landmarks = np.zeros((478, 3))
    for index, x in ((473, 10.0), (468, 30.0), (1, 20.0), (291, 12.0), (61, 28.0)):
        landmarks[index, :2] = (x, index)
    assert five_points(landmarks)[:, 0].tolist() == [10.0, 30.0, 20.0, 12.0, 28.0]
    assert face_embedding(np.zeros((64, 64, 3), np.uint8), landmarks, tmp_path) is None
