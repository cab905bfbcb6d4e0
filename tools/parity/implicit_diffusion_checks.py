"""``implicit-diffusion`` against HunyuanPortrait's own outputs (``tests/engines/data/implicit_diffusion_release.npz``
and ``implicit_diffusion_sampling_release.npz``, written by ``hunyuan_portrait.py``): our modules built at the
fixtures' sizes, filled by key as the release's were, run on the same inputs. Each check returns
``max |ours - release| / max |release|``; the tests assert them (modules 1e-4, runs 1e-3) and
``compare.py implicit-diffusion`` prints them.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from fill import fill_module
from hunyuan_inputs import (
    DINO_GRID,
    FIXTURE_BUCKETS,
    FIXTURE_SIZES,
    SAMPLING_UNET,
    SAMPLING_VAE,
    delta_decode,
    dino_picture_input,
    fixture_inputs,
    preprocess_inputs,
    stand_in_unet,
)
from hunyuan_inputs import sampling_inputs as run_inputs
from measure import LOOP_TOLERANCE, MODULE_TOLERANCE, RUN_TOLERANCE, relative  # noqa: F401  (the tests read them here)

DATA = Path(__file__).resolve().parents[2] / "tests" / "engines" / "data"
MODULES, SAMPLING = DATA / "implicit_diffusion_release.npz", DATA / "implicit_diffusion_sampling_release.npz"


def _tensor(array):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))


class Fixture:
    """The release's two fixtures and our modules at their sizes (built on first use)."""

    def __init__(self, modules: str | Path = MODULES, sampling: str | Path = SAMPLING):
        with np.load(modules) as data:
            self.modules = {key: data[key] for key in data.files}
        with np.load(sampling) as data:
            self.sampling = {key: data[key] for key in data.files}
        self.meta = json.loads(str(self.modules["meta"]))
        self.runs = json.loads(str(self.sampling["runs"]))

    @cached_property
    def conditioning(self) -> dict:
        """Our conditioning modules at ``FIXTURE_SIZES``, filled by key."""
        from enliven.engines.implicit_diffusion.checkpoints import _BUILDERS, resolve_sizes

        sizes = resolve_sizes(None, FIXTURE_SIZES)
        built = {name: builder(**sizes[name]).eval() for name, builder in _BUILDERS.items()}
        for name, module in built.items():
            fill_module(module.linear if name == "image_proj" else module)  # image_proj.pth: the linear's tensors
        return built

    @cached_property
    def sampler(self) -> dict:
        """Our UNet and temporal-decoder VAE at the sampling runs' sizes, filled by key."""
        from diffusers import AutoencoderKLTemporalDecoder

        from enliven.engines.implicit_diffusion.svd_unet import build_unet

        models = {"unet": build_unet(SAMPLING_UNET), "vae": AutoencoderKLTemporalDecoder(**SAMPLING_VAE)}
        for module in models.values():
            fill_module(module)
            module.eval()
        return models

    @cached_property
    def stand_in(self) -> dict:
        """Our UNet at the sampling runs' sizes with the elementwise stand-in as its forward, as the release's
        ``stand_in`` run had it (the module keeps its config; its weights are never used)."""
        from enliven.engines.implicit_diffusion.svd_unet import build_unet

        unet = build_unet(SAMPLING_UNET).eval()
        unet.forward = stand_in_unet
        return {"unet": unet}

    @cached_property
    def module_outputs(self) -> dict:
        import torch

        from enliven.engines.implicit_diffusion import implicit_motion as motion
        from enliven.engines.implicit_diffusion.appearance import encode_appearance

        built = self.conditioning
        x = {k: _tensor(v) for k, v in fixture_inputs().items()}
        out = {}
        with torch.no_grad():
            tokens = encode_appearance(built, x["picture"], x["identity"])
            out["dino"] = tokens
            out["image_proj"] = built["image_proj"](tokens)
            features = built["expression"](x["face_crops"])
            out["expression"] = features
            out["headpose_rotation"], out["headpose_translation"] = built["headpose"](
                motion.head_pose_input(x["pose_crops"]))
            out["motion_proj"] = built["motion_proj"](features, *FIXTURE_BUCKETS)
            out["motion_tokens"] = motion.motion_tokens(built, x["face_crops"], x["pose_crops"], *FIXTURE_BUCKETS)
            out["pose_guider"] = built["pose_guider"](x["pose_pictures"])
            out["pose_guider_black"] = built["pose_guider"](torch.zeros_like(x["pose_pictures"]))
        return {k: v.numpy() for k, v in out.items()}

    def run(self, name: str, **changes):
        """Our ``sampling.sample`` on run ``name``'s conditions, with its options (``changes`` override them)."""
        import torch

        from enliven.engines.implicit_diffusion import svd_sampling as sampling
        from enliven.engines.implicit_diffusion.pipeline import reference_latent

        spec = self.runs[name]
        x = run_inputs(name)
        models = self.stand_in if spec.get("stand_in") else self.sampler
        augmentation = spec.get("noise_aug_strength", 0.0)
        if "picture" in x:  # the release's noise on the picture: the first draw of its generator, seeded 0
            latent = reference_latent(models, x["picture"])
            augmented = reference_latent(models, x["picture"], augmentation, torch.Generator().manual_seed(0))
        else:
            latent = augmented = _tensor(x["ref"])
        options = dict(steps=spec["steps"], guidance=spec["guidance"], window=spec["window"],
                       overlap=spec["overlap"], shift_offset=spec["shift_offset"], pad=spec["pad"],
                       latents=_tensor(x["noise"]), fps=spec["fps"], motion_bucket=spec["motion_bucket_id"],
                       i2i_noise_strength=spec["i2i_noise_strength"], motion_scale=spec["ip_motion_scale"],
                       noise_augmentation=augmentation, augmented_latent=augmented)
        options.update(changes)
        with torch.no_grad():
            return sampling.sample(models, _tensor(x["image"]), _tensor(x["motion"]), _tensor(x["pose"]), latent,
                                   **options)


def _module(key):
    def check(fx: Fixture) -> float:
        return relative(fx.module_outputs[key], fx.modules[key])

    check.__doc__ = f"the release's {key}"
    return check


def buckets(fx: Fixture) -> float:
    """``motion.intensity_buckets`` on the release's tracks: 0 when every (head, expression) id is the release's
    ``get_head_exp_motion_bucketid``'s, else the largest id difference."""
    from enliven.engines.implicit_diffusion import implicit_motion as motion

    ours = np.array([motion.intensity_buckets(track) for track in fx.modules["bucket_tracks"]])
    return float(np.abs(ours - fx.modules["buckets"]).max())


def windows_run(fx: Fixture) -> float:
    """A whole run: 12 frames + 2 × 4 pads, window 8, overlap 3, shift 3, 3 steps, ramped scales; latents."""
    return relative(fx.run("windows").numpy(), fx.sampling["latents"])


def vae_encode(fx: Fixture) -> float:
    """The reference picture's VAE latent (uint8 to [-1, 1], the posterior mean, × 0.18215)."""
    from enliven.engines.implicit_diffusion.pipeline import reference_latent
    from enliven.engines.implicit_diffusion.svd_sampling import LATENT_SCALE

    ours = reference_latent(fx.sampler, fx.sampling["options/picture"]) * LATENT_SCALE
    return relative(ours.numpy(), fx.sampling["options/ref_latent_scaled"])


def options_run(fx: Fixture) -> float:
    """A whole run with the release's options away from their defaults: i2i_noise_strength 0.5 of 6 steps,
    motion_bucket_id 5, ip_motion_scale 0.7, fps 10, noise_aug_strength 0.1, window 6, overlap 2, shift 2, pads 3;
    latents."""
    return relative(fx.run("options").numpy(), fx.sampling["options/latents"])


def stand_in_run(fx: Fixture) -> float:
    """The release's loop alone around an elementwise stand-in for the UNet (``hunyuan_inputs.stand_in_unet``): 10
    frames + 2 × 3 pads, window 6, 5 steps, ramped scales, bucket 5, fps 10; latents. Held to 1e-6."""
    return relative(fx.run("stand_in").numpy(), fx.sampling["stand_in/latents"])


def decode(fx: Fixture) -> float:
    """The release's final latents of the options run decoded our way (chunks of 4 from the first frame, pads
    included, then cut), against its decoded frames."""
    import torch

    from enliven.engines.implicit_diffusion.svd_sampling import decode_chunks

    spec = fx.runs["options"]
    with torch.no_grad():
        frames = np.stack(list(decode_chunks(fx.sampler, _tensor(fx.sampling["options/latents"]),
                                             chunk=spec["decode_chunk_size"], pad=spec["pad"])))
    return relative(frames, fx.sampling["options/frames"])


def pose_map(fx: Fixture) -> float:
    """``pipeline.pose_features`` (the black pose picture through the guider, built by us) against the release's
    ``get_dwpose`` picture through ``ToTensor`` and the same guider: the black-map glue end to end."""
    from enliven.engines.implicit_diffusion.pipeline import pose_features

    picture = fx.modules["pose_picture"]
    if picture.any():
        raise AssertionError("the release's pose picture is not black")
    ours = pose_features({"pose_guider": fx.conditioning["pose_guider"]}, picture.shape[1:])
    return relative(ours.numpy(), fx.modules["pose_map"])


def face_crop(fx: Fixture) -> float:
    """``motion.face_crop_from_box`` against the release's ``crop_face_motion`` (the expression encoder's
    input) on the same frame, 5 points and face box (reaching past the frame's left edge)."""
    from enliven.engines.implicit_diffusion import implicit_motion as motion

    x = preprocess_inputs()
    ours = motion.face_crop_from_box(x["frame"], x["points"].astype(np.float64), x["box"].astype(np.float64))
    return relative(ours.permute(1, 2, 0).numpy(), delta_decode(fx.modules["face_crop"]) / 255)


def pose_crop(fx: Fixture) -> float:
    """``motion.pose_crop_256`` against the release's transform (``Resize(256)``, ``ToTensor``) of its head-pose
    crop (``process_bbox`` + ``crop_resize_img``, given to both: our box is ``CropSpec``'s, not YOLO's)."""
    from enliven.engines.implicit_diffusion import implicit_motion as motion

    ours = motion.pose_crop_256(delta_decode(fx.modules["pose_crop_before"]))
    return relative(ours.permute(1, 2, 0).numpy(), delta_decode(fx.modules["pose_crop"]) / 255)


def norm_eps(fx: Fixture) -> float:
    """Every normalisation layer's epsilon (LayerNorm, GroupNorm, BatchNorm) in our modules against the release's,
    by key name: the number of layers missing on either side or with another epsilon (0 when all agree). An
    epsilon is too small to show in one forward pass at these sizes, so it is compared as a constant."""
    release = json.loads(str(fx.modules["norm_eps"]))
    wrong = 0
    for name, theirs in release.items():
        module = fx.conditioning[name]
        ours = {key: float(m.eps) for key, m in module.named_modules() if isinstance(getattr(m, "eps", None), float)}
        wrong += len(set(ours) ^ set(theirs)) + sum(ours[k] != theirs[k] for k in set(ours) & set(theirs))
    return float(wrong)


def dino_picture(fx: Fixture) -> float:
    """``appearance.dino_picture`` (uint8 reference → DINO's normalised 224² input) against the release's
    ``img_transform`` (torchvision's ``ToTensor``, ``RandomResizedCrop`` of the whole, ``Normalize``) on a
    288² picture, on every ``DINO_GRID``-th row and column."""
    from enliven.engines.implicit_diffusion.appearance import dino_picture as ours

    picture = ours(dino_picture_input())[0, :, ::DINO_GRID, ::DINO_GRID]
    return relative(picture.numpy(), fx.modules["dino_picture"])


_LABELS = {
    "dino": "DINOv2 with identity adapters (24 blocks)", "image_proj": "image projector",
    "expression": "expression encoder (ResNet-50, GroupNorm)", "headpose_rotation": "head pose: rotation",
    "headpose_translation": "head pose: translation", "motion_proj": "intensity-aware motion refiner",
    "motion_tokens": "motion tokens (refiner output with pose values)", "pose_guider": "pose guider",
    "pose_guider_black": "pose guider on black pictures (what the release feeds it)",
}
CHECKS = {name: (_module(name), MODULE_TOLERANCE, label) for name, label in _LABELS.items()}
CHECKS |= {
    "dino_picture": (dino_picture, MODULE_TOLERANCE, "DINO's input: 288² uint8 to 224², ImageNet mean/std"),
    "pose_map": (pose_map, MODULE_TOLERANCE, "pose map: our black picture through the guider vs get_dwpose's"),
    "face_crop": (face_crop, MODULE_TOLERANCE, "expression crop vs crop_face_motion (frame, 5 points, face box)"),
    "pose_crop": (pose_crop, MODULE_TOLERANCE, "head-pose crop's Resize(256) vs the release's transform"),
    "norm_eps": (norm_eps, 0.0, "normalisation epsilons, by key (layers that differ)"),
    "buckets": (buckets, 0.0, "motion-intensity bucket ids on 4 tracks (largest id difference)"),
    "vae_encode": (vae_encode, MODULE_TOLERANCE, "VAE encoding and scaling of the reference"),
    "decode": (decode, MODULE_TOLERANCE, "decoding in chunks of 4 (temporal decoder), pads cut"),
    "windows_run": (windows_run, RUN_TOLERANCE, "whole run: 12 + 2×4 frames, window 8, 3 steps, ramped scales"),
    "options_run": (options_run, RUN_TOLERANCE, "whole run: i2i 0.5, bucket 5, motion scale 0.7, fps 10, noise aug .1"),
    "stand_in_run": (stand_in_run, LOOP_TOLERANCE, "the loop around an elementwise UNet stand-in: 5 steps, ramps"),
}

