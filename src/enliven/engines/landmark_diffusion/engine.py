"""The ``landmark-diffusion`` engine: Follow-Your-Emoji on our streaming pipeline (a windowed engine).

Per source (``prepare``): the face crop, resized to the model's working size (the size its UNet was trained at:
the UNet's ``sample_size`` times the VAE's factor, 512 for the release), is the reference picture; the paste-back
mask is a feathered square inside the crop, since the model redraws the whole crop, background included.

Per stream (``render_stream``): each aligned target (478 landmarks in crop pixels, from the shared
``motion.align``, which already does what the release's ``FaceMeshAlign`` does: the driver's expression as an
offset from its neutral frame on the source's own shape, the driver's head rotation, its movement since its
reference frame, plus pose limits, shots and manual controls) is scaled to the working size and drawn as the
release's landmark picture (``drawing``); ``pipeline.generate_stream`` denoises them a window or a progressive
segment at a time and hands back each frame as soon as it is final; frames are resized back to the crop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from enliven.checks import number, whole
from enliven.engines.base import SourceState
from enliven.engines.diffusion.setup import load_for_device, require_extra, resolve_device
from enliven.engines.landmark_diffusion.drawing import draw_landmarks
from enliven.face.paste import square_mask
from enliven.motion.align import AlignOptions
from enliven.motion.frame import MotionFrame

DEFAULT_SEED = 12580  # the release's configs/infer.yaml
MAX_STEPS = 1000  # the scheduler's training steps: DDIM cannot take more
MAX_GUIDANCE = 30.0  # far past any useful scale; beyond it the guided prediction is noise


class LandmarkDiffusionEngine:
    name = "landmark-diffusion"
    driving_crop = None  # it reads landmarks only, never the driver's pixels
    # The release was trained on talking-head video with moderate head turns; its landmark pictures carry no
    # depth, so a face turned far is drawn as flattened lines the model never saw.
    pose_limits = (35.0, 25.0, 30.0)

    def __init__(
        self,
        weights: str | None = None,
        device: str = "auto",
        steps: int = 30,
        guidance: float = 3.5,
        seed: int | None = None,
        window: int = 16,
        stride: int | None = None,
        align: AlignOptions | None = None,
        models: dict | None = None,
    ):
        """``window``: frames denoised together (the release's 16); ``stride``: frames between keyframes of the
        progressive schedule (default window − 1); ``models``: already loaded modules (tests, benchmarks)."""
        self.steps = whole("steps", steps, 1, MAX_STEPS)
        self.guidance = number("guidance", guidance, 0, MAX_GUIDANCE)
        self.seed = DEFAULT_SEED if seed is None else whole("seed", seed, 0, 2**63 - 1)
        self.window = whole("window", window, 2, 32)  # 32: the temporal modules' positions in the release
        self.stride = None if stride is None else whole("keyframe stride", stride, 1, self.window - 1)
        require_extra(self.name, ("diffusers", "transformers"))
        from enliven.engines.landmark_diffusion.checkpoints import load_official
        from enliven.engines.landmark_diffusion.pipeline import Context, stream_lookahead

        self.device = resolve_device(device)
        if models is None:
            models = load_for_device(load_official, "follow-your-emoji", weights, self.device)
        self.models = models
        vae = models["vae"]
        self.size = int(models["denoiser"].config.sample_size) * 2 ** (len(vae.config.block_out_channels) - 1)
        self.context = Context(window=self.window, stride=self.stride, progressive=True)
        self.lookahead = stream_lookahead(self.context)

    def prepare(self, crop_image: np.ndarray, landmarks: np.ndarray, session: dict | None = None) -> SourceState:
        crop_size = crop_image.shape[0]
        interpolation = cv2.INTER_AREA if crop_size > self.size else cv2.INTER_CUBIC
        reference = cv2.resize(crop_image, (self.size, self.size), interpolation=interpolation)
        return SourceState(
            crop_image=crop_image,
            landmarks=np.asarray(landmarks, np.float64),
            paste_mask=square_mask(crop_size),
            cache={"reference": reference, "to_work": self.size / crop_size},
            session={} if session is None else session,
        )

    def landmark_picture(self, state: SourceState, target: np.ndarray) -> np.ndarray:
        """The release's landmark picture (working size) of an aligned target in crop pixels."""
        return draw_landmarks(np.asarray(target, np.float64)[:, :2] * state.cache["to_work"], self.size, self.size)

    def render_stream(
        self, state: SourceState, targets: Iterable[tuple[np.ndarray, MotionFrame]]
    ) -> Iterator[np.ndarray]:
        from enliven.engines.landmark_diffusion.pipeline import generate_stream

        crop_size = state.crop_image.shape[0]
        interpolation = cv2.INTER_CUBIC if crop_size > self.size else cv2.INTER_AREA
        frames = generate_stream(
            self.models, state.cache["reference"], targets, draw=lambda pair: self.landmark_picture(state, pair[0]),
            steps=self.steps, guidance=self.guidance, seed=self.seed, context=self.context,
        )
        for frame in frames:
            picture = np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8)
            if crop_size != self.size:
                picture = cv2.resize(picture, (crop_size, crop_size), interpolation=interpolation)
            yield picture
