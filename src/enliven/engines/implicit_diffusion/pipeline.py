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

from enliven.engines.diffusion.setup import device_dtype
from enliven.engines.implicit_diffusion import svd_sampling as sampling

DECODE_CHUNK = 8  # the release's decode_chunk_size


@dataclass
class DrivingFrame:
    """One driving frame as the model reads it: the driver's square head crop (uint8 RGB, the release's 512²
    driving crop, one box for the clip) and the driver's 478 landmarks in that crop's pixels."""

    crop: np.ndarray
    landmarks: np.ndarray


def _device_dtype(models) -> tuple[torch.device, torch.dtype]:
    return device_dtype(models["unet"])


@torch.no_grad()
def reference_latent(models, reference_image: np.ndarray, augmentation: float = 0.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """The VAE posterior mean (1, 4, H/8, W/8) of an H×W×3 uint8 picture, unscaled (float32). The release runs
    the encoder in fp32 when the VAE asks for it (``force_upcast``), so do we.

    ``augmentation``: the release's ``noise_aug_strength``: standard normal noise of the picture's shape (in
    [-1, 1] units, drawn from ``generator`` on the CPU in float32, as the release's first draw from its generator)
    times this is added to the picture before encoding. The release encodes the picture twice, plain (the
    start of an ``i2i_noise_strength`` run) and augmented (what every frame's input carries); at 0 both are this."""
    vae = models["vae"]
    pixels = torch.from_numpy(np.ascontiguousarray(reference_image)).permute(2, 0, 1)[None].float() / 255.0
    pixels = (pixels - 0.5) / 0.5
    if augmentation:
        pixels = pixels + augmentation * torch.randn(pixels.shape, generator=generator, dtype=torch.float32)
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
    """A clip's motion kept small (a ``sampling.MotionSource`` over clip frame indices): per frame, the expression
    encoder's features and the 6 pose values (rotation in degrees ‖ translation × 0, as the release), and its
    chunk's intensity buckets; ``tokens(frames)`` runs the refiner on just those frames when a window needs them,
    which is what ``motion.motion_tokens`` gives for a whole chunk (the refiner treats each frame on its own).
    ``drop_before(f)`` forgets the frames before clip frame f (a stream's finished segments)."""

    def __init__(self, models: dict):
        self.models = models
        self.start = 0  # clip index of the first frame held
        self.features: list[torch.Tensor] = []  # per chunk (n, 512), on the CPU
        self.poses: list[torch.Tensor] = []  # per chunk (n, 6)
        self.buckets: list[tuple[int, int]] = []  # per held frame (head, expression)

    def __len__(self) -> int:
        """Frames encoded so far (clip indices 0 … len − 1; those before ``start`` are dropped)."""
        return self.start + len(self.buckets)

    @property
    def held(self) -> int:
        return len(self.buckets)

    @torch.no_grad()
    def add_chunk(self, face_crops: torch.Tensor, pose_crops: torch.Tensor, head_id: int, exp_id: int) -> None:
        from enliven.engines.implicit_diffusion import implicit_motion as motion

        expression, headpose = self.models["expression"], self.models["headpose"]
        self.features.append(expression(face_crops.to(next(expression.parameters()))).float().cpu())
        rotation, translation = headpose(motion.head_pose_input(pose_crops.to(next(headpose.parameters()))))
        self.poses.append(torch.cat([rotation, translation * 0], dim=-1).float().cpu())
        self.buckets += [(head_id, exp_id)] * len(face_crops)

    def _join(self) -> None:
        if len(self.features) > 1:  # joined once per chunks added, not per window
            self.features, self.poses = [torch.cat(self.features)], [torch.cat(self.poses)]

    def drop_before(self, frame: int) -> None:
        cut = min(max(frame - self.start, 0), self.held)
        if not cut:
            return
        self._join()
        # copies, so the dropped frames' storage is freed (a slice would keep it)
        self.features = [self.features[0][cut:].clone()]
        self.poses = [self.poses[0][cut:].clone()]
        self.buckets = self.buckets[cut:]
        self.start += cut

    @torch.no_grad()
    def tokens(self, frames) -> torch.Tensor:
        refiner = self.models["motion_proj"]
        weight = next(refiner.parameters())
        self._join()
        features, poses = self.features[0], self.poses[0]
        frames = [f - self.start for f in frames]
        if frames and (min(frames) < 0 or max(frames) >= self.held):
            raise IndexError(f"motion of frames {self.start}…{len(self) - 1} held, asked for others")
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


class SegmentMotion:
    """The ``sampling.MotionSource`` of clip frames [start, end) of a ``DrivingMotion``: frame i is clip frame
    start + i."""

    def __init__(self, motion: DrivingMotion, start: int, end: int):
        self.motion, self.start, self.end = motion, start, end

    def __len__(self) -> int:
        return self.end - self.start

    def tokens(self, frames) -> torch.Tensor:
        return self.motion.tokens([self.start + f for f in frames])


class MotionReader:
    """Reads a stream of driving frames on demand, ``chunk`` frames at a time from the clip's first (each chunk's
    intensity buckets from its own frames, the expression crops boxed by the clip's first frame's face, as the
    release), so a frame's motion does not depend on how the clip is cut into segments; a chunk's pictures are
    dropped once encoded."""

    def __init__(self, models: dict, frames: Iterable[DrivingFrame], chunk: int = sampling.WINDOW):
        self.motion = DrivingMotion(models)
        self.frames = iter(frames)
        self.chunk = chunk
        self.device = next(models["expression"].parameters()).device
        self.box_landmarks = None
        self.pending: list[DrivingFrame] = []
        self.exhausted = False

    @property
    def read(self) -> int:
        """Driving frames taken from the stream so far."""
        return len(self.motion) + len(self.pending)

    def _flush(self) -> None:
        from enliven.engines.implicit_diffusion import implicit_motion as motion

        pending = self.pending
        faces = torch.stack([motion.face_crop_256(f.crop, f.landmarks, self.box_landmarks) for f in pending])
        poses = torch.stack([motion.pose_crop_256(f.crop) for f in pending])
        head, exp = motion.intensity_buckets(np.stack([motion.five_points(f.landmarks) for f in pending]))
        self.motion.add_chunk(faces.to(self.device), poses.to(self.device), head, exp)
        self.pending = []

    def _pull(self) -> bool:
        frame = next(self.frames, None)
        if frame is None:
            self.exhausted = True
            if self.pending:
                self._flush()
            return False
        if self.box_landmarks is None:  # the release boxes every expression crop by the first frame's face
            self.box_landmarks = frame.landmarks
        self.pending.append(frame)
        if len(self.pending) == self.chunk:
            self._flush()
        return True

    @torch.no_grad()
    def read_through(self, end: int | None) -> tuple[int, bool]:
        """Encode the motion of clip frames up to ``end`` (None: the whole stream), reading whole chunks, and one
        frame past ``end`` if needed to know whether the stream goes on. Returns (the end reached: ``end`` or the
        stream's length if shorter, whether the stream ends there)."""
        while not self.exhausted and (end is None or len(self.motion) < end or self.read <= end):
            self._pull()
        reached = len(self.motion) if end is None else min(end, len(self.motion))
        return reached, self.exhausted and reached == len(self.motion)


@torch.no_grad()
def encode_motion(models, frames: Iterable[DrivingFrame], chunk: int = sampling.WINDOW) -> DrivingMotion:
    """The motion of a whole stream of driving frames (``MotionReader`` read to its end)."""
    reader = MotionReader(models, frames, chunk)
    reader.read_through(None)
    if not len(reader.motion):
        raise ValueError("no driving frames")
    return reader.motion


# A segment of 250 driving frames (10 s at 25 fps): its latents are (250 + 2 × 15 pads) × 128 KB = 36 MB at 512²
# in fp32 (with the motion kept, 2 KB a frame, and the 25 decoded overlap frames held for the cross-fade, 3 MB
# each: about 110 MB in all, whatever the clip's length); its first frame comes out after one segment is sampled,
# not the clip; a seam (a cross-fade) every 9 s is rare next to the release's own window seams every 22 frames;
# and the pads and the overlap cost (30 + 25) / 225 ≈ 24 % more UNet work than one pass over a long clip
# (shorter segments cost more: 100 frames, 75 %). The overlap is one window (25 frames, 1 s): a cross-fade long
# enough not to show as a cut, short enough to cost little.
SEGMENT = 250
SEGMENT_OVERLAP = 25


def check_segment(segment: int | None, overlap: int, window: int) -> None:
    if segment is None:
        return
    if segment < window:
        raise ValueError(f"a segment ({segment} frames) must hold at least a window ({window} frames)")
    if not 0 <= 2 * overlap <= segment:
        raise ValueError(f"segment overlap must be between 0 and half the segment ({segment // 2}), got {overlap}")


def stream_lookahead(segment: int, window: int = sampling.WINDOW) -> int:
    """How many driving frames ``generate_stream`` reads past the first frame it has not yet yielded, at most:
    a segment, completed to the motion chunk grid (whole chunks of ``window`` frames), or one frame past it to
    know whether the clip goes on."""
    return segment + max(window - 1, 1)


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
    segment: int | None = SEGMENT,
    segment_overlap: int = SEGMENT_OVERLAP,
    latents: torch.Tensor | None = None,
    decode_chunk: int = DECODE_CHUNK,
    fps: float = sampling.FPS,
    motion_bucket: int = sampling.MOTION_BUCKET,
    i2i_noise_strength: float = sampling.I2I_NOISE_STRENGTH,
    motion_scale: float | None = None,
    noise_augmentation: float = sampling.NOISE_AUGMENTATION,
    store: str | torch.device = "cpu",
    on_step: Callable[[int], None] | None = None,
) -> Iterator[np.ndarray]:
    """Frames H×W×3 float32 in [0, 1], one per driving frame, given out as each decoded chunk is ready.

    ``reference_image``: the H×W×3 uint8 reference crop (H, W multiples of 8; 512² for the release's weights),
    ``reference_landmarks``: its 478 landmarks in its pixels (for ArcFace's alignment; without ``arcface`` in
    ``models`` the identity is zeros, the release's fallback).

    The clip is sampled one segment at a time (``sampling.segment_plan``): at most ``segment`` driving frames
    (None: the whole clip), each next one overlapping the previous by ``segment_overlap`` frames. A segment is
    sampled as the release samples a whole clip (every denoising step visits all its windows, see ``sampling``),
    so its driving frames are read (their motion encoded, pixels dropped) before its first frame comes out; its
    frames are given out as decoded, except the last ``segment_overlap``, held until the next segment's are
    decoded and cross-faded with them (linear weights summing to one, ``sampling.segment_weights``). Nothing of
    a finished segment is kept: memory is bounded by the segment, and at most ``stream_lookahead(segment,
    window)`` driving frames are read past the first frame not yet given out. A clip of at most ``segment``
    frames is exactly the release's result. The noise of clip frame i is ``frame_noise(seed, pad + i)`` in every
    segment holding it. ``latents``: the whole clip's initial noise (1, T + 2·pad, 4, h, w), a segment taking
    its frames' part. ``decode_chunk``: frames decoded together (the release's ``decode_chunk_size``, 8). Other
    options (``fps``, ``motion_bucket``, ``i2i_noise_strength``, ``motion_scale``, …) as ``sampling.sample``;
    ``noise_augmentation``'s noise on the reference picture is the first draw of a generator seeded with ``seed``
    (the release's order), one draw for the whole clip.
    """
    height, width = reference_image.shape[:2]
    if height % 8 or width % 8:
        raise ValueError(f"the reference must be a multiple of 8 on each side, got {width}×{height}")
    check_segment(segment, segment_overlap, window)
    with torch.no_grad():
        tokens = image_tokens(models, reference_image, reference_landmarks)
        latent = reference_latent(models, reference_image)
        pose = pose_features(models, (height, width))
        if seed is None:  # one seed for every segment: shared frames start from the same noise
            seed = int(torch.seed())
        augmented = None
        if noise_augmentation:
            augmented = reference_latent(models, reference_image, noise_augmentation,
                                         torch.Generator().manual_seed(seed))
        reader = MotionReader(models, driving_frames, chunk=window)
        ramp = sampling.crossfade(segment_overlap).astype(np.float32)
        start, held = 0, []  # held: the previous segment's last frames, waiting for the cross-fade
        while True:
            end, last = reader.read_through(None if segment is None else start + segment)
            if end == 0:
                raise ValueError("no driving frames")
            reader.motion.drop_before(start)  # the finished segments' motion
            part = None
            if latents is not None:
                if latents.shape[1] < end + 2 * pad or (last and latents.shape[1] != end + 2 * pad):
                    has = f"{end}" if last else f"at least {end}"
                    raise ValueError(f"latents for {latents.shape[1] - 2 * pad} frames (+ pads), the clip has {has}")
                part = latents[:, start : end + 2 * pad]
            clean = sampling.sample(
                models,
                tokens,
                SegmentMotion(reader.motion, start, end),
                pose,
                latent,
                steps=steps,
                guidance=guidance,
                window=window,
                overlap=overlap,
                shift_offset=shift_offset,
                pad=pad,
                latents=part,
                seed=seed,
                noise_start=start,
                fps=fps,
                motion_bucket=motion_bucket,
                i2i_noise_strength=i2i_noise_strength,
                motion_scale=motion_scale,
                noise_augmentation=noise_augmentation,
                augmented_latent=augmented,
                store=store,
                on_step=on_step,
            )
            keep = 0 if last else segment_overlap
            tail: list[np.ndarray] = []
            for i, frame in enumerate(sampling.decode_chunks(models, clean, chunk=decode_chunk, pad=pad)):
                if i < len(held):  # the previous segment's frame fades out as this one's fades in
                    frame = (1 - ramp[i]) * held[i] + ramp[i] * frame
                    held[i] = None
                if i >= end - start - keep:
                    tail.append(frame.copy())  # a copy: the decoded chunk it is a view of can go
                else:
                    yield frame
            del clean, frame  # the last frame is a view of its decoded chunk: let the chunk go too
            if last:
                return
            held, start = tail, end - segment_overlap


def generate(
    models: dict, reference_image: np.ndarray, driving_frames: Iterable[DrivingFrame], **options
) -> np.ndarray:
    """``generate_stream`` gathered: F×H×W×3 float32 in [0, 1]."""
    return np.stack(list(generate_stream(models, reference_image, driving_frames, **options)))
