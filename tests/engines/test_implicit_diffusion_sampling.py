"""HunyuanPortrait's sampling (``implicit_diffusion.svd_sampling``): schedule, guidance, windows, pads, options.

Golden values: the Karras formula and 0.25·ln σ computed here with ``math`` (independently of the module's NumPy
code), plus sigmas and timesteps printed by the release's scheduler as diffusers 0.29 loads SVD-xt's config;
the Euler step's fixed point (a prediction that denoises to x0 lands on x0 at σ = 0); the release's window and
pad rules written out per frame. Whole runs against the release's own loop (its options included) are in
``test_implicit_diffusion_release.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("diffusers")

import torch  # noqa: E402

from enliven.engines.implicit_diffusion import svd_sampling as sampling  # noqa: E402
from enliven.engines.implicit_diffusion.svd_sampling import (  # noqa: E402
    blend_weights,
    guide,
    pad_motion,
    pad_weights,
    schedule,
    step_shifts,
    steps_run,
    window_plan,
)
from enliven.engines.implicit_diffusion.svd_unet import build_unet  # noqa: E402

from fill import fill_module  # noqa: E402
from hunyuan_inputs import SAMPLING_UNET, sampling_inputs  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")



# ---------------------------------------------------------------- schedule


def test_schedule_is_the_effective_karras_one():
    for steps in (1, 2, 3, 25):
        sampler = schedule(steps)
        sigmas, timesteps = sampler.sigmas, sampler.timesteps
        assert sigmas.dtype == timesteps.dtype == torch.float32 and len(sigmas) == steps + 1 and sigmas[-1] == 0
        for i in range(steps):
            ramp = i / (steps - 1) if steps > 1 else 0.0
            expected = (700 ** (1 / 7) + ramp * (0.002 ** (1 / 7) - 700 ** (1 / 7))) ** 7
            assert sigmas[i].item() == pytest.approx(expected, rel=1e-6)
            assert timesteps[i].item() == pytest.approx(0.25 * math.log(expected), abs=1e-6)
    sampler = schedule(25)
    sigmas, timesteps = sampler.sigmas, sampler.timesteps
    assert sigmas[0] == 700 and sigmas[-2].item() == pytest.approx(0.002)
    # printed by the release's scheduler (diffusers 0.29, SVD-xt's scheduler_config.json), 25 steps
    assert sigmas[1].item() == 545.729248046875 and sigmas[12].item() == 15.589967727661133
    assert timesteps[0].item() == 1.6377700567245483 and timesteps[-1].item() == -1.553652048110962


def test_euler_step_lands_on_the_denoised_sample_at_zero():
    """A v-prediction that denoises x to x0 (SVD's preconditioning): the last step (σ → 0) gives x0, and a step
    to σ = 1 lands on the straight line from x to x0 (an independent derivation of the Euler step)."""
    gen = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 3, generator=gen), torch.randn(2, 3, generator=gen)
    sampler = schedule(25)
    for i in (12, 24):
        sigma, sigma_next = sampler.sigmas[i], sampler.sigmas[i + 1]
        x = x0 + sigma * noise
        v = (x / (sigma**2 + 1) - x0) * (sigma**2 + 1) ** 0.5 / sigma
        torch.testing.assert_close(sampler.scale_model_input(x, sampler.timesteps[i]), x / (sigma**2 + 1) ** 0.5)
        stepped = sampler.step(v, sampler.timesteps[i], x).prev_sample
        torch.testing.assert_close(stepped, x0 + sigma_next * noise, rtol=0, atol=1e-5 * (1 + float(sigma)))


def test_each_window_takes_the_same_step():
    """Windows call the sampler several times per timestep: every call steps from that timestep's noise level,
    whatever was called before (diffusers' Euler alone would move on to the next level after the first)."""
    sampler = schedule(6)
    t = sampler.timesteps[2]
    x, v = torch.ones(1, 4), torch.full((1, 4), 0.5)
    first = sampler.step(v, t, x).prev_sample
    again = sampler.step(v, t, x).prev_sample
    assert torch.equal(first, again)
    assert not torch.equal(sampler.step(v, sampler.timesteps[3], x).prev_sample, first)


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


# ---------------------------------------------------------------- the options of the release's config


@pytest.fixture(scope="module")
def unet():
    model = build_unet(SAMPLING_UNET).eval()
    fill_module(model)
    return model


T, PAD, WINDOW, OVERLAP, SHIFT = 12, 4, 8, 3, 3


def _inputs() -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in sampling_inputs("windows").items()}


def test_i2i_strength_runs_the_last_steps_of_the_schedule():
    assert [steps_run(25, s) for s in (1.0, 0.5, 0.04, 0.999)] == [25, 12, 1, 24]
    for bad in (0.0, 0.03, 1.5, -1):
        with pytest.raises(ValueError, match="i2i_noise_strength"):
            steps_run(25, bad)


def test_options_reach_the_unet_and_the_motion_scale_is_restored(unet):
    from enliven.engines.implicit_diffusion.svd_unet import motion_scale_of

    x = _inputs()
    seen = []
    hook = unet.register_forward_pre_hook(lambda _m, args, kwargs: seen.append(kwargs["added_time_ids"].clone()),
                                          with_kwargs=True)
    calls = []

    def on_step(k):
        calls.append(k)

    try:
        sampling.sample({"unet": unet}, x["image"], x["motion"], x["pose"], x["ref"], steps=6, window=WINDOW,
                        overlap=OVERLAP, pad=PAD, latents=x["noise"], fps=9.0, motion_bucket=4,
                        i2i_noise_strength=0.5, motion_scale=0.25, on_step=on_step)
    finally:
        hook.remove()
    assert calls == [0, 1, 2]  # 3 of the 6 steps
    assert seen[0][0].tolist() == [9.0, 4.0, 0.0] and all(torch.equal(s, seen[0]) for s in seen)
    assert motion_scale_of(unet) == 1.0


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
