"""Follow-Your-Emoji's networks on a tiny random configuration saved in the official layout (CPU, seconds).

Golden values: the release's tensor counts per file (``tools/parity/follow_your_emoji.py`` prints them as its
own loading counts them), the documented DDIM timesteps, stock diffusers modules for the parts we extend, and
the sinusoidal position formula. Parity with the release's own code: ``test_landmark_diffusion_release.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from enliven.errors import EnlivenError

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from enliven.engines.diffusion import samplers  # noqa: E402
from enliven.engines.diffusion.attention import FrameContext, ReferenceAttnProcessor, transformer_blocks  # noqa: E402
from enliven.engines.diffusion.temporal import TemporalModule  # noqa: E402
from enliven.engines.diffusion.unet import denoise  # noqa: E402
from enliven.engines.landmark_diffusion.checkpoints import LoadReport, load_official  # noqa: E402
from enliven.engines.landmark_diffusion.pipeline import Context, generate  # noqa: E402
from enliven.engines.landmark_diffusion.tiny import save_tiny_official, tiny_modules  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 64


@pytest.fixture(scope="module")
def tiny_fye(tmp_path_factory):
    return save_tiny_official(tmp_path_factory.mktemp("fye"), seed=0)


@pytest.fixture(scope="module")
def models(tiny_fye):
    torch.manual_seed(123)  # load must not depend on the global generator: the weights come from the files
    return load_official(tiny_fye.parent)


@pytest.fixture(scope="module")
def pictures():
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    landmarks = np.zeros((12, SIZE, SIZE, 3), np.uint8)
    for f in range(12):  # a moving bar: each frame's condition differs
        landmarks[f, 20:26, 5 + 2 * f:25 + 2 * f] = (180, 200, 10)
    return reference, landmarks


def test_loading_uses_every_tensor_with_the_release_counts(tiny_fye, models):
    report = LoadReport()
    load_official(tiny_fye, report=report)  # the pretrained_models/ folder itself works too
    counts = {name.split("/")[-1]: n for name, n in report.loaded.items()}
    # the release's files, counted by running it: independent of the channel widths
    assert counts["referencenet.pth"] == 666 and counts["unet.pth"] == 1276
    assert counts["lmk_guider.pth"] == 16 and counts["mm_sd_v15_v2.ckpt"] == 588
    assert counts["diffusion_pytorch_model.safetensors"] in (686, 180)
    assert all(not v for v in report.missing.values()) and all(not v for v in report.unexpected.values())
    saved = torch.load(tiny_fye / "follow-your-emoji" / "unet.pth", weights_only=True)
    for key in ("clip_fc.weight", "down_blocks.0.motion_modules.1.temporal_transformer.proj_out.weight",
                "up_blocks.3.attentions.2.transformer_blocks.0.attn1.to_q.weight"):
        assert torch.equal(models["denoiser"].state_dict()[key], saved[key])
    # the reference net ends at the last up block's last transformer block's norm1 (the release's trimming)
    reference_keys = models["reference_net"].state_dict()
    assert "up_blocks.3.attentions.2.transformer_blocks.0.norm1.weight" in reference_keys
    assert "up_blocks.3.attentions.2.transformer_blocks.0.attn1.to_q.weight" not in reference_keys
    assert "mid_block.attentions.0.transformer_blocks.0.ff.net.2.weight" in reference_keys
    assert "conv_out.weight" not in reference_keys and "conv_norm_out.weight" not in reference_keys
    assert set(models) >= {"vae", "image_encoder", "reference_net", "denoiser", "guider"}
    assert not any(m.training for m in models.values())


def test_loading_refuses_a_file_that_does_not_match(tiny_fye, tmp_path):
    import shutil

    copy = tmp_path / "w"
    shutil.copytree(tiny_fye, copy / "pretrained_models")
    unet = copy / "pretrained_models" / "follow-your-emoji" / "unet.pth"
    state = torch.load(unet, weights_only=True)
    state.pop("mid_block.motion_modules.0.temporal_transformer.norm.weight")
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, unet)
    with pytest.raises(EnlivenError, match="1 missing and 1 unexpected"):
        load_official(copy)
    torch.save({"not": object()}, unet)  # a pickle with objects is never unpickled
    with pytest.raises(EnlivenError, match="cannot read .* as plain tensors"):
        load_official(copy)
    with pytest.raises(EnlivenError, match="does not look like Follow-Your-Emoji weights"):
        load_official(tmp_path / "nothing")


def test_older_base_model_files_load_to_the_same_modules(tiny_fye, models, tmp_path):
    """sd-vae-ft-mse as published uses diffusers' pre-0.14 attention names (query/key/value/proj_attn; the
    oldest files as 1×1 convolutions), and older transformers saved CLIP's position_ids buffer. Written that way
    by hand here, they must load to exactly the modules the current names give."""
    import shutil

    from safetensors.torch import load_file, save_file

    copy = tmp_path / "w" / "pretrained_models"
    shutil.copytree(tiny_fye, copy)
    vae_file = copy / "sd-vae-ft-mse" / "diffusion_pytorch_model.safetensors"
    old_names = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
    renamed, convolutions = {}, 0
    for key, value in load_file(vae_file).items():
        for new, old in old_names.items():
            if new in key and ".attentions." in key:
                key = key.replace(new, old)
                if value.ndim == 2 and convolutions % 2 == 0:  # every other one as the oldest files have it
                    value = value[:, :, None, None]
                convolutions += value.ndim == 4
        renamed[key] = value.contiguous()
    assert any(".query." in k for k in renamed) and convolutions > 0  # the renaming above did happen
    save_file(renamed, str(vae_file), metadata={"format": "pt"})
    encoder_file = copy / "sd-image-variations-diffusers" / "image_encoder" / "model.safetensors"
    encoder = load_file(encoder_file)
    config = models["image_encoder"].config
    positions = config.image_size // config.patch_size
    encoder["vision_model.embeddings.position_ids"] = torch.arange(positions**2 + 1)[None]
    save_file(encoder, str(encoder_file), metadata={"format": "pt"})

    loaded = load_official(copy.parent)
    for name in ("vae", "image_encoder"):
        want, got = models[name].state_dict(), loaded[name].state_dict()
        assert want.keys() == got.keys()
        assert all(torch.equal(want[k], got[k]) for k in want), name

    encoder["vision_model.embeddings.position_ids"] = torch.arange(positions**2 + 1).flip(0)[None]
    save_file(encoder, str(encoder_file), metadata={"format": "pt"})
    with pytest.raises(EnlivenError, match="position_ids"):
        load_official(copy.parent)


def test_reference_attention_is_attention_over_own_and_reference_tokens():
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    attn = Attention(query_dim=32, heads=4, dim_head=8).eval()
    frames, tokens = 3, 10
    hidden = torch.randn(2 * frames, tokens, 32)  # two videos of three frames
    reference = torch.randn(2, 6, 32)
    context = FrameContext(frames=frames, reference={"b": reference}, use_reference=torch.tensor([False, True]))
    got = ReferenceAttnProcessor("b", context)(attn, hidden)
    with torch.no_grad():  # diffusers' own processor on the concatenated keys, frame by frame
        for row in range(2 * frames):
            video = row // frames
            keys = hidden[row:row + 1] if video == 0 else torch.cat([hidden[row:row + 1], reference[1:2]], dim=1)
            want = attn(hidden[row:row + 1], encoder_hidden_states=keys)
            torch.testing.assert_close(got[row:row + 1], want, rtol=1e-5, atol=1e-6)
    # without reference tokens in the context: plain self-attention
    plain = ReferenceAttnProcessor("other", context)(attn, hidden)
    torch.testing.assert_close(plain, attn(hidden), rtol=1e-5, atol=1e-6)


def test_temporal_module_mixes_frames_only_along_time():
    torch.manual_seed(0)
    module = TemporalModule(32, heads=8, max_frames=32).eval()
    pe = module.temporal_transformer.transformer_blocks[0].attention_blocks[0].pos_encoder.pe
    p, i = 5, 3  # the sinusoid: pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(...)
    assert math.isclose(pe[0, p, 2 * i].item(), math.sin(p / 10000 ** (2 * i / 32)), rel_tol=1e-5)
    assert math.isclose(pe[0, p, 2 * i + 1].item(), math.cos(p / 10000 ** (2 * i / 32)), rel_tol=1e-5)
    x = torch.randn(2 * 4, 32, 3, 3)  # two videos of four frames
    with torch.no_grad():
        out = module(x, frames=4)
        changed = x.clone()
        changed[1, :, 0, 0] += 1.0  # video 0, frame 1, one pixel
        out2 = module(changed, frames=4)
    moved = (out2 - out).abs().amax(dim=1)  # (8, 3, 3)
    assert moved[0, 0, 0] > 1e-4 and moved[3, 0, 0] > 1e-4  # other frames of that video, same pixel
    assert moved[4:].max() == 0  # the other video
    torch.nn.init.zeros_(module.temporal_transformer.proj_out.weight)
    torch.nn.init.zeros_(module.temporal_transformer.proj_out.bias)
    with torch.no_grad():
        torch.testing.assert_close(module(x, frames=4), x)  # AnimateDiff's zero init: identity
    with pytest.raises(ValueError, match="positions"):
        module(torch.randn(33, 32, 2, 2), frames=33)


def test_inflated_denoiser_is_the_stock_unet_per_frame_when_time_and_reference_are_off():
    from diffusers import UNet2DConditionModel

    modules, config = tiny_modules(seed=1, encoder_width=16, cross_attention_dim=32)
    net = modules["denoiser"].eval()
    for name, param in net.named_parameters():
        if ".motion_modules." in name and ".proj_out." in name:
            torch.nn.init.zeros_(param)
    stock = UNet2DConditionModel.from_config({k: v for k, v in config.items() if not k.startswith("_")}).eval()
    spatial = {k: v for k, v in net.state_dict().items() if ".motion_modules." not in k and not k.startswith("clip_fc")}
    stock.load_state_dict(spatial, strict=True)
    torch.manual_seed(2)
    latents, states = torch.randn(1, 4, 2, 8, 8), torch.randn(1, 5, 16)
    t = torch.tensor(500)
    got = denoise(net, latents, t, states)
    with torch.no_grad():
        context = net.clip_fc(states)
        for f in range(2):
            want = stock(latents[:, :, f], t, encoder_hidden_states=context).sample
            torch.testing.assert_close(got[:, :, f], want, rtol=1e-4, atol=1e-5)
    names = list(transformer_blocks(net))  # in forward order: 6 down, 1 mid, 9 up (the release's features)
    assert len(names) == 16 and names[6].startswith("mid_block.") and names[-1].startswith("up_blocks.3.attentions.2.")


def test_scheduler_is_the_documented_zero_snr_ddim():
    scheduler = samplers.ddim()
    scheduler.set_timesteps(3)
    assert scheduler.timesteps.tolist() == [999, 666, 332]
    assert scheduler.alphas_cumprod[999].item() < 1e-6  # zero terminal SNR
    assert scheduler.config.prediction_type == "v_prediction" and scheduler.config.timestep_spacing == "trailing"
    scheduler.set_timesteps(30)
    assert scheduler.timesteps[:3].tolist() == [999, 966, 932] and len(scheduler.timesteps) == 30


def test_generate_frames_seed_latents_and_guidance(models, pictures):
    reference, landmarks = pictures
    clip = landmarks[:2]
    a = generate(models, reference, clip, steps=2, seed=7)
    assert a.shape == (2, SIZE, SIZE, 3) and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, generate(models, reference, clip, steps=2, seed=7))  # same seed, same frames
    assert np.abs(a - generate(models, reference, clip, steps=2, seed=8)).max() > 1e-3
    noise = torch.randn((1, 4, 2, SIZE // 8, SIZE // 8), generator=torch.Generator("cpu").manual_seed(7))
    np.testing.assert_array_equal(a, generate(models, reference, clip, steps=2, latents=noise))
    assert np.abs(a - generate(models, reference, clip, steps=2, latents=noise, guidance=1.0)).max() > 1e-4
    with pytest.raises(ValueError, match="latents must have shape"):
        generate(models, reference, clip, steps=2, latents=noise[:, :, :1])


def test_long_clips_keyframes_first_and_sliding_windows(models, pictures):
    reference, landmarks = pictures
    noise = torch.randn((1, 4, 12, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(3))
    window = Context(window=6, overlap=2)
    progressive = generate(models, reference, landmarks, steps=2, latents=noise, context=window)
    assert progressive.shape == (12, SIZE, SIZE, 3)
    # the keyframes (0, 5, 10 and the last, 11) are made first, on their own: the same as a clip of them alone
    keys = [0, 5, 10, 11]
    alone = generate(models, reference, landmarks[keys], steps=2, latents=noise[:, :, keys].clone(), context=window)
    np.testing.assert_allclose(progressive[keys], alone, atol=1e-5)
    sliding = generate(models, reference, landmarks, steps=2, latents=noise,
                       context=Context(window=6, overlap=2, progressive=False))
    assert sliding.shape == (12, SIZE, SIZE, 3) and np.abs(sliding - progressive).max() > 1e-4


def test_temporal_positions_are_the_transformer_sinusoid():
    """The frame-position table against the sinusoid of "Attention Is All You Need" computed here in float64:
    pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(p / 10000^(2i/d)) (AnimateDiff's motion modules use it;
    a base of 10001 moves late positions by ~1e-4, under what a forward pass at test sizes shows)."""
    from enliven.engines.diffusion.temporal import PositionalEncoding

    dim, frames = 64, 32
    table = PositionalEncoding(dim, frames).pe[0].double().numpy()
    position = np.arange(frames)[:, None]
    angle = position / 10000.0 ** (np.arange(0, dim, 2)[None, :] / dim)
    expected = np.zeros((frames, dim))
    expected[:, 0::2], expected[:, 1::2] = np.sin(angle), np.cos(angle)
    assert np.abs(table - expected).max() < 1e-5  # float32 sines of angles up to 31 (measured 1.1e-6)
