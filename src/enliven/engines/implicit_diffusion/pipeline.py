"""HunyuanPortrait from pictures: a reference crop and driving crops → frames (before paste-back).

As the release's ``inference.py`` + ``HunyuanLongSVDPipeline``, from the point where faces are found:

* **Appearance** (once): the reference crop (the release's 512² head-and-shoulders crop) through DINOv2 with the
  ArcFace identity (``appearance.encode_appearance``; ArcFace from ``arcface.onnx`` on a 112² crop aligned from
  our landmarks' 5 points, or zeros without the file, as the release's fallback), then ``image_proj`` → 64
  tokens. The VAE's posterior mean of the reference (pixels in [−1, 1]) is the conditioning latent.
* **Pose**: the release feeds its pose guider black pictures only, so its features are one constant map,
  computed once and shared by every frame.
* **Motion** (per chunk of ``window`` driving frames from the first, as the release): the expression crop
  (``motion.face_crop_256``, boxed by the first driving frame's face), the head-pose crop (the driving crop at
  256²), the chunk's intensity buckets from the landmarks' 5 points. Driving pixels are dropped as soon as their
  chunk is encoded: what is kept per frame is the expression encoder's 512 values and the 6 pose values
  (``DrivingMotion``), and the refiner makes a window's 64 motion tokens per frame when the window runs (the
  tokens ``motion.motion_tokens`` gives, 128 times smaller to hold).
* **Sampling** and **decoding**: ``sampling.sample`` and ``sampling.decode_chunks``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from enliven.engines.implicit_diffusion import sampling

DECODE_CHUNK = 8  # the release's decode_chunk_size


@dataclass
class DrivingFrame:
    """One driving frame as the model reads it: the driver's square head crop (uint8 RGB, the release's 512²
    driving crop, one box for the clip) and the driver's 478 landmarks in that crop's pixels."""

    crop: np.ndarray
    landmarks: np.ndarray


def _device_dtype(models) -> tuple[torch.device, torch.dtype]:
    weight = models["unet"].conv_in.weight
    return weight.device, weight.dtype


@torch.no_grad()
def reference_latent(models, reference_image: np.ndarray) -> torch.Tensor:
    """The VAE posterior mean (1, 4, H/8, W/8) of an H×W×3 uint8 picture, unscaled (float32). The release runs
    the encoder in fp32 when the VAE asks for it (``force_upcast``), so do we."""
    vae = models["vae"]
    pixels = torch.from_numpy(np.ascontiguousarray(reference_image)).permute(2, 0, 1)[None].float() / 255.0
    pixels = (pixels - 0.5) / 0.5
    dtype = vae.dtype
    upcast = dtype != torch.float32 and bool(getattr(vae.config, "force_upcast", False))
    if upcast:
        vae.to(torch.float32)
    try:
        mean = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mean
    finally:
        if upcast:
            vae.to(dtype)
    return mean.float()


@torch.no_grad()
def image_tokens(models, reference_image: np.ndarray, reference_landmarks=None) -> torch.Tensor:
    """The UNet's image tokens (1, 64, D) of the reference crop: DINOv2 with the ArcFace identity, ``image_proj``.
    ``reference_landmarks`` (478 points in the crop's pixels) place ArcFace's crop; needed with ``arcface``."""
    from enliven.engines.implicit_diffusion import appearance, identity

    if models.get("arcface") is not None and reference_landmarks is None:
        raise ValueError("ArcFace needs the reference's landmarks (reference_landmarks)")
    identity_features = identity.identity_features(models.get("arcface"), reference_image, reference_landmarks)
    tokens = appearance.encode_appearance(models, appearance.dino_picture(reference_image), identity_features)
    projector = models["image_proj"]
    return projector(tokens.to(next(projector.parameters()))).float()


@torch.no_grad()
def pose_features(models, size: tuple[int, int]) -> torch.Tensor:
    """The pose guider's map (1, C0, h, w) of the black picture the release always gives it."""
    guider = models["pose_guider"]
    weight = next(guider.parameters())
    black = torch.zeros(1, 3, 1, *size, device=weight.device, dtype=weight.dtype)
    return guider(black)[:, :, 0].float()


class DrivingMotion:
    """A clip's motion kept small (a ``sampling.MotionSource``): per frame, the expression encoder's features
    and the 6 pose values (rotation in degrees ‖ translation × 0, as the release), and its chunk's intensity
    buckets; ``tokens(frames)`` runs the refiner on just those frames when a window needs them, which is what
    ``motion.motion_tokens`` gives for a whole chunk (the refiner treats each frame on its own)."""

    def __init__(self, models: dict):
        self.models = models
        self.features: list[torch.Tensor] = []  # per chunk (n, 512), on the CPU
        self.poses: list[torch.Tensor] = []  # per chunk (n, 6)
        self.buckets: list[tuple[int, int]] = []  # per frame (head, expression)

    def __len__(self) -> int:
        return len(self.buckets)

    @torch.no_grad()
    def add_chunk(self, face_crops: torch.Tensor, pose_crops: torch.Tensor, head_id: int, exp_id: int) -> None:
        from enliven.engines.implicit_diffusion import motion

        expression, headpose = self.models["expression"], self.models["headpose"]
        self.features.append(expression(face_crops.to(next(expression.parameters()))).float().cpu())
        rotation, translation = headpose(motion.head_pose_input(pose_crops.to(next(headpose.parameters()))))
        self.poses.append(torch.cat([rotation, translation * 0], dim=-1).float().cpu())
        self.buckets += [(head_id, exp_id)] * len(face_crops)

    @torch.no_grad()
    def tokens(self, frames) -> torch.Tensor:
        refiner = self.models["motion_proj"]
        weight = next(refiner.parameters())
        if len(self.features) > 1:  # joined once, not per window
            self.features, self.poses = [torch.cat(self.features)], [torch.cat(self.poses)]
        features, poses = self.features[0], self.poses[0]
        frames = list(frames)
        out: list[torch.Tensor | None] = [None] * len(frames)
        for ids in sorted(set(self.buckets[f] for f in frames)):  # the refiner takes one bucket pair per call
            slots = [i for i, f in enumerate(frames) if self.buckets[f] == ids]
            chosen = [frames[i] for i in slots]
            made = refiner(features[chosen].to(weight), *ids)
            pose = poses[chosen].to(made)
            made = torch.cat([made, pose[:, None, :].expand(-1, made.shape[1], -1)], dim=-1)
            for i, token in zip(slots, made):
                out[i] = token
        return torch.stack(out)


@torch.no_grad()
def encode_motion(models, frames: Iterable[DrivingFrame], chunk: int = sampling.WINDOW) -> DrivingMotion:
    """The motion of a stream of driving frames, ``chunk`` frames at a time from the first (each chunk's
    intensity buckets from its own frames, the expression crops boxed by the first frame's face, as the
    release); a chunk's pictures are dropped once encoded."""
    from enliven.engines.implicit_diffusion import motion

    encoded = DrivingMotion(models)
    device = next(models["expression"].parameters()).device
    box_landmarks = None
    pending: list[DrivingFrame] = []

    def flush():
        faces = torch.stack([motion.face_crop_256(f.crop, f.landmarks, box_landmarks) for f in pending])
        poses = torch.stack([motion.pose_crop_256(f.crop) for f in pending])
        head, exp = motion.intensity_buckets(np.stack([motion.five_points(f.landmarks) for f in pending]))
        encoded.add_chunk(faces.to(device), poses.to(device), head, exp)
        pending.clear()

    for frame in frames:
        if box_landmarks is None:  # the release boxes every expression crop by the first frame's face
            box_landmarks = frame.landmarks
        pending.append(frame)
        if len(pending) == chunk:
            flush()
    if pending:
        flush()
    if not len(encoded):
        raise ValueError("no driving frames")
    return encoded


def generate_stream(
    models: dict,
    reference_image: np.ndarray,
    driving_frames: Iterable[DrivingFrame],
    *,
    reference_landmarks=None,
    steps: int = sampling.DEFAULT_STEPS,
    guidance=sampling.DEFAULT_GUIDANCE,
    seed: int | None = None,
    window: int = sampling.WINDOW,
    overlap: int = sampling.OVERLAP,
    shift_offset: int = sampling.SHIFT_OFFSET,
    pad: int = sampling.PAD,
    latents: torch.Tensor | None = None,
    decode_chunk: int = DECODE_CHUNK,
    store: str | torch.device = "cpu",
    on_step: Callable[[int], None] | None = None,
) -> Iterator[np.ndarray]:
    """Frames H×W×3 float32 in [0, 1], one per driving frame, given out as each decoded chunk is ready.

    ``reference_image``: the H×W×3 uint8 reference crop (H, W multiples of 8; 512² for the release's weights),
    ``reference_landmarks``: its 478 landmarks in its pixels (for ArcFace's alignment; without ``arcface`` in
    ``models`` the identity is zeros, the release's fallback). The whole driving stream is read (its motion
    encoded, its pixels dropped) before sampling starts: every denoising step visits every window of the clip
    (see ``sampling``). Options as ``sampling.sample``.
    """
    height, width = reference_image.shape[:2]
    if height % 8 or width % 8:
        raise ValueError(f"the reference must be a multiple of 8 on each side, got {width}×{height}")
    with torch.no_grad():
        tokens = image_tokens(models, reference_image, reference_landmarks)
        latent = reference_latent(models, reference_image)
        pose = pose_features(models, (height, width))
        motion = encode_motion(models, driving_frames, chunk=window)
        clean = sampling.sample(
            models,
            tokens,
            motion,
            pose,
            latent,
            steps=steps,
            guidance=guidance,
            window=window,
            overlap=overlap,
            shift_offset=shift_offset,
            pad=pad,
            latents=latents,
            seed=seed,
            store=store,
            on_step=on_step,
        )
        del motion
        yield from sampling.decode_chunks(models, clean, chunk=decode_chunk, pad=pad)


def generate(
    models: dict, reference_image: np.ndarray, driving_frames: Iterable[DrivingFrame], **options
) -> np.ndarray:
    """``generate_stream`` gathered: F×H×W×3 float32 in [0, 1]."""
    return np.stack(list(generate_stream(models, reference_image, driving_frames, **options)))
