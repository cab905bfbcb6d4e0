"""Fixtures from Hallo's own code (fudan-generative-vision/hallo), for ``audio-diffusion``'s parity tests.

Run it in an environment that can import the release: diffusers 0.27.2 and transformers 4.39.2 (its
requirements.txt), einops, omegaconf, safetensors, a CPU torch. Packages the release imports at the top of a
file but never calls on the paths run here (xformers, mediapipe, insightface, moviepy, audio-separator, PyAV,
torchvision, OpenCV) are stubbed when missing; ``librosa.load`` is replaced by reading the 16 kHz mono WAV this
script writes (no resampling is then involved)::

    python tools/parity/hallo.py --release /path/to/hallo --out tests/engines/data/audio_diffusion_release.npz

What it does, with the release's code only (nothing of enliven is imported):

1. builds the release's modules at a tiny size, as ``scripts/inference.py`` builds them: the reference
   ``UNet2DConditionModel`` (then put in eval mode, as ``from_pretrained`` leaves it), the denoiser by
   ``UNet3DConditionModel.from_pretrained_2d`` with ``configs/inference/default.yaml``'s
   ``unet_additional_kwargs`` (its audio width made tiny), gradient checkpointing on and left in training
   mode, ``FaceLocator``, ``ImageProjModel``, ``AudioProjModel``, a tiny ``Wav2VecModel`` and a 4-level VAE;
   every tensor ``fill.fill_value`` of its name (the motion modules' position tables keep their sinusoid);
2. writes them in the release's ``pretrained_models/`` layout and loads ``hallo/net.pth`` back through the
   release's ``Net`` with its no-missing, no-unexpected assertion;
3. runs, on CPU in fp32 with one thread: the release's ``AudioProcessor.preprocess`` and ``process_audio_emb``
   on a short speech-like WAV; each module on its own (the projections, the face locator, the reference net's
   tokens via ``ReferenceAttentionControl``, one denoiser call with guidance's batch); and two clips of
   ``scripts/inference.py``'s loop (motion frames from the first clip's decoded frames) through
   ``FaceAnimatePipeline`` with guidance 3.5;
4. writes the inputs, outputs, sizes, the release's ``net.pth`` key list and the commit to ``--out`` (a
   compressed .npz, no pickles).

``python tools/parity/compare.py audio-diffusion`` (in enliven's environment) prints our differences from it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fill import fill_module  # noqa: E402
from release_env import release_commit, stub_missing  # noqa: E402

SIZE, CLIP, MOTION_FRAMES, STEPS, GUIDANCE, SEED, FPS, RATE = 64, 4, 2, 3, 3.5, 42, 25, 16000
DIM = 32  # cross-attention, audio attention and projection width (the release's 768)
FACE_EMBEDDING = 16  # the release's 512
UNET_CONFIG = dict(
    _class_name="UNet2DConditionModel", sample_size=8, in_channels=4, out_channels=4,
    center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    block_out_channels=[32, 64, 128, 128], layers_per_block=2, downsample_padding=1, mid_block_scale_factor=1,
    act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=DIM,
    attention_head_dim=8, use_linear_projection=False,
)
VAE_CONFIG = dict(
    in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[8, 8, 16, 16], layers_per_block=1,
    act_fn="silu", latent_channels=4, norm_num_groups=4, sample_size=64, scaling_factor=0.18215,
)
WAV2VEC_CONFIG = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=[16] * 7,
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, vocab_size=32, do_stable_layer_norm=False,
    feat_extract_norm="group",
)
LOCATOR_WIDTHS = (4, 8, 8, 16)  # the release's (16, 32, 64, 128)
AUDIO_INTERMEDIATE, AUDIO_TOKENS = 24, 4  # the release's 512, 32
SECONDS = 0.3  # 8 frames at 25 fps: two clips of 4


def inputs() -> dict[str, np.ndarray]:
    """A textured reference picture, a face-box picture, region masks at the four levels, a face embedding and
    speech-like audio (a gliding tone with a syllable rhythm, plus noise)."""
    rng = np.random.default_rng(23)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    base = np.stack([0.5 + 0.4 * np.sin(5 * xx + c) * np.cos(3 * yy - c) for c in range(3)], axis=-1)
    reference = np.clip(255 * base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    region = np.zeros((3, SIZE, SIZE), np.float32)
    region[:, 12:52, 16:48] = 1
    masks = {}
    for level in range(4):
        side = SIZE // 8 >> level
        y, x = np.mgrid[0:side, 0:side] / max(side - 1, 1)
        face = np.exp(-((x - 0.5) ** 2 + (y - 0.45) ** 2) * 6).astype(np.float32)
        lip = np.exp(-((x - 0.5) ** 2 + (y - 0.7) ** 2) * 20).astype(np.float32)
        masks[f"mask_full_{level}"] = (1 - face).reshape(-1)
        masks[f"mask_face_{level}"] = np.clip(face - lip, 0, 1).reshape(-1)
        masks[f"mask_lip_{level}"] = lip.reshape(-1)
    t = np.arange(int(SECONDS * RATE)) / RATE
    tone = np.sin(2 * np.pi * (180 + 60 * np.sin(2 * np.pi * 3 * t)) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    audio = np.clip(0.3 * tone + 0.02 * rng.standard_normal(t.shape), -1, 1)
    audio_int16 = np.round(audio * 32767).astype(np.int16)
    return {"reference": reference, "face_region": region, "face_embedding": rng.normal(0, 1, FACE_EMBEDDING)
            .astype(np.float32), "audio_int16": audio_int16, **masks}


def _stub_librosa():
    """``librosa.load(path, sr=16000)`` for a 16 kHz mono 16-bit WAV: its samples / 32768 as float32 (librosa's
    own result for such a file: no resampling)."""
    from scipy.io import wavfile

    def load(path, sr=None):
        rate, data = wavfile.read(path)
        if sr is not None and rate != sr:
            raise RuntimeError("the parity WAV is written at 16 kHz")
        return data.astype(np.float32) / 32768.0, rate

    import importlib.machinery

    module = types.ModuleType("librosa")
    module.__spec__ = importlib.machinery.ModuleSpec("librosa", None)
    module.load = load
    sys.modules["librosa"] = module


def main(argv=None) -> None:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", type=Path, required=True, help="a checkout of fudan-generative-vision/hallo")
    parser.add_argument("--out", type=Path, required=True, help="the .npz to write")
    parser.add_argument("--commit", help="the checkout's commit (read with git when omitted)")
    args = parser.parse_args(argv)
    release = args.release.resolve()
    commit = release_commit(release, args.commit)
    sys.path.insert(0, str(release))
    _stub_librosa()
    stubbed = stub_missing("xformers", "xformers.ops", "mediapipe", "insightface", "insightface.app", "moviepy",
                           "moviepy.editor", "audio_separator", "audio_separator.separator", "av", "cv2",
                           "torchvision", "torchvision.transforms")

    import torch

    torch.set_num_threads(1)
    import diffusers
    import transformers
    from diffusers import AutoencoderKL, DDIMScheduler
    from hallo.animate.face_animate import FaceAnimatePipeline
    from hallo.datasets.audio_processor import AudioProcessor
    from hallo.models.audio_proj import AudioProjModel
    from hallo.models.face_locator import FaceLocator
    from hallo.models.image_proj import ImageProjModel
    from hallo.models.mutual_self_attention import ReferenceAttentionControl
    from hallo.models.unet_2d_condition import UNet2DConditionModel
    from hallo.models.unet_3d import UNet3DConditionModel
    from hallo.models.wav2vec import Wav2VecModel
    from omegaconf import OmegaConf
    from safetensors.torch import save_file
    from scipy.io import wavfile
    from transformers import Wav2Vec2Config

    sys.path.insert(0, str(release / "scripts"))
    from inference import Net, process_audio_emb

    config = OmegaConf.load(release / "configs" / "inference" / "default.yaml")
    unet_kwargs = OmegaConf.to_container(config.unet_additional_kwargs)
    unet_kwargs["audio_attention_dim"] = DIM
    scheduler_kwargs = OmegaConf.to_container(config.noise_scheduler_kwargs)
    if config.enable_zero_snr:
        scheduler_kwargs.update(rescale_betas_zero_snr=True, timestep_spacing="trailing",
                                prediction_type="v_prediction")
    data = inputs()

    def keep_sinusoid(key: str) -> bool:
        return key.endswith("pos_encoder.pe")

    work = Path(tempfile.mkdtemp(prefix="hallo-parity-"))
    root = work / "pretrained_models"
    base_unet = root / "stable-diffusion-v1-5" / "unet"
    wav_dir = root / "wav2vec" / "wav2vec2-base-960h"
    for folder in (base_unet, root / "hallo", root / "motion_module", root / "sd-vae-ft-mse", wav_dir):
        folder.mkdir(parents=True)
    (base_unet / "config.json").write_text(json.dumps(UNET_CONFIG))
    motion_path = root / "motion_module" / "mm_sd_v15_v2.ckpt"

    # 1. the release's modules at the tiny sizes, filled by key
    save_file({}, str(base_unet / "diffusion_pytorch_model.safetensors"))
    torch.save({}, motion_path)
    reference_unet = UNet2DConditionModel.from_config({k: v for k, v in UNET_CONFIG.items()}).eval()
    denoising_unet = UNet3DConditionModel.from_pretrained_2d(
        base_unet.parent, motion_path, subfolder="unet", unet_additional_kwargs=unet_kwargs, use_landmark=False)
    face_locator = FaceLocator(conditioning_embedding_channels=UNET_CONFIG["block_out_channels"][0],
                               block_out_channels=LOCATOR_WIDTHS)
    image_proj = ImageProjModel(cross_attention_dim=DIM, clip_embeddings_dim=FACE_EMBEDDING,
                                clip_extra_context_tokens=4)
    audio_proj = AudioProjModel(seq_len=5, blocks=WAV2VEC_CONFIG["num_hidden_layers"],
                                channels=WAV2VEC_CONFIG["hidden_size"], intermediate_dim=AUDIO_INTERMEDIATE,
                                output_dim=DIM, context_tokens=AUDIO_TOKENS)
    vae = AutoencoderKL(**VAE_CONFIG)
    wav2vec = Wav2VecModel(Wav2Vec2Config(**WAV2VEC_CONFIG))
    for module in (reference_unet, denoising_unet, face_locator, image_proj, audio_proj, vae, wav2vec):
        fill_module(module, skip=keep_sinusoid)
    reference_unet.enable_gradient_checkpointing()
    denoising_unet.enable_gradient_checkpointing()

    # 2. the official layout, loaded back as scripts/inference.py does
    def plain(module):
        return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}

    net = Net(reference_unet, denoising_unet, face_locator, image_proj, audio_proj)
    net_state = plain(net)
    torch.save(net_state, root / "hallo" / "net.pth")
    torch.save({k: v for k, v in plain(denoising_unet).items() if "motion_modules." in k}, motion_path)
    save_file(plain(vae), str(root / "sd-vae-ft-mse" / "diffusion_pytorch_model.safetensors"))
    (root / "sd-vae-ft-mse" / "config.json").write_text(json.dumps(dict(vae.config)))
    wav2vec.save_pretrained(str(wav_dir), safe_serialization=True)
    (wav_dir / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
        "padding_side": "right", "padding_value": 0.0, "return_attention_mask": False, "sampling_rate": RATE}))
    missing, unexpected = net.load_state_dict(torch.load(root / "hallo" / "net.pth", map_location="cpu"))
    assert not missing and not unexpected, "Fail to load correct checkpoint."
    torch.set_grad_enabled(False)
    out: dict[str, np.ndarray] = {}

    # 3a. audio: the release's AudioProcessor (no separator) and process_audio_emb
    wav = work / "speech.wav"
    wavfile.write(wav, RATE, data["audio_int16"])
    with AudioProcessor(RATE, FPS, str(wav_dir), False, None, None, str(work / "audio"), device="cpu") as processor:
        audio_emb, audio_length = processor.preprocess(str(wav), CLIP)
    audio_emb = process_audio_emb(audio_emb)
    out["audio_windows"] = audio_emb.numpy()
    out["audio_length"] = np.array(audio_length)

    # 3b. modules on their own
    audio_tokens = audio_proj(audio_emb[:CLIP][None])
    out["audio_proj"] = audio_tokens.numpy()
    face_emb = torch.from_numpy(data["face_embedding"]).reshape(1, -1)
    out["image_proj"] = image_proj(face_emb).numpy()
    out["image_proj_zeros"] = image_proj(torch.zeros_like(face_emb)).numpy()
    region = torch.from_numpy(data["face_region"])[None, :, None].repeat(1, 1, CLIP, 1, 1)  # (1, 3, F, H, W)
    out["face_locator"] = face_locator(region)[:, :, 0].numpy()

    pixels = torch.from_numpy(data["reference"]).permute(2, 0, 1).float() / 127.5 - 1
    rng = np.random.default_rng(5)
    motion = torch.from_numpy(rng.uniform(-1, 1, (MOTION_FRAMES, 3, SIZE, SIZE)).astype(np.float32))
    ref_pixels = torch.cat([pixels[None], motion])
    ref_latents = vae.encode(ref_pixels).latent_dist.mean * 0.18215
    out["reference_latents"] = ref_latents.numpy()
    contexts = torch.cat([image_proj(torch.zeros_like(face_emb)), image_proj(face_emb)])
    writer = ReferenceAttentionControl(reference_unet, do_classifier_free_guidance=True, mode="write", batch_size=1,
                                       fusion_blocks="full")
    reader = ReferenceAttentionControl(denoising_unet, do_classifier_free_guidance=True, mode="read", batch_size=1,
                                       fusion_blocks="full")
    reference_unet(ref_latents.repeat(2, 1, 1, 1), torch.zeros(()), encoder_hidden_states=contexts, return_dict=False)
    banks = [m for m in _dfs(reference_unet) if hasattr(m, "bank") and m.bank]
    out["reference_tokens_first"] = banks[0].bank[0].numpy()  # (2·(1 + M), tokens, C): all rows
    out["reference_tokens_sums"] = np.array([[b.bank[0].double().sum().item(), b.bank[0].double().abs().sum().item()]
                                             for b in banks])
    reader.update(writer)
    noisy = torch.from_numpy(rng.standard_normal((2, 4, CLIP, SIZE // 8, SIZE // 8)).astype(np.float32))
    masks = [[torch.from_numpy(data[f"mask_{kind}_{level}"])[None].repeat(2 * CLIP, 1) for level in range(4)]
             for kind in ("full", "face", "lip")]
    locator = face_locator(region)
    step_audio = torch.cat([torch.zeros_like(audio_tokens), audio_tokens])
    timestep = torch.tensor(600)
    prediction = denoising_unet(noisy, timestep, encoder_hidden_states=contexts,
                                mask_cond_fea=torch.cat([torch.zeros_like(locator), locator]), full_mask=masks[0],
                                face_mask=masks[1], lip_mask=masks[2], audio_embedding=step_audio,
                                motion_scale=[1.0, 0.8, 1.2], return_dict=False)[0]
    out["step_noisy"] = noisy.numpy()
    out["step_timestep"] = timestep.numpy()
    out["step_output"] = prediction.numpy()
    reader.clear()
    writer.clear()

    # 3c. two clips of scripts/inference.py's loop
    pipeline = FaceAnimatePipeline(vae=vae, reference_unet=net.reference_unet, denoising_unet=net.denoising_unet,
                                   face_locator=net.face_locator, scheduler=DDIMScheduler(**scheduler_kwargs),
                                   image_proj=net.imageproj)
    clip_masks = [[torch.from_numpy(data[f"mask_{kind}_{level}"])[None].repeat(CLIP, 1) for level in range(4)]
                  for kind in ("full", "face", "lip")]
    generator = torch.manual_seed(SEED)
    results, clip_latents = [], []
    capture = _capture_final_latents(pipeline, clip_latents)
    times = audio_emb.shape[0] // CLIP
    for t in range(times):
        if not results:
            ref = torch.cat([pixels[None], pixels[None].repeat(MOTION_FRAMES, 1, 1, 1)])
        else:
            previous = results[-1][0].permute(1, 0, 2, 3)[-MOTION_FRAMES:] * 2.0 - 1.0
            ref = torch.cat([pixels[None], previous])
        clip_audio = net.audioproj(audio_emb[t * CLIP:(t + 1) * CLIP][None])
        videos = pipeline(ref_image=ref[None], audio_tensor=clip_audio, face_emb=face_emb,
                          face_mask=torch.from_numpy(data["face_region"])[None], pixel_values_full_mask=clip_masks[0],
                          pixel_values_face_mask=clip_masks[1], pixel_values_lip_mask=clip_masks[2], width=SIZE,
                          height=SIZE, video_length=CLIP, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                          generator=generator, motion_scale=[1.0, 1.0, 1.0]).videos
        results.append(videos)
    capture()
    video = torch.cat(results, dim=2)[0][:, :audio_length]  # (3, frames, H, W)
    out["run_latents"] = np.stack([latent.numpy() for latent in clip_latents])
    out["run_video_every_2"] = video[:, :, ::2, ::2].numpy()
    out["run_video_sums"] = np.array([video.double().sum().item(), video.double().abs().sum().item()])

    sizes = {"unet": UNET_CONFIG, "vae": VAE_CONFIG, "wav2vec": WAV2VEC_CONFIG, "locator_widths": LOCATOR_WIDTHS,
             "face_embedding": FACE_EMBEDDING, "audio_intermediate": AUDIO_INTERMEDIATE, "audio_tokens": AUDIO_TOKENS,
             "dim": DIM, "size": SIZE, "clip": CLIP, "motion_frames": MOTION_FRAMES, "steps": STEPS,
             "guidance": GUIDANCE, "seed": SEED, "step_motion_scale": [1.0, 0.8, 1.2]}
    meta = {"release": "fudan-generative-vision/hallo", "commit": commit, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "torch": torch.__version__, "stubbed": stubbed}
    keys = {k: list(v.shape) for k, v in net_state.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, sizes=json.dumps(sizes), meta=json.dumps(meta), net_keys=json.dumps(keys),
                        **data, **out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB) from {commit[:12]}")


def _dfs(module):
    yield module
    for child in module.children():
        yield from _dfs(child)


def _capture_final_latents(pipeline, sink):
    """Record each clip's final latents (the argument of ``decode_latents``)."""
    original = pipeline.decode_latents

    def decode(latents):
        sink.append(latents.detach().clone())
        return original(latents)

    pipeline.decode_latents = decode
    return lambda: setattr(pipeline, "decode_latents", original)


if __name__ == "__main__":
    main()
