"""Seconds per output frame and peak memory of Follow-Your-Emoji's sampling (random weights).

    python benchmarks/diffusion_speed.py --config tiny            # 64×64, the test configuration
    python benchmarks/diffusion_speed.py --config full --device cuda   # the release's sizes, 512×512, fp16

``full`` builds the release's sizes (SD-1.5 UNet widths for the reference net and the denoiser, CLIP ViT-L/14,
the SD VAE, 21 temporal modules, the guider) with random weights, written in the official layout and loaded
back through ``load_official``, so it times exactly what real weights would run. On a CPU it takes very long
(tens of minutes per frame at 30 steps); it is meant for a GPU. Peak memory: CUDA's allocator peak on a GPU,
the process's resident-set peak on a CPU.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

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


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--guidance", type=float, default=3.5)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
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
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    generate(models, reference, landmarks, steps=args.steps, guidance=args.guidance, seed=0, context=Context())
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(f"{args.config} {size}x{size}, {args.frames} frames, {args.steps} steps, guidance {args.guidance}, "
          f"{args.device} {str(dtype).removeprefix('torch.')}: {seconds / args.frames:.3f} s per frame, "
          f"peak memory {peak_memory_mb(args.device):.0f} MB")


if __name__ == "__main__":
    main()
