"""The ``audio-diffusion`` engine: Hallo's weights on our pipeline, driven by speech (a windowed engine).

Per source (``prepare``): the face crop, resized to the working size (the UNet's ``sample_size`` times the VAE's
factor: 512 for the release), is the reference picture; the face-region picture and the full/face/lip masks come
from its landmarks (``masks``); the face embedding from InsightFace's network in the weights folder when
onnxruntime is there (``identity``; zeros otherwise, the release's no-face case). The paste-back mask is a
feathered square inside the crop (the model redraws the whole crop, background included).

The speech (``set_audio``: the driving audio, given by the API for ``--audio`` and ``--text``) becomes wav2vec2
windows once (on the CPU, in fp32, ``audio``). ``render_stream`` then consumes the stream of targets a clip (16
frames) at a time and gives out each clip's frames as soon as it is decoded, as many frames as targets come: the
targets' landmarks are not used (speech alone drives the face, as in the release), only their count. Any length:
clips are chained by motion frames; memory is bounded by one clip.

Options: ``steps`` (40), ``guidance`` (3.5; ≤ 1 runs the conditional branch alone, where the release crashes),
``seed`` (42), the release's ``pose_weight``, ``face_weight``, ``lip_weight`` (1 each).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from enliven.checks import number, whole
from enliven.engines.base import SourceState
from enliven.engines.diffusion.setup import require_extra, resolve_device
from enliven.errors import EnlivenError
from enliven.face.paste import square_mask
from enliven.motion.align import AlignOptions
from enliven.motion.frame import MotionFrame

MAX_STEPS = 1000
MAX_GUIDANCE = 30.0


class AudioDiffusionEngine:
    name = "audio-diffusion"
    driving_crop = None  # speech drives it; the driver's pixels are never read
    pose_limits = (35.0, 25.0, 30.0)  # unused: targets' landmarks are not drawn
    reads_audio = True

    def __init__(
        self,
        weights: str | None = None,
        device: str = "auto",
        steps: int = 40,
        guidance: float = 3.5,
        seed: int | None = None,
        pose_weight: float = 1.0,
        face_weight: float = 1.0,
        lip_weight: float = 1.0,
        speed: int | None = None,
        align: AlignOptions | None = None,
        models: dict | None = None,
        weights_root: str | None = None,
    ):
        """``models``: already loaded modules (tests, benchmarks), with ``weights_root`` the folder they came from
        (for the face-recognition network)."""
        from enliven.engines.audio_diffusion import pipeline

        self.steps = whole("steps", steps, 1, MAX_STEPS)
        self.guidance = number("guidance", guidance, 0, MAX_GUIDANCE)
        self.seed = pipeline.DEFAULT_SEED if seed is None else whole("seed", seed, 0, 2**63 - 1)
        self.motion_scale = tuple(number(n, v, 0, 10) for n, v in
                                  (("pose weight", pose_weight), ("face weight", face_weight),
                                   ("lip weight", lip_weight)))
        require_extra(self.name, ("diffusers", "transformers"))
        self.device = resolve_device(device)
        self.root = None if weights_root is None else Path(weights_root)
        if models is None:
            import torch

            from enliven import weights as weight_store
            from enliven.engines.audio_diffusion.checkpoints import load_official
            from enliven.engines.audio_diffusion.checkpoints import weights_root as find_root

            self.root = find_root(weight_store.resolve("hallo", weights))
            dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
            models = load_official(self.root, device=self.device, dtype=dtype)
        self.models = models
        layers = getattr(models["denoiser"], "speed_layers", None)
        if speed is not None and layers is None:
            raise EnlivenError("speed: these weights have no speed layers (Hallo's have none; the speed stage of "
                               "`enliven train audio-diffusion` adds them)")
        buckets = 0 if layers is None else layers.embedding.num_embeddings
        self.speed = None if speed is None else whole("speed", speed, 0, buckets - 1)
        vae = models["vae"]
        self.size = int(models["denoiser"].config.sample_size) * 2 ** (len(vae.config.block_out_channels) - 1)
        self.lookahead = pipeline.CLIP

    def prepare(self, crop_image: np.ndarray, landmarks: np.ndarray, session: dict | None = None) -> SourceState:
        from enliven.engines.audio_diffusion.identity import face_embedding
        from enliven.engines.audio_diffusion.masks import region_conditions

        crop_size = crop_image.shape[0]
        scale = self.size / crop_size
        interpolation = cv2.INTER_AREA if crop_size > self.size else cv2.INTER_CUBIC
        reference = cv2.resize(crop_image, (self.size, self.size), interpolation=interpolation)
        work_landmarks = np.asarray(landmarks, np.float64)[:, :2] * scale
        region, masks = region_conditions(work_landmarks, self.size)
        embedding = face_embedding(reference, work_landmarks, self.root)
        width = self.models["image_proj"].proj.in_features
        if embedding is None or embedding.shape[0] != width:
            embedding = np.zeros(width, np.float32)
        return SourceState(
            crop_image=crop_image,
            landmarks=np.asarray(landmarks, np.float64),
            paste_mask=square_mask(crop_size),
            cache={"reference": reference, "region": region, "masks": masks, "embedding": embedding},
            session={} if session is None else session,
        )

    def set_audio(self, state: SourceState, path) -> None:
        """The speech that drives this source (the API calls it with the driving audio)."""
        if path is None:
            raise EnlivenError("engine 'audio-diffusion' is driven by speech: give --audio FILE or --text TEXT")
        state.cache["audio"] = Path(path)

    def audio_features(self, path) -> tuple:
        """(wav2vec2 features padded to whole clips, the audio's own frame count) for the speech in ``path``."""
        from enliven.engines.audio_diffusion import audio
        from enliven.engines.audio_diffusion.pipeline import CLIP
        from enliven.motion.audio import read_audio

        samples = np.concatenate([np.zeros(0, np.float32), *read_audio(path, audio.RATE)])
        if samples.size == 0:
            raise EnlivenError(f"no audio samples in {path}")
        return audio.layer_features(self.models["audio_encoder"], samples, CLIP)

    def render_stream(
        self, state: SourceState, targets: Iterable[tuple[np.ndarray, MotionFrame]]
    ) -> Iterator[np.ndarray]:
        import torch

        from enliven.engines.audio_diffusion.pipeline import Conditions, generate, to_uint8

        if "audio" not in state.cache:
            raise EnlivenError("engine 'audio-diffusion' is driven by speech: give --audio FILE or --text TEXT")
        features, length = self.audio_features(state.cache["audio"])
        cache = state.cache
        conditions = Conditions(
            reference=torch.from_numpy(cache["reference"]).permute(2, 0, 1).float() / 127.5 - 1,
            face_region=torch.from_numpy(cache["region"]),
            masks=[tuple(torch.from_numpy(m) for m in level) for level in cache["masks"]],
            face_embedding=torch.from_numpy(cache["embedding"]),
        )
        crop_size = state.crop_image.shape[0]
        interpolation = cv2.INTER_CUBIC if crop_size > self.size else cv2.INTER_AREA
        pending = iter(targets)
        clips = generate(self.models, conditions, features, length, steps=self.steps, guidance=self.guidance,
                         seed=self.seed, motion_scale=self.motion_scale, speed=self.speed)
        for clip in clips:
            for picture in to_uint8(clip):
                if next(pending, None) is None:
                    return
                if crop_size != self.size:
                    picture = cv2.resize(picture, (crop_size, crop_size), interpolation=interpolation)
                yield picture
