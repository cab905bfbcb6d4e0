"""Follow-Your-Emoji's sampling: reference picture + landmark pictures → frames (before paste-back).

Matches the release's ``VideoPipeline.__call__`` for a clip that fits in one window (same weights and initial
latents → the same frames), and goes beyond it for longer clips: real overlapping windows with blended seams,
or the paper's progressive keyframes-first schedule (the default past one window), see ``diffusion.windows``.

Per clip: the reference picture goes through the VAE (its latent mean × the scaling factor) and, at timestep 0,
through the reference net, whose tokens the denoiser's self-attention sees; CLIP's last hidden state (before
its final layer norm) of the reference, through ``clip_fc``, is the cross-attention context, zeros for the
unconditional branch (which also skips the reference tokens); the landmark guider's features of each frame
are added after ``conv_in``. DDIM (zero terminal SNR, trailing, v-prediction), 30 steps, guidance 3.5.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from enliven.engines.diffusion import samplers, sampling
from enliven.engines.diffusion.setup import device_dtype
from enliven.engines.diffusion.unet import denoise, reference_tokens
from enliven.engines.diffusion.windows import Job, keyframe_stride, progressive_jobs, segment_jobs, segment_span

DEFAULT_STEPS = 30
DEFAULT_GUIDANCE = 3.5
CLIP_SIZE = 224


@dataclass(frozen=True)
class Context:
    """How frames are grouped for the denoiser. ``window``: frames per denoiser call (the release trained on
    16); ``overlap``: frames shared by neighbouring sliding windows; ``progressive``: keyframes first (None:
    when the clip is longer than a window); ``stride``: frames between keyframes (None: window − 1)."""

    window: int = 16
    overlap: int = 4
    progressive: bool | None = None
    stride: int | None = None


def clip_input(image: np.ndarray) -> torch.Tensor:
    """CLIP's preprocessing of an H×W×3 uint8 picture (transformers' ``CLIPImageProcessor`` defaults: shortest
    side to 224, centre crop 224, CLIP's mean and std), 3×224×224 float32."""
    from PIL import Image

    try:  # transformers 5 without torchvision: the PIL implementation, named so it does not warn
        from transformers import CLIPImageProcessorPil as processor_class
    except ImportError:
        from transformers import CLIPImageProcessor as processor_class
    processor = processor_class()
    return processor(images=Image.fromarray(image), return_tensors="pt").pixel_values[0]


def _device_dtype(models) -> tuple[torch.device, torch.dtype]:
    return device_dtype(models["denoiser"])


@torch.no_grad()
def encode_reference(models, reference_image: np.ndarray) -> torch.Tensor:
    """The VAE latent of an H×W×3 uint8 picture: mean of the posterior × scaling factor, (1, 4, H/8, W/8)."""
    device, dtype = _device_dtype(models)
    vae = models["vae"]
    pixels = torch.from_numpy(np.ascontiguousarray(reference_image)).to(device).permute(2, 0, 1)[None].float() / 255.0
    pixels = (pixels * 2.0 - 1.0).to(vae.dtype)
    return vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor


@torch.no_grad()
def decode(models, latents: torch.Tensor) -> np.ndarray:
    """(1, 4, F, h, w) latents → F×H×W×3 float32 in [0, 1], one frame at a time (VAE slicing)."""
    vae = models["vae"]
    frames = []
    for i in range(latents.shape[2]):
        picture = vae.decode(latents[:, :, i].to(vae.dtype) / vae.config.scaling_factor).sample
        frames.append((picture / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 0).float().cpu().numpy())
    return np.stack(frames)


@dataclass
class Conditioning:
    """What the denoiser sees of one reference picture, worked out once per picture: the cross-attention context
    (CLIP states; with guidance, a zero row first for the unconditional branch), the reference net's tokens, and
    which batch rows use them."""

    states: torch.Tensor
    reference: dict[str, torch.Tensor]
    use_reference: torch.Tensor | None
    guidance: float

    @property
    def with_guidance(self) -> bool:
        return sampling.uses_guidance(self.guidance)


@torch.no_grad()
def condition(models, reference_image: np.ndarray, guidance: float = DEFAULT_GUIDANCE,
              clip_image: torch.Tensor | None = None) -> Conditioning:
    device, _ = _device_dtype(models)
    clip_pixels = clip_input(reference_image) if clip_image is None else clip_image
    encoder = models["image_encoder"]
    clip_states = encoder(clip_pixels[None].to(device=device, dtype=encoder.dtype)).last_hidden_state
    reference = reference_tokens(models["reference_net"], encode_reference(models, reference_image), clip_states)
    # batch rows: unconditional (zero CLIP states, no reference tokens), conditional
    if sampling.uses_guidance(guidance):
        states = torch.cat([torch.zeros_like(clip_states), clip_states])
        reference = {k: v.repeat(2, 1, 1) for k, v in reference.items()}
        return Conditioning(states, reference, torch.tensor([False, True], device=device), guidance)
    return Conditioning(clip_states, reference, None, guidance)


@torch.no_grad()
def landmark_features(models, landmark_images: np.ndarray) -> torch.Tensor:
    """The guider's features (1, C0, F, h, w) of F×H×W×3 uint8 landmark pictures."""
    device, dtype = _device_dtype(models)
    pictures = torch.from_numpy(np.ascontiguousarray(landmark_images)).to(device).permute(3, 0, 1, 2)[None]
    return models["guider"]((pictures.float() / 255.0).to(dtype))


def _predictor(models, cond: Conditioning, features_of) -> sampling.Predictor:
    """The guided denoiser for a window; ``features_of(frame indices)`` gives the window's landmark features."""

    def predict(x: torch.Tensor, t: torch.Tensor, frame_indices) -> torch.Tensor:
        residual = features_of(frame_indices)
        if cond.with_guidance:
            x, residual = torch.cat([x, x]), torch.cat([residual, residual])
        out = denoise(models["denoiser"], x, t, cond.states, input_residual=residual, reference=cond.reference,
                      use_reference=cond.use_reference)
        if cond.with_guidance:
            unconditional, conditional = out.chunk(2)
            return sampling.guide(unconditional, conditional, cond.guidance)
        return out

    return predict


@torch.no_grad()
def generate(
    models: dict,
    reference_image: np.ndarray,
    landmark_images: np.ndarray,
    *,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    seed: int | None = None,
    latents: torch.Tensor | None = None,
    clip_image: torch.Tensor | None = None,
    context: Context | None = None,
) -> np.ndarray:
    """Frames F×H×W×3 float32 in [0, 1] for landmark pictures F×H×W×3 uint8 and a reference H×W×3 uint8.

    ``latents`` (1, 4, F, H/8, W/8) replaces the initial noise (else drawn from ``seed`` on the models' device
    as the release does); ``clip_image`` (3×224×224) replaces CLIP's preprocessing of the reference.
    Holds the whole clip; for long clips, ``generate_stream`` holds one segment at a time.
    """
    device, dtype = _device_dtype(models)
    context = context or Context()
    landmark_images = np.asarray(landmark_images)
    if landmark_images.ndim != 4 or landmark_images.shape[1:] != reference_image.shape:
        raise ValueError(f"landmark pictures {landmark_images.shape} must be F × {reference_image.shape}")
    frames, height, width = landmark_images.shape[:3]
    shape = (1, 4, frames, height // 8, width // 8)
    if latents is None:
        generator = torch.Generator(device)
        generator.manual_seed(int(seed) if seed is not None else int(torch.seed()))
        latents = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    elif tuple(latents.shape) != shape:
        raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
    latents = latents.to(device=device, dtype=dtype)

    cond = condition(models, reference_image, guidance, clip_image)
    guide_features = landmark_features(models, landmark_images)  # (1, C0, F, h, w)
    predict = _predictor(models, cond, lambda frame_indices: guide_features[:, :, list(frame_indices)])

    scheduler = samplers.ddim()
    progressive = context.progressive if context.progressive is not None else frames > context.window
    if not progressive or frames <= context.window:
        final = sampling.sample_sliding(predict, latents, scheduler, steps, context.window, context.overlap)
    else:
        done: dict[int, torch.Tensor] = {}
        for job in progressive_jobs(frames, context.window, context.stride):
            known = {f: done[f] for f in job.known}
            result = sampling.sample_job(predict, latents[:, :, list(job.frames)].clone(), job.frames, known,
                                         scheduler, steps)
            for i, f in enumerate(job.frames):
                if f not in known:
                    done[f] = result[:, :, i]
        final = torch.stack([done[f] for f in range(frames)], dim=2)
    return decode(models, final)


def frame_noise(seed: int, index: int, latent_size: tuple[int, int], device, dtype) -> torch.Tensor:
    """The initial noise (1, 4, h, w) of clip frame ``index`` (``diffusion.sampling.frame_noise``: its own
    generator seeded from (seed, index), so a stream draws each frame's noise when it reaches it, whatever the
    clip's length or how it is cut into windows; on the same device the same seed gives the same frames)."""
    return sampling.frame_noise(seed, index, latent_size, device, dtype, channels=4)


def clip_noise(seed: int, frames: int, latent_size: tuple[int, int], device="cpu", dtype=torch.float32) -> torch.Tensor:
    """``frame_noise`` of frames 0…F−1 stacked as a clip's latents (1, 4, F, h, w): what ``generate_stream`` draws."""
    return torch.stack([frame_noise(seed, f, latent_size, device, dtype) for f in range(frames)], dim=2)


def stream_lookahead(context: Context) -> int:
    """How many items ``generate_stream`` reads past the first frame it has not yet yielded, at most."""
    return max(context.window, segment_span(context.window, context.stride)) + 1


@torch.no_grad()
def generate_stream(
    models: dict,
    reference_image: np.ndarray,
    items: Iterable,
    *,
    draw: Callable[[object], np.ndarray] | None = None,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    seed: int | None = None,
    context: Context | None = None,
) -> Iterator[np.ndarray]:
    """``generate`` for a stream: frames H×W×3 float32 in [0, 1], one per item, in order, as soon as final.

    ``items``: per frame, its landmark picture, or anything ``draw`` turns into one (pictures are drawn per job,
    so only the items are held). A stream of at most ``context.window`` items is one window, exactly as
    ``generate``; a longer one follows the progressive schedule one segment at a time (``windows.segment_jobs``:
    the same jobs as ``generate``'s ``progressive_jobs`` over the whole clip), keeping the segment's items and
    latents only, never more than ``stream_lookahead(context)`` items read past the first frame not yielded.
    The noise of frame i is ``frame_noise(seed, i)``: ``generate(..., latents=clip_noise(seed, F, ...))`` gives
    the same frames (up to float rounding).
    """
    device, dtype = _device_dtype(models)
    context = context or Context()
    draw = draw or (lambda item: item)
    seed = int(torch.seed()) if seed is None else int(seed)
    height, width = reference_image.shape[:2]
    latent_size = (height // 8, width // 8)
    window = context.window
    cond = condition(models, reference_image, guidance)
    scheduler = samplers.ddim()
    source = iter(items)
    held: dict[int, object] = dict(enumerate(itertools.islice(source, window + 1)))
    if not held:
        return

    def run(job: Job, done: dict[int, torch.Tensor]) -> None:
        pictures = np.stack([draw(held[f]) for f in job.frames])
        if pictures.shape[1:] != reference_image.shape:
            raise ValueError(f"landmark pictures {pictures.shape[1:]} must match the reference {reference_image.shape}")
        features = landmark_features(models, pictures)
        predict = _predictor(models, cond, lambda frame_indices: features)
        noise = torch.cat([frame_noise(seed, f, latent_size, device, dtype)[:, :, None] for f in job.frames], dim=2)
        known = {f: done[f] for f in job.known}
        result = sampling.sample_job(predict, noise, job.frames, known, scheduler, steps)
        for i, f in enumerate(job.frames):
            if f not in known:
                done[f] = result[:, :, i]

    if len(held) <= window:  # the whole stream fits in one window: the release's case
        done: dict[int, torch.Tensor] = {}
        run(Job(tuple(range(len(held)))), done)
        for f in range(len(held)):
            yield decode(models, done[f][:, :, None])[0]
        return

    stride = context.stride or keyframe_stride(window)
    span = segment_span(window, stride)
    start, carried, next_out, ended = 0, None, 0, False
    while True:
        while not ended and max(held) < start + span:  # read the segment's items
            item = next(source, _END)
            if item is _END:
                ended = True
            else:
                held[max(held) + 1] = item
        end = min(start + span, max(held))
        done = {} if carried is None else {start: carried}
        for job in segment_jobs(start, end, window, stride, first_known=carried is not None):
            run(job, done)
            while next_out in done:  # everything before it is final: give it out now
                yield decode(models, done[next_out][:, :, None])[0]
                next_out += 1
        if ended and end == max(held):
            return
        carried, start = done[end], end
        held = {f: item for f, item in held.items() if f >= start}


_END = object()
