"""Fixtures from Follow-Your-Emoji's own code (mayuelala/FollowYourEmoji), for ``landmark-diffusion``'s parity tests.

Run it in an environment that can import the release (its vendored diffusers 0.24 is imported from the checkout;
it also needs transformers 4.46, omegaconf, einops, safetensors and a CPU torch; torchvision, which the release
imports but never uses on this path, is stubbed when missing)::

    python tools/parity/follow_your_emoji.py --release /path/to/FollowYourEmoji \\
        --out tests/engines/data/landmark_diffusion_release.npz

What it does, with the release's code only (nothing of enliven is imported):

1. writes a tiny random Follow-Your-Emoji in the release's ``pretrained_models/`` layout: the release's UNet
   config shape at small widths (the release's ``clip_fc`` fixes CLIP at 1024 wide and cross-attention at 768),
   its ``configs/infer.yaml`` motion-module and reference-net options, a 4-level VAE, a 1-layer CLIP vision
   model; every tensor ``fill.fill_value`` of its name (the temporal position tables keep their sinusoid);
2. loads it back the release's way (``from_pretrained_2d`` of both UNets with the motion module, then the
   Follow-Your-Emoji files; the guider built as ``infer.py`` builds it, at the tiny widths);
3. runs the release's ``VideoPipeline.__call__`` (64×64, 4 frames, 3 steps, guidance 3.5, seed 12580, DDIM
   with the zero-SNR options ``infer.py`` sets; CPU, fp32, one thread) and records what its modules produced:
   the CLIP input, the reference latent, the guider's features, the reference net's tokens, the first denoiser
   call (its inputs and output), the initial noise, the final latents and the decoded frames;
4. writes them, the inputs and the sizes to ``--out`` (a compressed .npz, no pickles).

``python tools/parity/compare.py landmark-diffusion`` (in enliven's environment) prints our differences from it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fill import fill_module  # noqa: E402
from release_env import release_commit, stub_missing  # noqa: E402

SIZE, FRAMES, STEPS, GUIDANCE, SEED = 64, 4, 3, 3.5, 12580
CLIP_WIDTH, CROSS_WIDTH = 1024, 768  # the release's clip_fc: nn.Linear(1024, 768)
UNET_CONFIG = dict(
    _class_name="UNet2DConditionModel", sample_size=8, in_channels=4, out_channels=4,
    center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    block_out_channels=[32, 64, 128, 128], layers_per_block=2, downsample_padding=1, mid_block_scale_factor=1,
    act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=CROSS_WIDTH,
    attention_head_dim=8, use_linear_projection=False,
)
VAE_CONFIG = dict(
    in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[8, 8, 16, 16], layers_per_block=1,
    act_fn="silu", latent_channels=4, norm_num_groups=4, sample_size=64, scaling_factor=0.18215,
)
CLIP_CONFIG = dict(hidden_size=CLIP_WIDTH, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                   image_size=224, patch_size=32, projection_dim=16)
GUIDER_WIDTHS = (4, 8, 8, 16)  # the release's (16, 32, 96, 256), narrower; out = the UNet's first width
GUIDER_GAIN = 1.6  # seven plain convolutions: without it the pictures' signal fades under the biases


def inputs() -> dict[str, np.ndarray]:
    """A smooth reference picture with some texture, and landmark pictures of thin coloured strokes, some moving."""
    rng = np.random.default_rng(21)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    base = np.stack([0.5 + 0.4 * np.sin(5 * xx + c) * np.cos(3 * yy - c) for c in range(3)], axis=-1)
    reference = np.clip(255 * base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    landmarks = np.zeros((FRAMES, SIZE, SIZE, 3), np.uint8)
    strokes = [(rng.integers(4, 56), rng.integers(4, 40), rng.integers(8, 24), rng.integers(1, 3),
                rng.integers(60, 256, 3)) for _ in range(14)]  # thin coloured strokes, as landmark lines are
    for f in range(FRAMES):
        for k, (y, x, length, width, colour) in enumerate(strokes):
            dy = (f * (k % 3 - 1)) // 2  # some strokes move up or down from frame to frame
            if k % 2:
                landmarks[f, y + dy:y + dy + width, x:x + length] = colour
            else:
                landmarks[f, max(y - length // 2 + dy, 0):y + dy, x:x + width] = colour
    return {"reference": reference, "landmarks": landmarks}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", type=Path, required=True, help="a checkout of mayuelala/FollowYourEmoji")
    parser.add_argument("--out", type=Path, required=True, help="the .npz to write")
    parser.add_argument("--commit", help="the checkout's commit (read with git when omitted)")
    args = parser.parse_args(argv)
    release = args.release.resolve()
    commit = release_commit(release, args.commit)
    sys.path.insert(0, str(release))
    stub_missing("torchvision", "torchvision.transforms")  # imported by models/__init__.py, unused here

    import torch

    torch.set_num_threads(1)
    import diffusers
    from diffusers import AutoencoderKL, DDIMScheduler
    from models.guider import Guider
    from models.referencenet import ReferenceNet2DConditionModel
    from models.unet import UNet3DConditionModel
    from models.video_pipeline import VideoPipeline
    from omegaconf import OmegaConf
    from PIL import Image
    from safetensors.torch import save_file
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    if not diffusers.__file__.startswith(str(release)):
        raise SystemExit(f"diffusers came from {diffusers.__file__}, not the release's vendored copy")
    config = OmegaConf.load(release / "configs" / "infer.yaml")
    unet_kwargs = OmegaConf.to_container(config.model.unet_additional_kwargs)
    reference_kwargs = OmegaConf.to_container(config.model.referencenet_additional_kwargs)
    unet_kwargs["use_inflated_groupnorm"] = bool(unet_kwargs.get("use_inflated_groupnorm"))

    def keep_sinusoid(key: str) -> bool:
        return key.endswith("pos_encoder.pe")

    work = Path(tempfile.mkdtemp(prefix="fye-parity-"))
    root = work / "pretrained_models"
    base_unet = root / "sd-image-variations-diffusers" / "unet"
    for folder in (base_unet, root / "sd-image-variations-diffusers" / "image_encoder", root / "sd-vae-ft-mse",
                   root / "AnimateDiff", root / "follow-your-emoji"):
        folder.mkdir(parents=True)
    (base_unet / "config.json").write_text(json.dumps(UNET_CONFIG))
    motion_path = root / "AnimateDiff" / "mm_sd_v15_v2.ckpt"

    # 1. the release's modules at the tiny sizes, filled by key, written in the official layout
    save_file({}, str(base_unet / "diffusion_pytorch_model.safetensors"))
    torch.save({}, motion_path)
    unet = UNet3DConditionModel.from_pretrained_2d(base_unet.parent, motion_module_path=motion_path,
                                                   subfolder="unet", unet_additional_kwargs=unet_kwargs)
    reference_net = ReferenceNet2DConditionModel.from_pretrained_2d(
        base_unet.parent, subfolder="unet", referencenet_additional_kwargs=reference_kwargs)
    guider = Guider(conditioning_embedding_channels=UNET_CONFIG["block_out_channels"][0],
                    block_out_channels=GUIDER_WIDTHS)
    vae = AutoencoderKL(**VAE_CONFIG)
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_CONFIG))
    for module in (unet, reference_net, vae, image_encoder):
        fill_module(module, skip=keep_sinusoid)
    fill_module(guider, gain=GUIDER_GAIN)

    def plain(state):
        return {k: v.detach().clone().contiguous() for k, v in state.items()}

    unet_state = plain(unet.state_dict())
    torch.save(unet_state, root / "follow-your-emoji" / "unet.pth")
    torch.save(plain(reference_net.state_dict()), root / "follow-your-emoji" / "referencenet.pth")
    torch.save(plain(guider.state_dict()), root / "follow-your-emoji" / "lmk_guider.pth")
    torch.save({k: v for k, v in unet_state.items() if "motion_modules." in k}, motion_path)
    save_file({k: v for k, v in unet_state.items() if "motion_modules." not in k and not k.startswith("clip_fc.")},
              str(base_unet / "diffusion_pytorch_model.safetensors"))
    vae.save_pretrained(root / "sd-vae-ft-mse", safe_serialization=True)
    image_encoder.save_pretrained(root / "sd-image-variations-diffusers" / "image_encoder")
    del unet, reference_net, guider, vae, image_encoder

    # 2. loaded back as infer.py loads them
    def load_model_state_dict(model, path):  # infer.py's: every key the model has, strict=False
        state = torch.load(path, map_location="cpu", weights_only=True)
        own = model.state_dict()
        missing, _ = model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
        if missing:
            raise SystemExit(f"{path.name}: {len(missing)} keys missing, e.g. {missing[:3]}")
        return len(state)

    vae = AutoencoderKL.from_pretrained(root / "sd-vae-ft-mse")
    image_encoder = CLIPVisionModelWithProjection.from_pretrained(root / "sd-image-variations-diffusers" /
                                                                  "image_encoder")
    reference_net = ReferenceNet2DConditionModel.from_pretrained_2d(
        root / "sd-image-variations-diffusers", subfolder="unet", referencenet_additional_kwargs=reference_kwargs)
    unet = UNet3DConditionModel.from_pretrained_2d(root / "sd-image-variations-diffusers",
                                                   motion_module_path=motion_path, subfolder="unet",
                                                   unet_additional_kwargs=unet_kwargs)
    guider = Guider(conditioning_embedding_channels=UNET_CONFIG["block_out_channels"][0],
                    block_out_channels=GUIDER_WIDTHS)
    counts = {name: load_model_state_dict(model, root / "follow-your-emoji" / f"{name}.pth")
              for name, model in (("referencenet", reference_net), ("unet", unet), ("lmk_guider", guider))}
    for model in (vae, image_encoder, reference_net, unet, guider):
        model.eval()
    sched_kwargs = OmegaConf.to_container(config.scheduler)
    if config.enable_zero_snr:  # infer.py's
        sched_kwargs.update(rescale_betas_zero_snr=True, timestep_spacing="trailing", prediction_type="v_prediction")
    pipeline = VideoPipeline(vae=vae, image_encoder=image_encoder, referencenet=reference_net, unet=unet,
                             lmk_guider=guider, scheduler=DDIMScheduler(**sched_kwargs)).to("cpu", dtype=torch.float32)

    # 3. a run, recording what each module produced
    pictures = inputs()
    record: dict[str, np.ndarray] = {}

    def keep(name, tensor):
        if name not in record:
            record[name] = tensor.detach().float().cpu().numpy().copy()

    def on_reference(_module, args, kwargs, output):
        keep("vae_latent", args[0][-1:])  # the conditional row (both rows hold the same latent)
        down, mid, up = output
        names = [f"down_blocks.{b}.attentions.{a}" for b in range(3) for a in range(2)] + ["mid_block.attentions.0"]
        names += [f"up_blocks.{b}.attentions.{a}" for b in range(1, 4) for a in range(3)]
        for name, tokens in zip(names, [*down, mid, *up]):
            keep(f"reference/{name}", tokens[-1:])  # the conditional row: the only one the denoiser attends to

    def on_unet(_module, args, kwargs, output):
        if "step_input" not in record:
            keep("step_input", args[0])
            keep("step_timestep", torch.as_tensor(args[1]).reshape(1))
            keep("step_output", output.sample)
            keep("clip_states", kwargs["encoder_hidden_states"][-1:])

    hooks = [reference_net.register_forward_hook(on_reference, with_kwargs=True),
             unet.register_forward_hook(on_unet, with_kwargs=True),
             guider.register_forward_hook(lambda _m, _a, out: keep("guider", out))]
    prepare_latents, decode_latents = pipeline.prepare_latents, pipeline.decode_latents

    def recording_prepare(*a, **k):
        latents = prepare_latents(*a, **k)
        keep("noise", latents)
        return latents

    def recording_decode(latents):
        keep("latents", latents)
        return decode_latents(latents)

    pipeline.prepare_latents, pipeline.decode_latents = recording_prepare, recording_decode
    clip_image = CLIPImageProcessor()(images=Image.fromarray(pictures["reference"]), return_tensors="pt")
    clip_image = clip_image.pixel_values[0]  # as the release's dataset/val_dataset.py makes it
    generator = torch.Generator(device="cpu")
    generator.manual_seed(SEED)
    with torch.no_grad():
        frames = pipeline(ref_image=Image.fromarray(pictures["reference"]),
                          lmk_images=[Image.fromarray(p) for p in pictures["landmarks"]], width=SIZE, height=SIZE,
                          video_length=FRAMES, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                          generator=generator, clip_image=clip_image).videos
    for hook in hooks:
        hook.remove()
    record["frames"] = frames[0].permute(1, 2, 3, 0).float().numpy()  # F×H×W×3 in [0, 1]
    record["clip_pixels_every_7"] = clip_image[:, ::7, ::7].numpy().copy()
    record["clip_pixels_sum"] = np.array([clip_image.double().sum().item(), clip_image.double().abs().sum().item()])
    del record["clip_states"]  # 200 KB: the tests run CLIP on the same input instead

    sizes = dict(unet=UNET_CONFIG, vae=VAE_CONFIG, clip=CLIP_CONFIG, guider_widths=list(GUIDER_WIDTHS),
                 guider_gain=GUIDER_GAIN,
                 temporal=unet_kwargs["motion_module_kwargs"], steps=STEPS, guidance=GUIDANCE, seed=SEED)
    meta = dict(release="mayuelala/FollowYourEmoji", commit=commit, diffusers=diffusers.__version__,
                transformers=sys.modules["transformers"].__version__, torch=torch.__version__, threads=1,
                loaded_tensors=counts)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **pictures, **record, sizes=np.array(json.dumps(sizes)),
                        meta=np.array(json.dumps(meta)))
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB) from {meta['release']} {commit}")
    print(f"  the release's own run: diffusers {meta['diffusers']}, transformers {meta['transformers']}, "
          f"torch {meta['torch']}, CPU fp32, one thread; tensors loaded per file {counts}")
    for key in sorted(record):
        print(f"  {key:55s} {str(record[key].shape):22s} max |x| {np.abs(record[key]).max():.4g}")
    print("our differences from it: python tools/parity/compare.py landmark-diffusion")


if __name__ == "__main__":
    main()
