"""The ``implicit-diffusion`` engine: HunyuanPortrait on our pipeline (a windowed engine).

Per source (``prepare``): the face crop, resized to the working size (512, the release's; the UNet's own
sample size when smaller, as test weights are), is the reference picture; its landmarks, scaled the same way,
place ArcFace's aligned crop. The paste-back mask is a feathered square inside the crop (the model redraws the
whole crop, background included; the release pastes back with a 10 % linear border, ours feathers over 10 %).

Per stream (``render_stream``): the model reads motion from the driver's *pixels* (expression and head-pose
encoders), not from our retargeted landmarks, so each driving frame must carry the driver's crop
(``driving_crop``: one axis-aligned box per shot, about the release's box: the face box grown by its own size
on every side, made square). The driver's landmarks, mapped into that crop, give the expression crop and the
intensity buckets. Frames where the driver's face is lost repeat the last seen one (the first seen one before
any). ``pose_limits`` do not apply: no target landmarks are drawn.

The release's sampling visits every window of the clip at every step; here the clip is cut into segments of
``segment`` driving frames (default 250, 10 s at 25 fps, ``pipeline.SEGMENT``) overlapping by
``segment_overlap`` (default 25), each sampled as the release samples a clip and cross-faded with the next over
the overlap (``pipeline.generate_stream``). A segment's driving frames are read (motion encoded, pixels dropped
chunk by chunk) before its first frame comes out; its frames then come out as each decoded chunk is ready. So
any length works, memory is bounded by the segment, and ``lookahead`` is a segment plus one motion chunk
(``pipeline.stream_lookahead``). Exception, as before: frames lost before the driver's face is first seen are
read until it is seen (they repeat that first sighting). A clip of at most ``segment`` frames is the release's
result exactly.

``--guidance G`` sets both of the release's scales (appearance and motion) to G (default 2.0, the release's);
G = 1 gives the plain full-condition prediction and runs a third of the UNet work. The release's other options
(config/hunyuan-portrait.yaml), each with its default: ``i2i_noise_strength`` (1), ``motion_bucket``
(``motion_bucket_id``, 0), ``motion_scale`` (``ip_motion_scale``, 1), ``fps_condition`` (its ``fps``, 12.5),
``noise_augmentation`` (its ``noise_aug_strength``, 0),
and from Python ``guidance`` as an (appearance, motion) pair of scales or (min, max) ramps, ``window``
(``n_sample_frames``, 25), ``overlap`` (3), ``shift_offset`` (3), ``pad`` (``pad_frames``, 15),
``decode_chunk`` (``decode_chunk_size``, 8).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from enliven.checks import number, whole
from enliven.engines.base import SourceState
from enliven.engines.diffusion.setup import load_for_device, require_extra, resolve_device
from enliven.engines.implicit_diffusion import svd_sampling as sampling
from enliven.engines.implicit_diffusion.pipeline import DECODE_CHUNK, SEGMENT, SEGMENT_OVERLAP, stream_lookahead
from enliven.engines.implicit_diffusion.svd_sampling import WINDOW
from enliven.errors import EnlivenError
from enliven.face.crop import CropSpec
from enliven.face.paste import square_mask
from enliven.motion.align import AlignOptions
from enliven.motion.frame import MotionFrame

DEFAULT_SEED = 72580  # the release's config/hunyuan-portrait.yaml
DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 2.0
MAX_STEPS = 1000
MAX_GUIDANCE = 30.0
WORK_SIZE = 512  # the release's width and height
# The release's driving and source box: the face box grown by 1× its size on each side, made square. Our face
# extent (brows to chin, across the oval) is a little smaller than YOLO-face's box, hence a bit over 3.
DRIVING_CROP_SCALE = 3.2
DRIVING_CROP_VY = -0.05  # YOLO's box reaches higher on the forehead than our brows-to-chin extent



class ImplicitDiffusionEngine:
    name = "implicit-diffusion"
    pose_limits = (90.0, 90.0, 90.0)  # not used: the model reads the driver's pixels, not target landmarks
    def __init__(
        self,
        weights: str | None = None,
        device: str = "auto",
        steps: int = DEFAULT_STEPS,
        guidance: float = DEFAULT_GUIDANCE,
        seed: int | None = None,
        segment: int = SEGMENT,
        segment_overlap: int = SEGMENT_OVERLAP,
        i2i_noise_strength: float = sampling.I2I_NOISE_STRENGTH,
        motion_bucket: int = sampling.MOTION_BUCKET,
        motion_scale: float = 1.0,
        fps_condition: float = sampling.FPS,
        noise_augmentation: float = sampling.NOISE_AUGMENTATION,
        window: int = WINDOW,
        overlap: int = sampling.OVERLAP,
        shift_offset: int = sampling.SHIFT_OFFSET,
        pad: int = sampling.PAD,
        decode_chunk: int = DECODE_CHUNK,
        align: AlignOptions | None = None,
        models: dict | None = None,
    ):
        """``models``: already loaded modules (tests, benchmarks); else from ``weights`` (``--weights DIR``).
        ``guidance``: one scale for both, or (appearance, motion), each a scale or a (min, max) ramp."""
        self.steps = whole("steps", steps, 1, MAX_STEPS)
        if isinstance(guidance, (tuple, list)):
            if len(guidance) != 2:
                raise EnlivenError(f"guidance is one scale or (appearance, motion), got {guidance!r}")
            self.guidance = tuple(
                number("guidance", g, 0, MAX_GUIDANCE) if np.isscalar(g)
                else tuple(number("guidance", v, 0, MAX_GUIDANCE) for v in g)
                for g in guidance
            )
        else:
            g = number("guidance", guidance, 0, MAX_GUIDANCE)
            self.guidance = (g, g)
        self.i2i_noise_strength = number("i2i_noise_strength", i2i_noise_strength, 0, 1)
        if int(self.steps * self.i2i_noise_strength) < 1:
            raise EnlivenError(f"i2i_noise_strength {i2i_noise_strength} of {self.steps} steps runs no step: "
                               f"at least {1 / self.steps:.3g} is needed")
        self.motion_bucket = whole("motion_bucket", motion_bucket, 0, 1000)
        self.motion_scale = number("motion_scale", motion_scale, 0, 10)
        self.fps_condition = number("fps_condition", fps_condition, 0, 1000)
        self.noise_augmentation = number("noise_augmentation", noise_augmentation, 0, 1)
        self.window = whole("window", window, 1, 64)
        self.overlap = whole("overlap", overlap, 0, self.window - 1)
        self.shift_offset = whole("shift_offset", shift_offset, 0, 1000)
        self.pad = whole("pad", pad, 0, 1000)
        self.decode_chunk = whole("decode_chunk", decode_chunk, 1, 1000)
        self.seed = DEFAULT_SEED if seed is None else whole("seed", seed, 0, 2**63 - 1)
        # a segment shorter than a window would repeat frames inside a window; an overlap over half the segment
        # would put a frame in three segments
        self.segment = whole("segment", segment, self.window)
        self.segment_overlap = whole("segment_overlap", segment_overlap, 0, self.segment // 2)
        self.lookahead = stream_lookahead(self.segment, self.window)
        require_extra(self.name, ("diffusers",))
        from enliven.engines.implicit_diffusion.checkpoints import load_official

        self.device = resolve_device(device)
        if models is None:
            models = load_for_device(load_official, "hunyuan-portrait", weights, self.device)
        self.models = models
        self.size = min(WORK_SIZE, int(models["unet"].config.sample_size) * 8)
        self.driving_crop = CropSpec(size=self.size, scale=DRIVING_CROP_SCALE, vy=DRIVING_CROP_VY, rotate=False)

    def prepare(self, crop_image: np.ndarray, landmarks: np.ndarray, session: dict | None = None) -> SourceState:
        crop_size = crop_image.shape[0]
        interpolation = cv2.INTER_AREA if crop_size > self.size else cv2.INTER_CUBIC
        reference = cv2.resize(crop_image, (self.size, self.size), interpolation=interpolation)
        landmarks = np.asarray(landmarks, np.float64)
        return SourceState(
            crop_image=crop_image,
            landmarks=landmarks,
            paste_mask=square_mask(crop_size),
            cache={"reference": reference, "reference_landmarks": landmarks[:, :2] * (self.size / crop_size)},
            session={} if session is None else session,
        )

    def driving_frames(self, targets: Iterable[tuple[np.ndarray, MotionFrame]]):
        """The model's view of each driving frame (``pipeline.DrivingFrame``), lost faces filled in."""
        from enliven.engines.implicit_diffusion.pipeline import DrivingFrame

        last, missing = None, 0
        for _target, frame in targets:
            if frame.crop is None:
                if frame.valid:
                    raise EnlivenError(
                        "engine 'implicit-diffusion' reads the driver's pixels: drive it with a video or a picture "
                        "(presets, audio and motion templates carry none)"
                    )
                if last is None:  # lost before the face was first seen: filled with the first sighting
                    missing += 1
                    continue
                yield last
                continue
            if frame.anchor is None:  # a driving picture: its motion frame is a canonical shape, not its landmarks
                raise EnlivenError("engine 'implicit-diffusion' needs a driving video (it reads the driver's pixels)")
            box = self.driving_crop.crop(frame.anchor.landmarks())
            crop = frame.crop
            if crop.shape[0] != self.size:
                crop = cv2.resize(crop, (self.size, self.size), interpolation=cv2.INTER_AREA)
            last = DrivingFrame(crop, box.to_crop(frame.landmarks()) * (self.size / box.size))
            for _ in range(missing + 1):
                yield last
            missing = 0
        if missing:
            raise EnlivenError("the driver's face is never seen in the driving video")

    def render_stream(
        self, state: SourceState, targets: Iterable[tuple[np.ndarray, MotionFrame]]
    ) -> Iterator[np.ndarray]:
        from enliven.engines.implicit_diffusion.pipeline import generate_stream

        crop_size = state.crop_image.shape[0]
        interpolation = cv2.INTER_CUBIC if crop_size > self.size else cv2.INTER_AREA
        frames = generate_stream(
            self.models,
            state.cache["reference"],
            self.driving_frames(targets),
            reference_landmarks=state.cache["reference_landmarks"],
            steps=self.steps,
            guidance=self.guidance,
            seed=self.seed,
            window=self.window,
            overlap=self.overlap,
            shift_offset=self.shift_offset,
            pad=self.pad,
            segment=self.segment,
            segment_overlap=self.segment_overlap,
            decode_chunk=self.decode_chunk,
            fps=self.fps_condition,
            motion_bucket=self.motion_bucket,
            i2i_noise_strength=self.i2i_noise_strength,
            motion_scale=self.motion_scale,
            noise_augmentation=self.noise_augmentation,
        )
        for frame in frames:
            picture = np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8)
            if crop_size != self.size:
                picture = cv2.resize(picture, (crop_size, crop_size), interpolation=interpolation)
            yield picture
