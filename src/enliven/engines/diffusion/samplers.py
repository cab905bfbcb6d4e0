"""The diffusion engines' samplers: diffusers' scheduler classes, configured as each release runs them.

One interface for every engine, diffusers' own (``SchedulerMixin``): ``set_timesteps(steps)``, ``timesteps``,
``sigmas`` where the sampler has them, ``init_noise_sigma``, ``scale_model_input(x, t)``, ``add_noise(x0, noise,
t)`` and ``step(prediction, t, x).prev_sample`` — plus one rule the windowed samplers need: a call depends on its
timestep alone, never on how many calls came before, because every denoising step visits every window of the
clip at the same timestep. diffusers' DDIM keeps that rule already; its Euler counts its calls, hence
``WindowedEulerScheduler``.

* ``ddim(FOLLOW_YOUR_EMOJI_DDIM)``: Follow-Your-Emoji (``landmark-diffusion``). A release that samples with DDIM
  on other betas passes its own config (Hallo's inference builds DDIM on linear betas).
* ``svd_euler()``: HunyuanPortrait (``implicit-diffusion``), SVD's Euler on Karras noise levels.
"""

from __future__ import annotations

from diffusers import DDIMScheduler, EulerDiscreteScheduler

# Follow-Your-Emoji's configs/infer.yaml and infer.py (mayuelala/FollowYourEmoji 8e42c5f): 1000 training steps,
# scaled-linear betas 0.00085–0.012, steps_offset 1, no sample clipping, betas rescaled to zero terminal SNR,
# "trailing" spacing and v-prediction (eta 0 in every step call). With 3 steps the timesteps are 999, 666, 332.
FOLLOW_YOUR_EMOJI_DDIM = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    steps_offset=1,
    clip_sample=False,
    rescale_betas_zero_snr=True,
    timestep_spacing="trailing",
    prediction_type="v_prediction",
)

# The schedule HunyuanPortrait actually samples with. The release loads SVD-xt's scheduler_config.json into its
# own EulerDiscreteScheduler subclass (src/schedulers/scheduling_euler_discrete.py), which passes its arguments to
# diffusers' by position; as diffusers 0.29 builds it, the result is v-prediction on Karras noise levels (ρ = 7)
# from 700 down to 0.002, then 0, with the model's timestep 0.25 · ln σ and no churn. diffusers' own class on
# these values gives exactly that schedule and step (tests/engines/test_implicit_diffusion_sampling.py holds the
# values the release's scheduler printed; the sampling runs against the release's code are exact).
SVD_XT_EULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="v_prediction",
    interpolation_type="linear",
    use_karras_sigmas=True,
    sigma_min=0.002,
    sigma_max=700.0,
    timestep_spacing="leading",
    timestep_type="continuous",
    steps_offset=1,
)


def ddim(config: dict = FOLLOW_YOUR_EMOJI_DDIM, **overrides) -> DDIMScheduler:
    """diffusers' DDIM on ``config`` (``overrides`` on top). Its ``step`` is a function of the timestep already."""
    return DDIMScheduler(**(config | overrides))


class WindowedEulerScheduler(EulerDiscreteScheduler):
    """diffusers' Euler scheduler, with ``scale_model_input`` and ``step`` finding their noise level from the
    timestep on every call.

    Why a subclass: diffusers' Euler remembers a step index, set by the first call and advanced by each
    ``step``, which assumes one model call per timestep. A windowed sampler calls it once per window at each
    timestep, so the second window would be stepped from the next noise level. HunyuanPortrait's pipeline does
    the same thing by hand (it clears the scheduler's ``_step_index`` before each window); here it is the
    scheduler's own behaviour. Everything else is diffusers' (schedule, preconditioning, the step itself).
    """

    def _forget_step(self) -> None:
        self._step_index = None  # diffusers then locates the step from the timestep (index_for_timestep)

    def scale_model_input(self, sample, timestep):
        self._forget_step()
        return super().scale_model_input(sample, timestep)

    def step(self, model_output, timestep, sample, *args, **kwargs):
        self._forget_step()
        return super().step(model_output, timestep, sample, *args, **kwargs)


def svd_euler(config: dict = SVD_XT_EULER, **overrides) -> WindowedEulerScheduler:
    """SVD's Euler sampler as HunyuanPortrait runs it (``SVD_XT_EULER``), stepping window by window."""
    return WindowedEulerScheduler(**(config | overrides))
