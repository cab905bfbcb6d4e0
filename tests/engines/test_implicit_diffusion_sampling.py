"""HunyuanPortrait's sampling (``implicit_diffusion.sampling``): schedule, guidance, windows, pads, and a whole run
against the release's own loop.

Golden values: the Karras formula and 0.25·ln σ computed here with ``math`` (independently of the module's NumPy
code), plus sigmas and timesteps printed by the release's scheduler as diffusers 0.29 loads SVD-xt's config;
the Euler step's fixed point (a prediction that denoises to x0 lands on x0 at σ = 0); the release's window and
pad rules written out per frame; and ``data/implicit_diffusion_sampling_release.npz``: the latents the release's
``HunyuanLongSVDPipeline`` loop (diffusers 0.29, torch 2.13, CPU fp32) produced from the weights and inputs
built below (every UNet tensor a function of its key; inputs from NumPy's seeded generator).
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")

import torch  # noqa: E402

from enliven.engines.implicit_diffusion import sampling  # noqa: E402
from enliven.engines.implicit_diffusion.sampling import (  # noqa: E402
    blend_weights,
    euler_step,
    guide,
    pad_motion,
    pad_weights,
    schedule,
    step_shifts,
    window_plan,
)
from enliven.engines.implicit_diffusion.unet import build_unet  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DATA = Path(__file__).parent / "data" / "implicit_diffusion_sampling_release.npz"


# ---------------------------------------------------------------- schedule


def test_schedule_is_the_effective_karras_one():
    for steps in (1, 2, 3, 25):
        sigmas, timesteps = schedule(steps)
        assert sigmas.dtype == timesteps.dtype == torch.float32 and len(sigmas) == steps + 1 and sigmas[-1] == 0
        for i in range(steps):
            ramp = i / (steps - 1) if steps > 1 else 0.0
            expected = (700 ** (1 / 7) + ramp * (0.002 ** (1 / 7) - 700 ** (1 / 7))) ** 7
            assert sigmas[i].item() == pytest.approx(expected, rel=1e-6)
            assert timesteps[i].item() == pytest.approx(0.25 * math.log(expected), abs=1e-6)
    sigmas, timesteps = schedule(25)
    assert sigmas[0] == 700 and sigmas[-2].item() == pytest.approx(0.002)
    # printed by the release's scheduler (diffusers 0.29, SVD-xt's scheduler_config.json), 25 steps
    assert sigmas[1].item() == 545.729248046875 and sigmas[12].item() == 15.589967727661133
    assert timesteps[0].item() == 1.6377700567245483 and timesteps[-1].item() == -1.553652048110962


def test_euler_step_lands_on_the_denoised_sample_at_zero():
    """A v-prediction that denoises x to x0 (SVD's preconditioning): the last step (σ → 0) gives x0 exactly."""
    gen = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 3, generator=gen), torch.randn(2, 3, generator=gen)
    sigma = torch.tensor(3.0)
    x = x0 + sigma * noise
    v = (x / (sigma**2 + 1) - x0) * (sigma**2 + 1) ** 0.5 / sigma
    torch.testing.assert_close(euler_step(x, v, sigma, torch.tensor(0.0)), x0, rtol=0, atol=1e-6)
    half = euler_step(x, v, sigma, torch.tensor(1.0))  # on the straight line from x to x0
    torch.testing.assert_close(half, x0 + 1.0 * noise, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- guidance


def test_three_branch_guidance_reduces_to_the_full_prediction_with_unit_scales():
    gen = torch.Generator().manual_seed(1)
    u, a, f = (torch.randn(4, 5, generator=gen) for _ in range(3))
    torch.testing.assert_close(guide(u, a, f, 1.0, 1.0), f, rtol=0, atol=1e-6)
    torch.testing.assert_close(guide(u, a, f, 0.0, 0.0), u)  # no guidance at all: unconditional
    torch.testing.assert_close(guide(u, a, f, 2.0, 3.0), u + 2 * (a - u) + 3 * (f - a))
    g1, g2 = sampling.guidance_scales(((1.5, 3.0), 2.0), 4)
    assert g1.tolist() == [1.5, 2.0, 2.5, 3.0] and g2.tolist() == [2.0] * 4


# ---------------------------------------------------------------- windows and pads


def test_the_release_window_plan():
    """42 padded frames (12 + 2·15), windows of 25 every 22: [0..24] and [22..46] wrapping onto 0..4."""
    plan = window_plan(42, 25, 3, 0)
    assert plan == [list(range(25)), [f % 42 for f in range(22, 47)]]
    assert window_plan(42, 25, 3, 3)[0][:4] == [39, 40, 41, 0]  # shifted left by 3, circular
    assert step_shifts(11, 25, 3) == [0, 3, 6, 9, 12, 15, 18, 21, 24, 2, 5]


@pytest.mark.parametrize("frames", [1, 5, 24, 25, 26, 31, 47, 100])
@pytest.mark.parametrize("window,overlap", [(25, 3), (8, 3), (4, 0), (6, 5)])
def test_every_frame_is_covered_with_weights_summing_to_one(frames, window, overlap):
    for shift in set(step_shifts(2 * window, window, 3)):
        plan = window_plan(frames, window, overlap, shift)
        assert all(len(w) == window and all(0 <= f < frames for f in w) for w in plan)
        total = np.zeros(frames)
        for indices, weights in zip(plan, blend_weights(plan, frames)):
            np.add.at(total, indices, weights)
        np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-12)


def test_pads_ramp_the_motion_in_and_out():
    motion = torch.arange(1.0, 4.0)[:, None, None].expand(3, 2, 2)  # frames worth 1, 2, 3
    padded = pad_motion(motion, 4)
    assert padded[:, 0, 0].tolist() == [0.0, 0.25, 0.5, 0.75, 1, 2, 3, 3.0, 2.25, 1.5, 0.75]
    sources, factors = pad_weights(3, 4)
    assert sources == [0] * 4 + [0, 1, 2] + [2] * 4 and factors[:4] == [0, 0.25, 0.5, 0.75]


# ---------------------------------------------------------------- a whole run against the release

UNET = dict(
    sample_size=8, in_channels=8, out_channels=4,
    down_block_types=["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
    up_block_types=["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
    block_out_channels=[32, 64, 64, 64], addition_time_embed_dim=8, projection_class_embeddings_input_dim=24,
    layers_per_block=2, cross_attention_dim=32, transformer_layers_per_block=1, num_attention_heads=[2, 2, 2, 2],
    num_frames=25,
)
T, STEPS, WINDOW, OVERLAP, SHIFT, PAD = 12, 3, 8, 3, 3, 4
GUIDANCE = ((1.5, 3.0), (2.0, 2.5))


def _fill(key: str, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    noise = rng.standard_normal(shape)
    if len(shape) >= 2:
        return (noise / math.sqrt(math.prod(shape[1:]))).astype(np.float32)
    return ((1 + 0.1 * noise) if key.endswith("weight") else 0.1 * noise).astype(np.float32)


@pytest.fixture(scope="module")
def unet():
    model = build_unet(UNET).eval()
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            tensor.copy_(torch.from_numpy(_fill(key, tuple(tensor.shape))))
    return model


def _inputs() -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(7)
    arrays = dict(
        ref=rng.standard_normal((1, 4, 8, 8)), image=rng.standard_normal((1, 64, 32)),
        motion=rng.standard_normal((T, 64, 32)), pose=0.5 * rng.standard_normal((T, 32, 8, 8)),
        noise=rng.standard_normal((1, T + 2 * PAD, 4, 8, 8)),
    )
    return {k: torch.from_numpy(v.astype(np.float32)) for k, v in arrays.items()}


def test_a_sampling_run_matches_the_release(unet):
    """Circular windows (4 per step, shifted), ramped pads, per-frame pose maps, ramped scales: the release's
    loop gave these latents on the same weights and inputs. The issue asks 1e-3; measured 0 here (one thread),
    other CPUs' kernels may round differently, which the σ = 700 first step amplifies to about 1e-4."""
    x = _inputs()
    latents = sampling.sample({"unet": unet}, x["image"], x["motion"], x["pose"], x["ref"], steps=STEPS,
                              guidance=GUIDANCE, window=WINDOW, overlap=OVERLAP, shift_offset=SHIFT, pad=PAD,
                              latents=x["noise"])
    release = torch.from_numpy(np.load(DATA)["latents"])
    assert latents.shape == release.shape == (1, T + 2 * PAD, 4, 8, 8)
    assert ((latents - release).abs().max() / release.abs().max()).item() < 1e-3


def test_unit_scales_run_only_the_full_branch_to_the_same_result(unet):
    x = _inputs()
    calls = []
    hook = unet.register_forward_pre_hook(lambda _m, args: calls.append(args[0].shape[0]))
    options = dict(steps=2, guidance=(1.0, 1.0), window=WINDOW, overlap=OVERLAP, shift_offset=SHIFT, pad=PAD,
                   latents=x["noise"])
    try:
        fast = sampling.sample({"unet": unet}, x["image"], x["motion"], x["pose"][:1], x["ref"], **options)
        assert set(calls) == {1}
        calls.clear()
        full = sampling.sample({"unet": unet}, x["image"], x["motion"], x["pose"][:1], x["ref"], skip_unguided=False,
                               **options)
        assert set(calls) == {3}
    finally:
        hook.remove()
    # a batch of 1 and of 3 round differently; the first step (σ = 700) amplifies that to ~1e-4 of the range
    assert ((fast - full).abs().max() / full.abs().max()).item() < 1e-3
