"""HunyuanPortrait's sampling: Euler on SVD's Karras schedule, three-branch guidance, circular shifted windows.

**Schedule.** SVD's Euler sampler on Karras noise levels, as the release effectively runs it:
``diffusion.samplers.svd_euler()`` (diffusers' ``EulerDiscreteScheduler``, stepping window by window; its
docstring and ``SVD_XT_EULER`` say how the release's own subclass ends up with this schedule). The model's
timestep is ``0.25 · ln σ``; no churn.

**Start.** Every frame starts at ``0.18215 · mean(reference latent) + noise · σ_start``. With the release's
``i2i_noise_strength`` s (its default 1), only the last ``int(steps · s)`` of the ``steps`` Euler steps run:
σ_start is the first of them (700 at s = 1), and the guidance ramps and window shifts span the steps run.

**Guidance.** Three branches per window: unconditional (no image tokens, no motion tokens, zero reference
latent), appearance only (image tokens and reference latent, motion tokens zero) and full. The guided
prediction is ``u + g1·(a − u) + g2·(f − a)``; g1 (appearance) and g2 (motion) go linearly from their
minimum to their maximum over the steps (the release: 2.0 to 2.0). The pose guider's features go to all three.
With both scales 1 it is exactly the full branch, and only that branch runs.

**Windows.** Each step covers the clip (pads included) with windows of ``window`` frames starting every
``window − overlap`` frames, all moved left by the step's shift, indices taken modulo the clip length
(circular: the end pads wrap onto the start pads, both still faces). Each window takes the Euler step on its
own frames; a frame's new latent is the mean of what the windows holding it gave. After every step the
shift grows by ``shift_offset`` (modulo the window), so seams never stay in one place. ``window_plan`` is
this as index arithmetic.

**Pads.** ``pad`` frames before the clip carry the first frame's motion tokens × i/pad (i = 0…pad−1), and
``pad`` after it the last frame's × (1 − i/pad); they are cut off after decoding.

**Memory.** Every step visits every window, so the latents of what is sampled are held whole: per frame (at
512²) the latent and its step accumulator, 2 × 64 KB in fp32 (2 × 32 KB in fp16), on ``store`` (the CPU by
default), each window moved to the model's device when it runs. Motion comes from a ``MotionSource``: a tensor
of tokens (64 × 1024 per frame: 256 KB in fp32), or, as ``pipeline`` does it, each frame's 512 expression values
and 6 pose values (2 KB) with the window's tokens made by the refiner when the window runs. The model itself only
ever sees one window (three branches of ``window`` frames).

**Segments** (not the release's: it samples a clip whole). A long clip is cut into segments of at most
``segment`` frames overlapping by ``overlap`` (``segment_plan``); each is sampled by ``sample`` exactly as the
release samples a whole clip (its own pads, circular windows, shifts), its initial noise taken from the clip's
frame indices (``noise_start``), and the decoded frames of neighbouring segments are cross-faded over the
overlap (``segment_weights``). So memory is bounded by the segment, not the clip, and a clip of at most
``segment`` frames is the release's result exactly. ``pipeline.generate_stream`` does the cutting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from enliven.engines.diffusion import samplers
from enliven.engines.diffusion.setup import device_dtype

LATENT_SCALE = 0.18215  # the release multiplies the reference's latent mean by this literal (SVD's VAE factor)

DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = (2.0, 2.0)  # appearance, motion: the release's min = max = 2.0 for both
WINDOW = 25
OVERLAP = 3
SHIFT_OFFSET = 3
PAD = 15
# The UNet's added time ids, the release's config values: fps as is (not fps − 1), motion bucket 0, noise
# augmentation 0 (``fps``, ``motion_bucket_id``, ``noise_aug_strength`` in config/hunyuan-portrait.yaml). Noise
# augmentation is also the strength of the noise added to the reference picture whose latent every frame's input
# carries (``pipeline.reference_latent``).
FPS = 12.5
MOTION_BUCKET = 0
NOISE_AUGMENTATION = 0.0
I2I_NOISE_STRENGTH = 1.0  # the release's i2i_noise_strength: every step runs, from σ = 700


def steps_run(steps: int, i2i_noise_strength: float = I2I_NOISE_STRENGTH) -> int:
    """How many of ``steps`` Euler steps the release runs at ``i2i_noise_strength`` (its ``get_timesteps``):
    ``min(int(steps · s), steps)``, the last ones of the schedule; at least one, or it is refused."""
    if not 0 < i2i_noise_strength <= 1:
        raise ValueError(f"i2i_noise_strength must be in (0, 1], got {i2i_noise_strength}")
    run = min(int(steps * i2i_noise_strength), steps)
    if run < 1:
        raise ValueError(f"i2i_noise_strength {i2i_noise_strength} of {steps} steps runs no step")
    return run


# ---------------------------------------------------------------- schedule


def schedule(steps: int):
    """The release's sampler set to ``steps``: ``steps + 1`` float32 noise levels ending in 0 (``sigmas``) and
    ``steps`` float32 model timesteps ``0.25 · ln σ`` (``timesteps``)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    sampler = samplers.svd_euler()
    sampler.set_timesteps(steps)
    return sampler


def guidance_scales(guidance, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step (appearance, motion) scales from ``guidance`` = (appearance, motion), each a number or a
    (min, max) pair, linear over the steps as the release's ``linspace``."""
    if len(guidance) != 2:
        raise ValueError(f"guidance is (appearance, motion), got {guidance!r}")
    scales = []
    for g in guidance:
        low, high = (g, g) if np.isscalar(g) else tuple(g)
        scales.append(torch.linspace(float(low), float(high), steps))
    return scales[0], scales[1]


def guide(unconditional, appearance, full, appearance_scale, motion_scale):
    """The three-branch guided prediction ``u + g1·(a − u) + g2·(f − a)``."""
    return unconditional + appearance_scale * (appearance - unconditional) + motion_scale * (full - appearance)


# ---------------------------------------------------------------- windows and pads


def step_shifts(steps: int, window: int, shift_offset: int) -> list[int]:
    """The shift of every step: 0, then + ``shift_offset`` modulo ``window`` after each step."""
    shifts, shift = [], 0
    for _ in range(steps):
        shifts.append(shift)
        shift = (shift + shift_offset) % window
    return shifts


def window_plan(frames: int, window: int, overlap: int, shift: int) -> list[list[int]]:
    """The windows of one step: clip frame indices (circular), one list of ``window`` per window, in the
    release's order. A clip shorter than the window repeats frames inside a window, as the release does."""
    if frames < 1:
        return []
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"need window >= 1 and 0 <= overlap < window, got window={window}, overlap={overlap}")
    return [[(start - shift + j) % frames for j in range(window)] for start in range(0, frames, window - overlap)]


def blend_weights(plan: list[list[int]], frames: int) -> list[np.ndarray]:
    """Per window, the weight of each of its slots: 1 / how many slots of the step hold that frame, so a frame's
    new latent is the mean of its windows' results (weights sum to one on every frame)."""
    counts = np.zeros(frames)
    for indices in plan:
        np.add.at(counts, indices, 1)
    if np.any(counts == 0):
        raise ValueError(f"windows leave frames uncovered: {np.flatnonzero(counts == 0)[:10].tolist()}")
    return [1.0 / counts[indices] for indices in plan]


def pad_weights(frames: int, pad: int) -> tuple[list[int], list[float]]:
    """For a clip of ``frames`` with ``pad`` frames added at each end: which clip frame each padded frame takes
    its motion from, and the factor on it (the release's ramps: i/pad in, 1 − i/pad out, 1 inside)."""
    sources = [0] * pad + list(range(frames)) + [frames - 1] * pad
    factors = [i / pad for i in range(pad)] + [1.0] * frames + [1 - i / pad for i in range(pad)]
    return sources, factors


def pad_motion(motion_tokens: torch.Tensor, pad: int) -> torch.Tensor:
    """(T, n, D) motion tokens → (T + 2·pad, n, D) with the release's ramped pads."""
    if pad == 0:
        return motion_tokens
    first = torch.stack([motion_tokens[0] * (i / pad) for i in range(pad)])
    last = torch.stack([motion_tokens[-1] * (1 - i / pad) for i in range(pad)])
    return torch.cat([first, motion_tokens, last])


def segment_plan(frames: int, segment: int | None, overlap: int) -> list[tuple[int, int]]:
    """The segments (start, end) of a clip of ``frames``: at most ``segment`` frames each, the first from frame 0,
    each next one starting ``overlap`` frames before its predecessor's end, the last ending on the clip's end (so
    it may be shorter, but always longer than the overlap). ``segment`` None, or a clip of at most ``segment``
    frames: one segment, the whole clip. ``overlap`` at most half the segment, so no frame is in three."""
    if segment is not None and (segment < 1 or not 0 <= 2 * overlap <= segment):
        raise ValueError(f"need segment >= 1 and 0 <= overlap <= segment / 2, got segment={segment}, overlap={overlap}")
    if frames < 1:
        return []
    if segment is None or frames <= segment:
        return [(0, frames)]
    plan, start = [], 0
    while True:
        end = min(start + segment, frames)
        plan.append((start, end))
        if end == frames:
            return plan
        start = end - overlap


def crossfade(overlap: int) -> np.ndarray:
    """The later segment's weight on each of the ``overlap`` frames it shares with the earlier one, linear and
    never 0 or 1 (1/(overlap+1) … overlap/(overlap+1)); the earlier segment's is one minus it."""
    return np.arange(1, overlap + 1) / (overlap + 1)


def segment_weights(plan: list[tuple[int, int]], overlap: int) -> list[np.ndarray]:
    """Per segment of ``plan``, the weight of each of its frames in the cross-faded clip: ramping up over its
    first ``overlap`` frames (not the first segment), down over its last ``overlap`` (not the last), 1 between;
    on every frame of the clip the weights of the segments holding it sum to one."""
    ramp = crossfade(overlap)
    out = []
    for k, (start, end) in enumerate(plan):
        weights = np.ones(end - start)
        if k > 0:
            weights[:overlap] = ramp
        if k < len(plan) - 1:
            weights[end - start - overlap :] = 1 - ramp
        out.append(weights)
    return out


class MotionSource(Protocol):
    """The motion tokens of a clip's T driving frames, made on demand: ``tokens([f, …])`` → (n, m, D)."""

    def __len__(self) -> int: ...

    def tokens(self, frames: Sequence[int]) -> torch.Tensor: ...


class TensorMotion:
    """A ``MotionSource`` over tokens already made, (T, m, D)."""

    def __init__(self, tokens: torch.Tensor):
        if tokens.ndim != 3:
            raise ValueError(f"motion tokens must be (T, m, D), got {tuple(tokens.shape)}")
        self.all = tokens

    def __len__(self) -> int:
        return len(self.all)

    def tokens(self, frames: Sequence[int]) -> torch.Tensor:
        return self.all[list(frames)]


class PaddedMotion:
    """The padded clip's motion (T + 2·pad frames): each pad frame is its source frame's tokens × its ramp factor
    (``pad_weights``), computed as the release does (tokens × i/pad)."""

    def __init__(self, source: MotionSource, pad: int):
        self.source = source
        self.sources, self.factors = pad_weights(len(source), pad)

    def __len__(self) -> int:
        return len(self.sources)

    def tokens(self, frames: Sequence[int]) -> torch.Tensor:
        wanted = sorted({self.sources[f] for f in frames})
        made = dict(zip(wanted, self.source.tokens(wanted)))
        return torch.stack([made[self.sources[f]] * self.factors[f] for f in frames])


# ---------------------------------------------------------------- sampling


@dataclass
class Conditions:
    """What the UNet sees, for a clip of F frames (pads included): image tokens (1, n, D) shared by every frame;
    motion (F frames); pose features (1 or F, C0, h, w); the reference latent (1, 4, h, w), unscaled (the VAE
    posterior's mean, which is its mode)."""

    image_tokens: torch.Tensor
    motion: PaddedMotion
    pose_features: torch.Tensor
    reference_latent: torch.Tensor  # concatenated to every frame's input: the noise-augmented picture's latent


def _device_dtype(models) -> tuple[torch.device, torch.dtype]:
    return device_dtype(models["unet"])


def _predict(models, sampler, x, t, conditions: Conditions, indices, g1, g2, time_ids: tuple, three: bool):
    """The guided prediction (1, W, 4, h, w) for window latents ``x`` at clip frames ``indices``."""
    device, dtype = _device_dtype(models)
    width = len(indices)
    motion = conditions.motion.tokens(indices).to(device, dtype)
    image = conditions.image_tokens.to(device, dtype).expand(width, -1, -1)
    pose = conditions.pose_features
    pose = pose.expand(width, -1, -1, -1) if pose.shape[0] == 1 else pose[list(indices)]
    pose = pose.to(device, dtype)[None]
    reference = conditions.reference_latent.to(device, dtype)[:, None].expand(1, width, -1, -1, -1)
    scaled = sampler.scale_model_input(x, t)
    t = t.to(device)
    time_ids = torch.tensor([time_ids], device=device, dtype=dtype)
    if not three:
        sample = torch.cat([scaled, reference], dim=2)
        return models["unet"](
            sample,
            t,
            encoder_hidden_states=(image, [motion]),
            pose_cond_fea=pose,
            added_time_ids=time_ids,
            return_dict=False,
        )[0]
    zeros_image, zeros_motion = torch.zeros_like(image), torch.zeros_like(motion)
    sample = torch.cat(
        [scaled.repeat(3, 1, 1, 1, 1), torch.cat([torch.zeros_like(reference), reference, reference])], dim=2
    )
    out = models["unet"](
        sample,
        t,
        encoder_hidden_states=(
            torch.cat([zeros_image, image, image]),
            [torch.cat([zeros_motion, zeros_motion, motion])],
        ),
        pose_cond_fea=pose.repeat(3, 1, 1, 1, 1),
        added_time_ids=time_ids.repeat(3, 1),
        return_dict=False,
    )[0]
    unconditional, appearance, full = out.chunk(3)
    return guide(unconditional, appearance, full, g1, g2)


@torch.no_grad()
def sample(
    models: dict,
    image_tokens: torch.Tensor,
    motion_tokens: torch.Tensor | MotionSource,
    pose_features: torch.Tensor,
    reference_latent: torch.Tensor,
    *,
    steps: int = DEFAULT_STEPS,
    guidance=DEFAULT_GUIDANCE,
    window: int = WINDOW,
    overlap: int = OVERLAP,
    shift_offset: int = SHIFT_OFFSET,
    pad: int = PAD,
    latents: torch.Tensor | None = None,
    seed: int | None = None,
    noise_start: int = 0,
    fps: float = FPS,
    motion_bucket: int = MOTION_BUCKET,
    i2i_noise_strength: float = I2I_NOISE_STRENGTH,
    motion_scale: float | None = None,
    noise_augmentation: float = NOISE_AUGMENTATION,
    augmented_latent: torch.Tensor | None = None,
    store: str | torch.device = "cpu",
    skip_unguided: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """The release's windowed three-branch Euler sampling from encoded conditions; the clean latents
    (1, T + 2·pad, 4, h, w) in the UNet's latent scale (pads included: ``decode`` drops them).

    ``image_tokens``: (1, n, D), after ``image_proj``; ``motion_tokens``: (T, m, D) of the T driving frames, or a
    ``MotionSource`` making them window by window (pads are added here); ``pose_features``: the pose guider's
    (1 or T, C0, h, w) (one map: every frame); ``reference_latent``: (1, 4, h, w) the VAE posterior mean of
    the reference, unscaled.
    ``guidance``: (appearance, motion), each a scale or a (min, max) pair. ``latents``: the initial noise
    (1, T + 2·pad, 4, h, w) (else ``frame_noise(seed, noise_start + i)`` for padded frame i: a segment starting at
clip frame s passes s, so a clip frame's noise does not depend on the segment holding it). ``store``: where the clip's
    latents and tokens are held between windows. ``skip_unguided``: with both scales 1 at every step, run
    only the full branch (the same prediction, a third of the work).
    The release's other options, its defaults as ours: ``fps`` and ``motion_bucket`` (``motion_bucket_id``) go to
    the UNet's added time ids beside ``noise_augmentation`` (``noise_aug_strength``), the strength of the noise
    that was added to the reference picture before encoding ``augmented_latent`` (1, 4, h, w), the latent every
    frame's input carries (``pipeline.reference_latent(..., augmentation=s)``; None: ``reference_latent``, which
    is the same at 0 — the release's default); ``i2i_noise_strength`` runs only the last
    ``steps_run(steps, s)`` steps, starting from the reference latent noised to their first σ (the guidance
    ramps over those steps); ``motion_scale`` (``ip_motion_scale``, the motion tokens' attention weight) for this
    call, None: the UNet's own (``unet.set_motion_scale``).
    """
    from enliven.engines.diffusion.sampling import frame_noise

    device, dtype = _device_dtype(models)
    store = torch.device(store)
    if image_tokens.ndim != 3 or image_tokens.shape[0] != 1:
        raise ValueError("image tokens must be (1, n, D)")
    source = TensorMotion(motion_tokens.to(store)) if isinstance(motion_tokens, torch.Tensor) else motion_tokens
    clip = len(source)
    if clip < 1:
        raise ValueError("no driving frames")
    if pose_features.shape[0] not in (1, clip):
        raise ValueError(f"pose features for {pose_features.shape[0]} frames, motion for {clip}")
    motion = PaddedMotion(source, pad)
    if pose_features.shape[0] > 1:  # the release pads the pose pictures with the first frame's, at both ends
        pose_features = pose_features[[0] * pad + list(range(clip)) + [0] * pad]
    if augmented_latent is None:
        if noise_augmentation:
            raise ValueError("noise augmentation needs the augmented reference's latent (augmented_latent)")
        augmented_latent = reference_latent
    elif augmented_latent.shape != reference_latent.shape:
        raise ValueError(f"augmented latent {tuple(augmented_latent.shape)}, reference {tuple(reference_latent.shape)}")
    conditions = Conditions(image_tokens, motion, pose_features, augmented_latent)
    frames = len(motion)
    latent_size = tuple(reference_latent.shape[-2:])
    shape = (1, frames, 4, *latent_size)
    if latents is None:
        seed = int(torch.seed()) if seed is None else int(seed)
        noise = [frame_noise(seed, noise_start + f, latent_size, device, torch.float32)[0] for f in range(frames)]
        latents = torch.stack(noise)[None]
    elif tuple(latents.shape) != shape:
        raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")

    run = steps_run(steps, i2i_noise_strength)
    first = steps - run
    sampler = schedule(steps)
    g1, g2 = guidance_scales(guidance, run)
    three = not (skip_unguided and bool((g1 == 1).all()) and bool((g2 == 1).all()))
    time_ids = (float(fps), float(motion_bucket), float(noise_augmentation))
    start = reference_latent.to(store, torch.float32)[:, None] * LATENT_SCALE
    current = (start + latents.to(store, torch.float32) * sampler.sigmas[first].to(store)).to(dtype)
    if motion_scale is not None:
        from enliven.engines.implicit_diffusion.svd_unet import motion_scale_of, set_motion_scale

        before = motion_scale_of(models["unet"])
        set_motion_scale(models["unet"], motion_scale)
    try:
        return _run(models, sampler, conditions, current, first, g1, g2, time_ids, three, window, overlap,
                    shift_offset, store, on_step)
    finally:
        if motion_scale is not None:
            set_motion_scale(models["unet"], before)


def _run(models, sampler, conditions, current, first, g1, g2, time_ids, three, window, overlap, shift_offset, store,
         on_step):
    device, _ = _device_dtype(models)
    frames = current.shape[1]
    for k, shift in enumerate(step_shifts(len(g1), window, shift_offset)):
        t = sampler.timesteps[first + k]
        plan = window_plan(frames, window, overlap, shift)
        accumulated = torch.zeros_like(current)
        counts = torch.zeros(frames, dtype=current.dtype, device=store)
        for indices in plan:
            x = current[:, indices].to(device)
            prediction = _predict(
                models, sampler, x, t, conditions, indices, g1[k].item(), g2[k].item(), time_ids, three
            )
            stepped = sampler.step(prediction, t, x).prev_sample.to(store)
            for slot, f in enumerate(indices):  # in the release's order: a frame twice in a window counts twice
                accumulated[:, f] += stepped[:, slot]
                counts[f] += 1
        current = accumulated / counts.view(1, -1, 1, 1, 1)
        if on_step is not None:
            on_step(k)
    return current


def decode_chunks(models: dict, latents: torch.Tensor, chunk: int = 8, pad: int = 0):
    """Decode (1, F, 4, h, w) latents as the release does: ``chunk`` frames at a time from the first (pads
    included: the temporal decoder mixes the frames of a chunk, so the chunking is part of the result), each
    chunk with ``num_frames`` its length; yields the frames H×W×3 float32 in [0, 1], pads dropped, chunks
    made of pads only skipped."""
    vae = models["vae"]
    device = vae.device
    frames = latents.shape[1]
    for begin in range(0, frames, chunk):
        end = min(begin + chunk, frames)
        keep = range(max(begin, pad), min(end, frames - pad))
        if not len(keep):
            continue
        part = latents[0, begin:end].to(device, vae.dtype) / vae.config.scaling_factor
        pictures = vae.decode(part, num_frames=end - begin).sample
        pictures = (pictures.float() * 0.5 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        for f in keep:
            yield pictures[f - begin]


def window_coverage(frames: int, window: int, overlap: int, shift: int) -> np.ndarray:
    """How much weight each frame gets in one step's blend (ones everywhere, for tests and checks)."""
    plan = window_plan(frames, window, overlap, shift)
    total = np.zeros(frames)
    for indices, weights in zip(plan, blend_weights(plan, frames)):
        np.add.at(total, indices, weights)
    return total


__all__: Sequence[str] = (
    "MotionSource",
    "TensorMotion",
    "blend_weights",
    "crossfade",
    "decode_chunks",
    "guidance_scales",
    "guide",
    "pad_motion",
    "pad_weights",
    "sample",
    "schedule",
    "segment_plan",
    "segment_weights",
    "step_shifts",
    "steps_run",
    "window_plan",
)
