"""``audio-diffusion`` against Hallo's own outputs (``tests/engines/data/audio_diffusion_release.npz``, written by
``hallo.py``): our modules built at the fixture's sizes, filled by key as the release's were, run on the fixture's
inputs. Each check returns ``max |ours - release| / max |release|`` (``net_keys``: the number of keys that differ);
the tests assert them and ``compare.py audio-diffusion`` prints them.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from fill import fill_module
from measure import MODULE_TOLERANCE, RUN_TOLERANCE, relative

FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "engines" / "data" / "audio_diffusion_release.npz"
LATER_CLIPS_TOLERANCE = 5e-3  # clips after the first start from motion frames decoded by an earlier run


class Fixture:
    """The release's fixture and our modules at its sizes (built on first use)."""

    def __init__(self, path: str | Path = FIXTURE):
        with np.load(path) as data:
            self.data = {key: data[key] for key in data.files}
        self.sizes = json.loads(str(self.data["sizes"]))
        self.meta = json.loads(str(self.data["meta"]))

    def __getitem__(self, key: str) -> np.ndarray:
        return self.data[key]

    @cached_property
    def models(self) -> dict:
        from diffusers import AutoencoderKL
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        from enliven.engines.audio_diffusion.model import (
            AudioProjection,
            FaceLocator,
            ImageProjection,
            build_denoiser,
            build_reference_net,
        )

        sizes = self.sizes
        unet = {k: v for k, v in sizes["unet"].items() if not k.startswith("_")}
        wav = Wav2Vec2Config(**sizes["wav2vec"])
        models = {
            "vae": AutoencoderKL(**sizes["vae"]),
            "reference_net": build_reference_net(unet),
            "denoiser": build_denoiser(unet, audio_dim=sizes["dim"]),
            "face_locator": FaceLocator(unet["block_out_channels"][0], widths=tuple(sizes["locator_widths"])),
            "image_proj": ImageProjection(sizes["dim"], embedding=sizes["face_embedding"], tokens=4),
            "audio_proj": AudioProjection(5, wav.num_hidden_layers, wav.hidden_size, sizes["audio_intermediate"],
                                          sizes["dim"], sizes["audio_tokens"]),
            "audio_encoder": Wav2Vec2Model(wav),
        }
        for module in models.values():
            fill_module(module, skip=lambda key: key.endswith("pos_encoder.pe"))
            module.eval().requires_grad_(False)  # no graphs, without turning gradients off for the whole process
        return models

    def tensor(self, key: str):
        import torch

        return torch.from_numpy(np.ascontiguousarray(self.data[key]))

    def conditions(self):
        import torch

        from enliven.engines.audio_diffusion.pipeline import Conditions

        masks = [tuple(self.tensor(f"mask_{kind}_{level}") for kind in ("full", "face", "lip")) for level in range(4)]
        return Conditions(
            reference=torch.from_numpy(self["reference"]).permute(2, 0, 1).float() / 127.5 - 1,
            face_region=self.tensor("face_region"), masks=masks, face_embedding=self.tensor("face_embedding"))

    @cached_property
    def run(self) -> tuple[list, np.ndarray]:
        """Our two clips: each clip's final latents, and the frames."""
        import torch

        from enliven.engines.audio_diffusion import pipeline

        sizes, latents = self.sizes, []
        decode = pipeline.decode

        def capture(vae, values):
            latents.append(values.clone())
            return decode(vae, values)

        pipeline.decode = capture
        try:
            frames = list(pipeline.generate(
                self.models, self.conditions(), self.tensor("audio_windows"), int(self["audio_length"]),
                steps=sizes["steps"], guidance=sizes["guidance"], seed=sizes["seed"], clip=sizes["clip"],
                motion_frames=sizes["motion_frames"]))
        finally:
            pipeline.decode = decode
        return [latent.numpy() for latent in latents], torch.cat(frames).permute(1, 0, 2, 3).numpy()


def net_keys(fx: Fixture) -> float:
    """Keys or shapes of the release's ``net.pth`` that ours lacks, plus ours it lacks (0: strict loading holds)."""
    from enliven.engines.audio_diffusion.checkpoints import NET_PARTS

    release = {k: tuple(v) for k, v in json.loads(str(fx["net_keys"])).items()}
    ours = {}
    for prefix, name in NET_PARTS.items():
        ours |= {f"{prefix}.{k}": tuple(v.shape) for k, v in fx.models[name].state_dict().items()}
    return float(len(set(release.items()) ^ set(ours.items())))


def audio_windows(fx: Fixture) -> float:
    """wav2vec2 features of every layer at 25 fps, padded to whole clips, in ±2 windows (``AudioProcessor.
    preprocess`` + ``process_audio_emb``)."""
    from enliven.engines.audio_diffusion import audio

    samples = fx["audio_int16"].astype(np.float32) / 32768.0
    features, length = audio.layer_features(fx.models["audio_encoder"], samples, fx.sizes["clip"])
    if length != int(fx["audio_length"]):
        return float("inf")
    return relative(audio.windows(features).numpy(), fx["audio_windows"])


def audio_projection(fx: Fixture) -> float:
    clip = fx.sizes["clip"]
    return relative(fx.models["audio_proj"](fx.tensor("audio_windows")[:clip][None]).numpy(), fx["audio_proj"])


def image_projection(fx: Fixture) -> float:
    embedding = fx.tensor("face_embedding")[None]
    ours = fx.models["image_proj"](embedding).numpy()
    zeros = fx.models["image_proj"](embedding * 0).numpy()
    return max(relative(ours, fx["image_proj"]), relative(zeros, fx["image_proj_zeros"]))


def face_locator(fx: Fixture) -> float:
    return relative(fx.models["face_locator"](fx.tensor("face_region")[None]).numpy(), fx["face_locator"])


def _reference_inputs(fx: Fixture):
    import torch

    from enliven.engines.audio_diffusion.pipeline import reference_rows

    embedding = fx.tensor("face_embedding")[None]
    proj = fx.models["image_proj"]
    contexts = torch.cat([proj(embedding * 0), proj(embedding)])
    latents = fx.tensor("reference_latents")
    return latents.repeat(2, 1, 1, 1), reference_rows(latents, contexts), contexts


def vae_latents(fx: Fixture) -> float:
    import torch

    from enliven.engines.audio_diffusion.pipeline import LATENT_SCALE

    conditions = fx.conditions()
    rng = np.random.default_rng(5)  # the script's motion pictures
    motion = torch.from_numpy(rng.uniform(-1, 1, (fx.sizes["motion_frames"], 3, fx.sizes["size"],
                                                  fx.sizes["size"])).astype(np.float32))
    pixels = torch.cat([conditions.reference[None], motion])
    ours = fx.models["vae"].encode(pixels).latent_dist.mean * LATENT_SCALE
    return relative(ours.numpy(), fx["reference_latents"])


def reference_tokens(fx: Fixture) -> float:
    """The reference net's ``norm1`` outputs for the reference and motion-frame latents, guidance's rows with the
    release's alternating contexts: the first block in full, and every block's sum and absolute sum."""
    from enliven.engines.audio_diffusion.model import reference_features

    rows, contexts, _ = _reference_inputs(fx)
    tokens = reference_features(fx.models["reference_net"], rows, contexts)
    # the release's blocks in its module order (down blocks, up blocks, then the mid block: registration order)
    values = [v for k, v in tokens.items() if k.startswith("down")] + \
        [v for k, v in tokens.items() if k.startswith("up")] + [v for k, v in tokens.items() if k.startswith("mid")]
    first = relative(values[0].numpy(), fx["reference_tokens_first"])
    sums = np.array([[v.double().sum().item(), v.double().abs().sum().item()] for v in values])
    return max(first, relative(sums, fx["reference_tokens_sums"]))


def denoiser_step(fx: Fixture) -> float:
    """One denoiser call with guidance's batch: reference tokens (rounded to fp16) for the conditional video only,
    motion frames' tokens prepended to the motion modules, audio, face locator, masks and pose/face/lip weights."""
    import torch

    from enliven.engines.audio_diffusion.model import denoise, reference_features

    rows, row_contexts, contexts = _reference_inputs(fx)
    tokens = reference_features(fx.models["reference_net"], rows, row_contexts)
    per_video = 1 + fx.sizes["motion_frames"]
    reference, motion = {}, {}
    for name, value in tokens.items():
        value = value.to(torch.float16).view(2, per_video, *value.shape[1:])
        reference[name], motion[name] = value[:, 0], value[:, 1:]
    clip = fx.sizes["clip"]
    audio = fx.models["audio_proj"](fx.tensor("audio_windows")[:clip][None])
    face = fx.models["face_locator"](fx.tensor("face_region")[None])
    masks = fx.conditions().masks
    out = denoise(fx.models["denoiser"], fx.tensor("step_noisy"), fx.tensor("step_timestep"), contexts,
                  torch.cat([audio * 0, audio]), masks=masks, motion_scale=fx.sizes["step_motion_scale"],
                  face_features=torch.cat([face * 0, face]), reference=reference,
                  use_reference=torch.tensor([False, True]), motion_features=motion)
    return relative(out.numpy(), fx["step_output"])


def run_first_clip(fx: Fixture) -> float:
    """Hallo's loop, first clip (motion frames = the reference): final latents."""
    return relative(fx.run[0][0], fx["run_latents"][0])


def run_later_clips(fx: Fixture) -> float:
    """Later clips (motion frames from the previous clip's decoded frames): final latents and the frames."""
    latents = max(relative(ours, theirs) for ours, theirs in zip(fx.run[0][1:], fx["run_latents"][1:]))
    video = fx.run[1]
    frames = relative(video[:, :, ::2, ::2], fx["run_video_every_2"])
    return max(latents, frames)


CHECKS = {
    "net_keys": (net_keys, 0, "net.pth keys and shapes ours lacks or adds (count)"),
    "audio_windows": (audio_windows, MODULE_TOLERANCE, "wav2vec2 layer features at 25 fps in ±2 windows"),
    "audio_projection": (audio_projection, MODULE_TOLERANCE, "audio projection"),
    "image_projection": (image_projection, MODULE_TOLERANCE, "image projection (face embedding and zeros)"),
    "face_locator": (face_locator, MODULE_TOLERANCE, "face locator"),
    "vae_latents": (vae_latents, MODULE_TOLERANCE, "reference and motion frames' latents"),
    "reference_tokens": (reference_tokens, MODULE_TOLERANCE, "reference net tokens (guidance's rows)"),
    "denoiser_step": (denoiser_step, MODULE_TOLERANCE, "denoiser step (guidance batch, motion frames, masks)"),
    "run_first_clip": (run_first_clip, RUN_TOLERANCE, "two-clip run, guidance 3.5: first clip's latents"),
    "run_later_clips": (run_later_clips, LATER_CLIPS_TOLERANCE,
                        "two-clip run: second clip's latents and all decoded frames"),
}
