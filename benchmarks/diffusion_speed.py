"""Seconds per output frame and peak memory of the diffusion engines' sampling (random weights).

    python benchmarks/diffusion_speed.py --config tiny            # 64×64, the test configuration
    python benchmarks/diffusion_speed.py --config full --device cuda   # the release's sizes, 512×512, fp16
    python benchmarks/diffusion_speed.py --engine implicit-diffusion --config tiny
    python benchmarks/diffusion_speed.py --engine implicit-diffusion --config full --device cuda --frames 50

``--engine landmark-diffusion`` (Follow-Your-Emoji, the default) or ``implicit-diffusion`` (HunyuanPortrait).

``--engine audio-diffusion`` (EMO's design on Hallo's layout): ``generate`` from a reference, its region masks and
wav2vec2 features (the audio encoder runs once per audio and is not timed), clip after clip of 16 frames chained
by 2 motion frames, 40 steps, guidance 3.5 (Hallo's inference defaults). ``full``: SD-1.5's UNet widths for the
reference net and the denoiser with the audio and motion modules, the SD VAE, Hallo's projections, in memory
with random weights::

    python benchmarks/diffusion_speed.py --engine audio-diffusion --config tiny
    python benchmarks/diffusion_speed.py --engine audio-diffusion --config full --device cuda --frames 32

``--engine audio-diffusion-training``: training throughput of the audio-diffusion engine (EMO on Hallo's
layout), samples per second per process, for the image stage (single pictures) and the video stage (clips of
``--frames`` with 2 motion frames), each with and without gradient checkpointing in the same run (the ratio is
what checkpointing costs); one optimizer step per sample batch of 1, random weights, random cached inputs::

    python benchmarks/diffusion_speed.py --engine audio-diffusion-training --config tiny
    python benchmarks/diffusion_speed.py --engine audio-diffusion-training --config full --device cuda --precision bf16

``full`` builds the release's sizes (SD-1.5 UNet widths for the reference net and the denoiser, CLIP ViT-L/14,
the SD VAE, 21 temporal modules, the guider) with random weights, written in the official layout and loaded
back through ``load_official``, so it times exactly what real weights would run. On a CPU it takes very long
(tens of minutes per frame at 30 steps); it is meant for a GPU. Peak memory: CUDA's allocator peak on a GPU,
the process's resident-set peak on a CPU.

HunyuanPortrait: ``full`` builds the release's sizes (SVD-xt's UNet with the motion attention, SVD's temporal
VAE, DINOv2-L with the adapters, the ResNet-50/18 encoders, the refiner, the pose guider) in memory with random
weights (the modules ``load_official`` builds; the 2 GB of files are not written and read back), and times
``generate`` from pictures: appearance, motion tokens, the windowed three-branch sampling of the frames plus
2 × 15 pads, and the chunked decoding. Seconds per frame count the driving frames only (the pads cost as much
each): a clip of F frames runs ⌈(F + 30) / 22⌉ windows of 3 × 25 frames per step.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from memory import peak_rss_mib  # a sibling module (benchmarks/ is on the path when a script here runs)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from enliven.engines.landmark_diffusion import Context, generate, load_official  # noqa: E402
from enliven.engines.landmark_diffusion.tiny import save_tiny_official  # noqa: E402


def save_full_official(folder: Path) -> Path:
    """Random weights at the release's sizes, in the official layout."""
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from enliven.engines.diffusion.unet import build_denoiser, build_reference_net
    from enliven.engines.landmark_diffusion.checkpoints import save_official
    from enliven.engines.landmark_diffusion.guider import LandmarkGuider
    from enliven.engines.landmark_diffusion.tiny import tiny_unet_config

    unet_config = tiny_unet_config(cross_attention_dim=768, widths=(320, 640, 1280, 1280)) | {"sample_size": 64}
    modules = {
        "vae": AutoencoderKL(
            down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
            block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=4, sample_size=512,
        ),
        "image_encoder": CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
            image_size=224, patch_size=14, projection_dim=768,
        )),
        "reference_net": build_reference_net(unet_config, 1024),
        "denoiser": build_denoiser(unet_config, 1024, heads=8, layers=1, attention_blocks=2, max_frames=32),
        "guider": LandmarkGuider(out_channels=320, widths=(16, 32, 96, 256)),
    }
    return save_official(modules, folder, unet_config)


def hunyuan_full_modules() -> dict:
    """HunyuanPortrait's modules at the release's sizes, random weights, as ``load_official`` builds them."""
    from diffusers import AutoencoderKLTemporalDecoder

    from enliven.engines.implicit_diffusion.checkpoints import _BUILDERS, RELEASE_SIZES
    from enliven.engines.implicit_diffusion.svd_unet import build_unet

    unet_config = dict(  # stabilityai/stable-video-diffusion-img2vid-xt unet/config.json
        sample_size=96, in_channels=8, out_channels=4, block_out_channels=[320, 640, 1280, 1280],
        down_block_types=["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
        up_block_types=["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
        addition_time_embed_dim=256, projection_class_embeddings_input_dim=768, layers_per_block=2,
        cross_attention_dim=1024, transformer_layers_per_block=1, num_attention_heads=[5, 10, 20, 20], num_frames=25,
    )
    modules = {name: builder(**RELEASE_SIZES[name]) for name, builder in _BUILDERS.items()}
    modules["unet"] = build_unet(unet_config)
    modules["vae"] = AutoencoderKLTemporalDecoder(  # its vae/config.json
        block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4, layers_per_block=2,
        latent_channels=4, sample_size=768, scaling_factor=0.18215, force_upcast=True,
    )
    return modules


def bench_hunyuan(args) -> None:
    from enliven.engines.implicit_diffusion import DrivingFrame, generate, load_official
    from enliven.engines.implicit_diffusion.tiny import save_tiny

    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    if args.config == "tiny":
        with tempfile.TemporaryDirectory() as tmp:
            save_tiny(tmp)
            models = load_official(tmp, device=args.device, dtype=dtype)
        size = 64
    else:
        models = {k: m.to(args.device, dtype).eval().requires_grad_(False) for k, m in hunyuan_full_modules().items()}
        size = 512
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    landmarks = np.zeros((478, 3))
    landmarks[:, :2] = rng.uniform(0.3 * size, 0.7 * size, (478, 2))  # a face-sized cloud: crops and buckets work
    frames = [
        DrivingFrame(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), landmarks) for _ in range(args.frames)
    ]
    guidance = 2.0 if args.guidance is None else args.guidance
    steps = 25 if args.steps is None else args.steps
    generate(models, reference, frames[:1], reference_landmarks=landmarks, steps=1, pad=1, seed=0)  # warm-up
    seconds = seconds_on(args.device, lambda: generate(
        models, reference, frames, reference_landmarks=landmarks, steps=steps, guidance=(guidance, guidance), seed=0))
    print(f"implicit-diffusion {args.config} {size}x{size}, {args.frames} frames (+30 pads), {steps} steps, "
          f"guidance {guidance}, {args.device} {str(dtype).removeprefix('torch.')}: {seconds / args.frames:.3f} s per "
          f"frame, peak memory {peak_memory_mb(args.device):.0f} MB")


def bench_audio(args) -> None:
    """Seconds per frame of the audio-diffusion engine's ``generate`` (clips chained by motion frames)."""
    from diffusers import AutoencoderKL

    from enliven.engines.audio_diffusion.model import (
        AudioProjection,
        FaceLocator,
        ImageProjection,
        build_denoiser,
        build_reference_net,
    )
    from enliven.engines.audio_diffusion.pipeline import CLIP, Conditions, generate
    from enliven.engines.audio_diffusion.tiny import tiny_modules, tiny_unet_config

    torch.manual_seed(0)
    if args.config == "tiny":
        modules, _ = tiny_modules()
        modules.pop("audio_encoder")
        size = 64
    else:  # SD-1.5's UNet and VAE, Hallo's projections, wav2vec2-base's 12 × 768 features
        config = tiny_unet_config(768, (320, 640, 1280, 1280)) | {"sample_size": 64}
        size = 512
        modules = {"reference_net": build_reference_net(config), "denoiser": build_denoiser(config),
                   "face_locator": FaceLocator(320), "image_proj": ImageProjection(768),
                   "audio_proj": AudioProjection(5, 12, 768),
                   "vae": AutoencoderKL(down_block_types=["DownEncoderBlock2D"] * 4,
                                        up_block_types=["UpDecoderBlock2D"] * 4,
                                        block_out_channels=[128, 256, 512, 512], layers_per_block=2,
                                        latent_channels=4, sample_size=512)}
    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    # torch's own Module.to: diffusers' override warns about float32 modules on every cast (the engine's load too)
    models = {k: torch.nn.Module.to(m, args.device, dtype).eval().requires_grad_(False) for k, m in modules.items()}
    audio = models["audio_proj"].proj1.in_features // 5  # layers × channels
    layers = 12 if args.config == "full" else 2
    features = torch.randn(args.frames, layers, audio // layers)
    clips = -(-args.frames // CLIP)
    features = torch.cat([features, features.new_zeros(clips * CLIP - args.frames, layers, audio // layers)])
    latent = size // 8
    conditions = Conditions(
        reference=torch.rand(3, size, size) * 2 - 1, face_region=torch.rand(3, size, size),
        masks=[tuple(torch.rand((latent >> i) ** 2) for _ in range(3)) for i in range(4)],
        face_embedding=torch.randn(models["image_proj"].proj.in_features),
    )
    steps = 40 if args.steps is None else args.steps
    guidance = 3.5 if args.guidance is None else args.guidance

    def run(frames, steps):
        for _ in generate(models, conditions, frames, length=None, steps=steps, guidance=guidance, seed=0):
            pass

    run(features[:CLIP], 1)  # warm-up
    seconds = seconds_on(args.device, lambda: run(features, steps))
    print(f"audio-diffusion {args.config} {size}x{size}, {args.frames} frames ({clips} clips of {CLIP}), {steps} "
          f"steps, guidance {guidance}, {args.device} {str(dtype).removeprefix('torch.')}: "
          f"{seconds / (clips * CLIP):.3f} s per frame, peak memory {peak_memory_mb(args.device):.0f} MB")


def bench_audio_training(args) -> None:
    """Samples/s per process of ``training.train.Trainer``'s step (loss, backward, clipping, AdamW)."""
    from enliven.engines.audio_diffusion.model import (
        AudioProjection,
        FaceLocator,
        ImageProjection,
        build_denoiser,
        build_reference_net,
    )
    from enliven.engines.audio_diffusion.tiny import tiny_modules, tiny_unet_config
    from enliven.engines.audio_diffusion.training.config import defaults
    from enliven.engines.audio_diffusion.training.data import Batch
    from enliven.engines.audio_diffusion.training.net import (
        Drops,
        TrainingNet,
        loss_of,
        noise_scheduler,
        snr_weights,
        target_of,
        trainable,
    )

    torch.manual_seed(0)
    if args.config == "tiny":
        modules, _ = tiny_modules()
        size, layers, channels = 64, 2, 32
    else:  # SD-1.5's UNet, Hallo's projections, wav2vec2-base's 12 × 768 features
        config = tiny_unet_config(768, (320, 640, 1280, 1280)) | {"sample_size": 64}
        size, layers, channels = 512, 12, 768
        modules = {"reference_net": build_reference_net(config), "denoiser": build_denoiser(config),
                   "face_locator": FaceLocator(320), "image_proj": ImageProjection(768),
                   "audio_proj": AudioProjection(5, layers, channels)}
    net = TrainingNet(modules).to(args.device)
    scheduler = noise_scheduler(defaults()["noise"])
    latent = size // 8
    embedding = modules["image_proj"].proj.in_features
    precision = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)

    def batch(frames: int) -> Batch:
        levels = [tuple(torch.rand(1, (latent >> i) ** 2) for _ in range(3)) for i in range(4)]
        return Batch(torch.randn(1, 4, frames, latent, latent), torch.randn(1, 4, latent, latent),
                     torch.randn(1, 2 if frames > 1 else 0, 4, latent, latent), torch.rand(1, 3, size, size), levels,
                     torch.randn(1, embedding), torch.randn(1, frames, 5, layers, channels),
                     torch.zeros(1, dtype=torch.long)).to(args.device)

    def rate(stage: str, checkpointing: bool) -> float:
        modules["denoiser"].frame_context.checkpointing = checkpointing
        parameters = [p for _, p in trainable(modules, stage)]
        optimizer = torch.optim.AdamW(parameters, lr=1e-5)
        sample = batch(1 if stage == "image" else args.frames)

        def step():
            timesteps = torch.randint(0, 1000, (1,), device=args.device)
            noise = torch.randn_like(sample.target)
            noisy = scheduler.add_noise(sample.target, noise, timesteps)
            context = (torch.autocast("cuda", dtype=precision) if precision and args.device.startswith("cuda")
                       else torch.autocast("cpu", enabled=False))
            with context:
                prediction = net(sample, noisy, timesteps, Drops(), video=stage != "image")
            loss = loss_of(prediction, target_of(scheduler, sample.target, noise, timesteps),
                           snr_weights(scheduler, timesteps, 5.0))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()

        step()  # warm-up
        seconds = seconds_on(args.device, lambda: [step() for _ in range(args.steps)])
        return args.steps / seconds

    print(f"audio-diffusion training, {args.config} {size}x{size}, {args.device}, precision {args.precision}, "
          f"batch 1 per process, video clips of {args.frames} frames + 2 motion frames:")
    for stage in ("image", "video"):
        plain, saved = rate(stage, False), rate(stage, True)
        print(f"  {stage} stage: {plain:.3f} samples/s per process; with gradient checkpointing {saved:.3f} "
              f"({saved / plain:.2f}x), peak memory {peak_memory_mb(args.device):.0f} MB")


def seconds_on(device: str, run) -> float:
    """Wall time of ``run()``, the GPU's queued work included; the GPU's peak memory counts from here."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mib()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="landmark-diffusion", choices=(
        "landmark-diffusion", "implicit-diffusion", "audio-diffusion", "audio-diffusion-training"))
    parser.add_argument("--precision", choices=("no", "bf16", "fp16"), default="no",
                        help="autocast on a GPU (audio-diffusion-training)")
    parser.add_argument("--config", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=None, help="default 16 (landmark), 25 (implicit), 32 (audio)")
    parser.add_argument("--steps", type=int, default=None, help="default: the release's (30, 25, 40)")
    parser.add_argument("--guidance", type=float, default=None, help="default: the release's (3.5, 2.0)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.engine == "implicit-diffusion":
        args.frames = args.frames or 25
        return bench_hunyuan(args)
    if args.engine == "audio-diffusion":
        args.frames = args.frames or 32
        return bench_audio(args)
    if args.engine == "audio-diffusion-training":
        args.frames = args.frames or 14
        args.steps = args.steps or 3
        return bench_audio_training(args)
    args.frames = args.frames or 16
    args.steps = 30 if args.steps is None else args.steps
    args.guidance = 3.5 if args.guidance is None else args.guidance
    size = 64 if args.config == "tiny" else 512
    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    with tempfile.TemporaryDirectory() as tmp:
        if args.config == "tiny":
            save_tiny_official(tmp)
        else:
            save_full_official(Path(tmp))
        models = load_official(tmp, device=args.device, dtype=dtype)
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    landmarks = np.zeros((args.frames, size, size, 3), np.uint8)
    generate(models, reference, landmarks[:1], steps=1, seed=0)  # warm-up
    seconds = seconds_on(args.device, lambda: generate(
        models, reference, landmarks, steps=args.steps, guidance=args.guidance, seed=0, context=Context()))
    print(f"{args.config} {size}x{size}, {args.frames} frames, {args.steps} steps, guidance {args.guidance}, "
          f"{args.device} {str(dtype).removeprefix('torch.')}: {seconds / args.frames:.3f} s per frame, "
          f"peak memory {peak_memory_mb(args.device):.0f} MB")


if __name__ == "__main__":
    main()
