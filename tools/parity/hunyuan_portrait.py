"""Fixtures from HunyuanPortrait's own code (Tencent-Hunyuan/HunyuanPortrait), for ``implicit-diffusion``'s tests.

Run it in an environment that can import the release (diffusers 0.29, as its requirements.txt pins, a CPU torch,
einops, omegaconf; xformers absent, so DINOv2 takes its plain attention)::

    python tools/parity/hunyuan_portrait.py --release /path/to/HunyuanPortrait --out tests/engines/data

It writes two files there, with the release's code only (nothing of enliven is imported):

* ``implicit_diffusion_release.npz``: the conditioning modules at ``hunyuan_inputs.FIXTURE_SIZES`` (the
  ResNets at full size on 64² pictures), every tensor ``fill.fill_value`` of its name in the release's files:
  ``encode_image_with_id_features`` (DINOv2 with the identity adapters), ``ImageProjector`` as the pipeline
  applies it, ``HeadExpression``, ``HeadPose`` fed ``x·2 + 1``, ``IntensityAwareMotionRefiner``, ``PoseGuider``
  (on pictures and on black ones), ``inference.py``'s motion-token concatenation (rotation ‖ translation × 0),
  and ``get_head_exp_motion_bucketid`` on four random 5-point tracks;
* ``implicit_diffusion_sampling_release.npz``: three runs of ``HunyuanLongSVDPipeline.__call__`` with the
  release's UNet (``UNet3DConditionSVDModel`` + ``init_ip_adapters``) and scheduler (its
  ``EulerDiscreteScheduler`` on SVD-xt's scheduler config), the appearance encoders stubbed to hand over given
  image tokens and the pose guider given features, the motion pads made as ``inference.py`` makes them.
  ``windows``: 12 frames + 2 × 4 pads, window 8, overlap 3, shift 3, 3 steps, scales ramping 1.5→3.0 and
  2.0→2.5, per-frame pose maps; its latents. ``options``: the config's options away from their defaults
  (i2i_noise_strength 0.5 of 6 steps, motion_bucket_id 5, ip_motion_scale 0.7, fps 10, decode_chunk_size 4,
  window 6, overlap 2, shift 2, pads 3) with a real tiny temporal-decoder VAE: its reference latent, final
  latents and decoded frames. ``stand_in``: the loop around an elementwise stand-in for the UNet
  (``hunyuan_inputs.stand_in_unet``), 10 frames + 2 × 3 pads, 5 steps, ramped scales, bucket 5, fps 10; its latents.

CPU, fp32, one thread. ``python tools/parity/compare.py implicit-diffusion`` (in enliven's environment) prints
our differences from them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fill import fill_module  # noqa: E402
from hunyuan_inputs import (  # noqa: E402
    DINO_GRID,
    FIXTURE_BUCKETS,
    FIXTURE_SIZES,
    POSE_MAP_SIDE,
    PREPROCESS_SIDE,
    RUNS,
    SAMPLING_UNET,
    SAMPLING_VAE,
    bucket_tracks,
    delta_code,
    dino_picture_input,
    fixture_inputs,
    preprocess_inputs,
    sampling_inputs,
    stand_in_unet,
)
from release_env import release_commit, stub_missing, torchvision_transforms  # noqa: E402

# stabilityai/stable-video-diffusion-img2vid-xt scheduler/scheduler_config.json, which the release loads
SVD_XT_SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler", "_diffusers_version": "0.24.0.dev0", "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False, "interpolation_type": "linear",
    "num_train_timesteps": 1000, "prediction_type": "v_prediction", "set_alpha_to_one": False, "sigma_max": 700.0,
    "sigma_min": 0.002, "skip_prk_steps": True, "steps_offset": 1, "timestep_spacing": "leading",
    "timestep_type": "continuous", "trained_betas": None, "use_karras_sigmas": True,
}
ADAPTER_BLOCKS = [3, 7, 11, 15, 19, 23]  # inference.py's add_adapter_layer


def modules_fixture(torch) -> dict[str, np.ndarray]:
    from src.dataset.utils import get_head_exp_motion_bucketid
    from src.models.condition.coarse_motion import HeadExpression, HeadPose
    from src.models.condition.pose_guider import PoseGuider
    from src.models.condition.refine_motion import IntensityAwareMotionRefiner
    from src.models.dinov2.layers import MemEffAttention
    from src.models.dinov2.layers.block import Block
    from src.models.dinov2.models.vision_transformer import DinoVisionTransformer, ImageProjector
    from src.pipelines.hunyuan_svd_pipeline import encode_image_with_id_features

    dino_sizes = FIXTURE_SIZES["dino"]
    dino = DinoVisionTransformer(  # vit_large's blocks at a smaller width, with inference.py's other arguments
        patch_size=14, embed_dim=dino_sizes["embed_dim"], depth=24, num_heads=dino_sizes["num_heads"], mlp_ratio=4,
        block_fn=partial(Block, attn_class=MemEffAttention), num_register_tokens=4, img_size=526, init_values=1.0,
        block_chunks=0, backbone=True, layers_output=True, add_adapter_layer=ADAPTER_BLOCKS,
        visual_adapter_dim=dino_sizes["visual_adapter_dim"])
    projector = ImageProjector(261, 64)
    expression = HeadExpression(FIXTURE_SIZES["motion_proj"]["input_dim"])
    headpose = HeadPose()
    refiner = IntensityAwareMotionRefiner(**FIXTURE_SIZES["motion_proj"])
    guider_sizes = FIXTURE_SIZES["pose_guider"]
    guider = PoseGuider(conditioning_embedding_channels=guider_sizes["channels"],
                        block_out_channels=tuple(guider_sizes["widths"]))
    for module in (dino, projector.linear, expression, headpose, refiner, guider):  # image_proj.pth: the linear's
        fill_module(module)
        module.eval()
    x = {k: torch.from_numpy(v) for k, v in fixture_inputs().items()}
    out = {}
    with torch.no_grad():
        tokens = encode_image_with_id_features(x["picture"], x["identity"], dino)
        out["dino"] = tokens
        out["image_proj"] = projector(tokens.permute(0, 2, 1)).permute(0, 2, 1)  # as _encode_image applies it
        features = expression(x["face_crops"])
        out["expression"] = features
        pose = headpose(x["pose_crops"] * 2 + 1)
        out["headpose_rotation"], out["headpose_translation"] = pose["rotation"], pose["translation"]
        head, exp = (torch.IntTensor([i]) for i in FIXTURE_BUCKETS)
        embed = refiner(features, head, exp)
        out["motion_proj"] = embed
        pose_embed = torch.cat([pose["rotation"], pose["translation"] * 0], dim=-1)  # inference.py's lines
        out["motion_tokens"] = torch.cat([embed, pose_embed.unsqueeze(1).repeat(1, embed.shape[1], 1)], dim=-1)
        out["pose_guider"] = guider(x["pose_pictures"])
        out["pose_guider_black"] = guider(torch.zeros_like(x["pose_pictures"]))
    arrays = {k: v.float().numpy() for k, v in out.items()}
    tracks = bucket_tracks()
    arrays["bucket_tracks"] = tracks
    arrays["buckets"] = np.array([get_head_exp_motion_bucketid(list(track)) for track in tracks], np.int64)
    arrays |= preprocess_fixture(torch, guider)
    arrays["dino_picture"] = dino_picture_fixture()
    modules = {"dino": dino, "image_proj": projector, "expression": expression, "headpose": headpose,
               "motion_proj": refiner, "pose_guider": guider}
    arrays["norm_eps"] = np.array(json.dumps({name: norm_eps(module) for name, module in modules.items()}))
    return arrays


def norm_eps(module) -> dict[str, float]:
    """Each normalisation layer's epsilon (LayerNorm, GroupNorm, BatchNorm: whatever has a float ``eps``), by its
    name in the module (the checkpoints' key names): constants too small to show in one forward pass."""
    return {name: float(m.eps) for name, m in module.named_modules() if isinstance(getattr(m, "eps", None), float)}


def dino_picture_fixture() -> np.ndarray:
    """The reference's way into DINO: ``preprocess``'s ``img_transform`` in src/dataset/test_preprocess.py
    (``ToTensor``, ``RandomResizedCrop(224, scale=(1, 1), ratio=(1, 1), antialias=True)`` — the whole of a square
    picture, whatever its random draw —, ``Normalize`` with ImageNet's mean and std) on ``dino_picture_input``,
    every ``DINO_GRID``-th row and column of the (3, 224, 224) result kept."""
    import torchvision.transforms as transforms
    from PIL import Image

    size = (224, 224)  # preprocess's img_size
    transform = transforms.Compose([
        transforms.ToTensor(),
        transforms.RandomResizedCrop(size, scale=(1.0, 1.0), ratio=(size[1] / size[0], size[1] / size[0]),
                                     antialias=True),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225], inplace=True),
    ])
    picture = transform(Image.fromarray(dino_picture_input()))
    return picture[:, ::DINO_GRID, ::DINO_GRID].numpy()


def preprocess_fixture(torch, guider) -> dict[str, np.ndarray]:
    """``test_preprocess.py``'s pictures, detector-free parts, on ``preprocess_inputs``: ``get_dwpose``'s
    picture through ``ToTensor`` (the pose guider's input) and the guider's map of it; ``crop_face_motion`` (the
    expression crop); ``process_bbox`` of the face box (expand 1) and ``crop_resize_img`` to it (the head-pose
    crop before the transform), and that crop through the transform (``Resize(256)``, ``ToTensor``,
    ``Normalize([0], [1])``, as ``preprocess`` builds it). Crops are stored as uint8 (× 255, exact: each is a
    PIL picture through ``ToTensor``), row-delta coded (``hunyuan_inputs.delta_code``)."""
    import torchvision.transforms as transforms
    from PIL import Image
    from src.dataset.test_preprocess import crop_face_motion, crop_resize_img, get_dwpose, process_bbox

    x = preprocess_inputs()
    frame, box = x["frame"], [float(v) for v in x["box"]]
    motion_transform = transforms.Compose([transforms.Resize(256), transforms.ToTensor(),
                                           transforms.Normalize([0], [1])])
    black = np.zeros((POSE_MAP_SIDE, POSE_MAP_SIDE, 3), np.uint8)  # the reference crop get_dwpose is given
    picture = transforms.ToTensor()(get_dwpose(black))
    with torch.no_grad():
        pose_map = guider(picture[None, :, None])[:, :, 0]
    face = crop_face_motion(frame.copy(), x["points"].astype(np.float64), motion_transform, box)
    pose_box = process_bbox(box, expand_radio=1, height=frame.shape[0], width=frame.shape[1])
    pose_crop = crop_resize_img(Image.fromarray(frame), pose_box, PREPROCESS_SIDE)

    def as_uint8(tensor):
        scaled = tensor.permute(1, 2, 0).numpy() * 255
        assert np.abs(scaled - np.round(scaled)).max() < 1e-3, "not a uint8 picture"
        return delta_code(np.round(scaled).astype(np.uint8))

    return {"pose_picture": picture.numpy(), "pose_map": pose_map.numpy(), "face_crop": as_uint8(face),
            "pose_box": np.array(pose_box, np.float32), "pose_crop_before": delta_code(np.asarray(pose_crop)),
            "pose_crop": as_uint8(motion_transform(pose_crop))}


class _Stub(types.SimpleNamespace):
    pass


def sampling_run(torch, name: str) -> dict[str, np.ndarray]:
    """One run of the release's pipeline loop; see the module docstring."""
    import src.pipelines.hunyuan_svd_pipeline as release_pipeline
    from diffusers import AutoencoderKLTemporalDecoder
    from src.models.condition.unet_3d_svd_condition_ip import UNet3DConditionSVDModel, init_ip_adapters
    from src.schedulers.scheduling_euler_discrete import EulerDiscreteScheduler

    spec = RUNS[name]
    arrays = sampling_inputs(name)
    x = {k: torch.from_numpy(v) for k, v in arrays.items()}
    frames, pad = spec["frames"], spec["pad"]
    unet = UNet3DConditionSVDModel.from_config(SAMPLING_UNET)
    init_ip_adapters(unet, [32], spec["ip_motion_scale"])  # inference.py: cfg.num_adapter_embeds, ip_motion_scale
    fill_module(unet)
    unet.eval()
    if spec.get("stand_in"):  # the loop alone: the module keeps the UNet's config, its forward is elementwise
        unet.forward = stand_in_unet
    decoded = bool(spec["decode_chunk_size"])
    if decoded:
        vae = AutoencoderKLTemporalDecoder(**SAMPLING_VAE)
        fill_module(vae)
        vae.eval()
        ref_image = x["picture"].permute(2, 0, 1)[None].float() / 255 * 2 - 1  # test_preprocess.py's to_tensor
    else:  # a stub VAE whose posterior is the given latent (mean = mode)
        latent = x["ref"]
        vae = torch.nn.Module()
        vae.register_buffer("anchor", torch.zeros(1))
        vae.config = _Stub(block_out_channels=[1, 1, 1, 1], force_upcast=False, scaling_factor=0.18215)
        vae.encode = lambda image: _Stub(latent_dist=_Stub(mean=latent, mode=lambda: latent))
        vae.dtype, vae.device = torch.float32, torch.device("cpu")
        ref_image = torch.zeros(1, 3, 64, 64)

    class Encoder(torch.nn.Module):  # the DINO stub: its output is the given image tokens (after image_proj)
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(1))

    class Identity(torch.nn.Module):  # image_proj and the pose guider: hand their input on
        dtype = torch.float32

        def forward(self, tensor):
            return tensor

    image = x["image"]
    release_pipeline.encode_image_with_id_features = lambda img, ids, model: image  # (1, 64, 32)
    scheduler = EulerDiscreteScheduler.from_config(SVD_XT_SCHEDULER)
    pipe = release_pipeline.HunyuanLongSVDPipeline(vae=vae, image_encoder=Encoder(), image_proj=Identity(),
                                                   unet=unet, pose_guider=Identity(), scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)

    # inference.py's motion and pose pads: the first frame's motion × i/pad before, the last's × (1 − i/pad)
    # after, the uncond motion zeros, the pose condition the first frame's at both ends
    motion = x["motion"][None]  # (1, T, 64, 32)
    pose = x["pose"].permute(1, 0, 2, 3)[None]  # (1, C, T, h, w): the "pose guider" hands it on
    before = [motion[:, :1] * (i / pad) for i in range(pad)]
    after = [motion[:, -1:] * (1 - i / pad) for i in range(pad)]
    driven = torch.cat([*before, motion, *after], dim=1)
    pose = torch.cat([pose[:, :, :1]] * pad + [pose] + [pose[:, :, :1]] * pad, dim=2)
    record = {}
    decode_latents = pipe.decode_latents

    def recording_decode(latents, num_frames, chunk):
        record["latents"] = latents.float().numpy().copy()
        return decode_latents(latents, num_frames, chunk)

    pipe.decode_latents = recording_decode
    (g1_min, g1_max), (g2_min, g2_max) = spec["guidance"]
    steps = spec["steps"]
    with torch.no_grad():
        if decoded:
            record["ref_latent_scaled"] = (vae.encode(ref_image).latent_dist.mean * 0.18215).numpy()
        result = pipe(
            ref_image, torch.zeros(1, 3, 224, 224), pose, driven, torch.zeros_like(driven), height=64, width=64,
            num_frames=frames + 2 * pad, num_inference_steps=steps, min_guidance_scale1=g1_min,
            max_guidance_scale1=g1_max, min_guidance_scale2=g2_min, max_guidance_scale2=g2_max, fps=spec["fps"],
            motion_bucket_id=spec["motion_bucket_id"], noise_aug_strength=spec["noise_aug_strength"],
            decode_chunk_size=spec["decode_chunk_size"] or 8, generator=torch.Generator().manual_seed(0),
            latents=x["noise"], output_type="pt" if decoded else "latent", overlap=spec["overlap"],
            shift_offset=spec["shift_offset"], frames_per_batch=spec["window"],
            i2i_noise_strength=spec["i2i_noise_strength"], arcface_embeddings=np.zeros((1, 512), np.float32),
            device="cpu",
        ).frames
    if decoded:  # inference.py: video * 0.5 + 0.5, clamped, pads cut
        video = (result * 0.5 + 0.5).clamp(0, 1)[:, :, pad:-pad]
        record["frames"] = video[0].permute(1, 2, 3, 0).float().numpy()  # T×H×W×3
        record["picture"] = arrays["picture"]
    else:
        record["latents"] = result.float().numpy()
    return record


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", type=Path, required=True, help="a checkout of Tencent-Hunyuan/HunyuanPortrait")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write the two .npz files to")
    parser.add_argument("--commit", help="the checkout's commit (read with git when omitted)")
    args = parser.parse_args(argv)
    release = args.release.resolve()
    commit = release_commit(release, args.commit)
    os.environ.setdefault("XFORMERS_DISABLED", "1")
    sys.path.insert(0, str(release))
    if not torchvision_transforms():  # test_preprocess.py's transforms, for its crops
        raise SystemExit("torchvision is needed (its transforms make the release's expression and head-pose crops)")
    stub_missing("skvideo.io", "decord")  # imported by src/dataset/*.py, unused here
    import diffusers
    import torch

    torch.set_num_threads(1)
    meta = json.dumps(dict(release="Tencent-Hunyuan/HunyuanPortrait", commit=commit, diffusers=diffusers.__version__,
                           torch=torch.__version__, threads=1))
    args.out.mkdir(parents=True, exist_ok=True)
    modules = modules_fixture(torch)
    path = args.out / "implicit_diffusion_release.npz"
    np.savez_compressed(path, **modules, meta=np.array(meta))
    print(f"wrote {path} ({path.stat().st_size // 1024} KB) from Tencent-Hunyuan/HunyuanPortrait {commit}")
    for key in sorted(modules):
        if modules[key].dtype.kind in "iuf":  # norm_eps is a JSON string
            print(f"  {key:28s} {str(modules[key].shape):22s} max |x| {np.abs(modules[key]).max():.4g}")
    runs = {}
    for name in RUNS:
        for key, value in sampling_run(torch, name).items():
            runs[key if name == "windows" else f"{name}/{key}"] = value
    path = args.out / "implicit_diffusion_sampling_release.npz"
    np.savez_compressed(path, **runs, runs=np.array(json.dumps(RUNS)), meta=np.array(meta))
    print(f"wrote {path} ({path.stat().st_size // 1024} KB): runs {', '.join(RUNS)}")
    for key in sorted(runs):
        print(f"  {key:28s} {str(runs[key].shape):22s} max |x| {np.abs(runs[key]).max():.4g}")
    print("our differences from them: python tools/parity/compare.py implicit-diffusion")


if __name__ == "__main__":
    main()
