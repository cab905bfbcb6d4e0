"""The sizes and inputs of the HunyuanPortrait parity fixtures, shared by ``hunyuan_portrait.py`` (run in the
release's environment) and the tests. Pure NumPy: inputs come from seeded PCG64 streams, stable across releases.
"""

from __future__ import annotations

import numpy as np

# A reduced configuration the release's own classes can be built at (its IMAdapter fixes the cross-attention
# at 256 wide with 8 heads; its ResNets are fixed, so they stay at full size and get a smaller picture).
FIXTURE_SIZES = {
    "dino": {"embed_dim": 32, "num_heads": 2, "visual_adapter_dim": 32},
    "motion_proj": {
        "input_dim": 512,
        "output_dim": 26,
        "num_queries": 8,
        "intensity_embed_dim": 16,
        "width": 16,
        "heads": 2,
    },
    "pose_guider": {"channels": 8, "widths": [4, 8, 8, 16]},
}
FIXTURE_BUCKETS = (37, 91)  # (head, expression) ids fed to the refiner
RESNET_SIDE = 64  # the ResNets are fully convolutional up to their average pool: a small picture is enough

# The sampling runs' UNet: SVD-xt's config at small widths.
SAMPLING_UNET = dict(
    sample_size=8, in_channels=8, out_channels=4,
    down_block_types=["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
    up_block_types=["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
    block_out_channels=[32, 64, 64, 64], addition_time_embed_dim=8, projection_class_embeddings_input_dim=24,
    layers_per_block=2, cross_attention_dim=32, transformer_layers_per_block=1, num_attention_heads=[2, 2, 2, 2],
    num_frames=25,
)
# SVD's temporal-decoder VAE at small widths (the decoded-frames run).
SAMPLING_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4, block_out_channels=[32, 32, 32, 32],
    layers_per_block=1, latent_channels=4, sample_size=64, scaling_factor=0.18215, force_upcast=True,
)

# Three runs of the release's HunyuanLongSVDPipeline loop. "windows": circular shifted windows, ramped pads and
# scales, per-frame pose maps. "options": every option of the release's config at a value other than its
# default (i2i_noise_strength, motion_bucket_id, ip_motion_scale, fps, noise_aug_strength, decode_chunk_size,
# windows), decoded. "stand_in": the loop alone (schedule, guidance, windows, time ids) around an elementwise
# stand-in for the UNet (``stand_in_unet``), so nothing in it rounds differently from one CPU to another and it
# is held to 1e-6: a change of 1e-4 in a guidance scale, which the real UNet's runs cannot tell from rounding at
# their 1e-3, is 100 times that.
RUNS = {
    "windows": dict(frames=12, steps=3, window=8, overlap=3, shift_offset=3, pad=4,
                    guidance=((1.5, 3.0), (2.0, 2.5)), i2i_noise_strength=1.0, motion_bucket_id=0,
                    ip_motion_scale=1.0, fps=12.5, noise_aug_strength=0.0, decode_chunk_size=None, seed=7),
    "options": dict(frames=9, steps=6, window=6, overlap=2, shift_offset=2, pad=3,
                    guidance=((1.2, 2.2), (1.8, 2.6)), i2i_noise_strength=0.5, motion_bucket_id=5,
                    ip_motion_scale=0.7, fps=10.0, noise_aug_strength=0.1, decode_chunk_size=4, seed=11),
    "stand_in": dict(frames=10, steps=5, window=6, overlap=2, shift_offset=2, pad=3,
                     guidance=((1.5, 3.0), (2.0, 2.5)), i2i_noise_strength=1.0, motion_bucket_id=5,
                     ip_motion_scale=1.0, fps=10.0, noise_aug_strength=0.0, decode_chunk_size=None, seed=13,
                     stand_in=True),
}


def stand_in_unet(sample, timestep, encoder_hidden_states, pose_cond_fea=None, added_time_ids=None,
                  return_dict=True):
    """An elementwise stand-in for the UNet's forward, (B, F, 8, h, w) → ((B, F, 4, h, w),): every input the
    loop hands over reaches the output (the noisy and reference latents, the timestep, one element of each
    frame's image and motion tokens, each time id with its own weight, so a swap shows), but no sum or matrix
    product does, so the release's run and ours round alike on any CPU. The pose features are not used (the
    real UNet's runs check them)."""
    batch, frames = sample.shape[:2]
    image, motions = encoder_hidden_states
    image = image[:, 0, 0].reshape(batch, frames, 1, 1, 1)
    motion = motions[0][:, 0, 0].reshape(batch, frames, 1, 1, 1)
    ids = added_time_ids.reshape(batch, 1, 3, 1, 1)
    out = (0.5 * sample[:, :, :4] - 0.3 * sample[:, :, 4:] + image + 2 * motion + 0.01 * timestep
           + 0.001 * ids[:, :, 0:1] + 0.01 * ids[:, :, 1:2] + 0.1 * ids[:, :, 2:3])
    return (out,)


def fixture_inputs() -> dict[str, np.ndarray]:
    """The modules' inputs (float32)."""
    rng = np.random.default_rng(2025)
    identity = rng.standard_normal((1, 1, 512))
    return {
        "picture": rng.standard_normal((1, 3, 224, 224)).astype(np.float32),
        "identity": (identity / np.linalg.norm(identity)).astype(np.float32),
        "face_crops": rng.random((2, 3, RESNET_SIDE, RESNET_SIDE)).astype(np.float32),
        "pose_crops": rng.random((2, 3, RESNET_SIDE, RESNET_SIDE)).astype(np.float32),
        "pose_pictures": rng.random((1, 3, 2, 32, 32)).astype(np.float32),
    }


def bucket_tracks() -> np.ndarray:
    """Four random 25-frame tracks of 5 points (around a face of plausible size), for the motion buckets."""
    rng = np.random.default_rng(31)
    base = np.array([[200.0, 220], [280, 220], [240, 260], [210, 310], [270, 310]])
    moves = [0.5, 2.0, 6.0, 15.0]
    return np.stack([base + rng.normal(0, m, (25, 5, 2)) + rng.normal(0, m, (25, 1, 2)) for m in moves])


def sampling_inputs(run: str) -> dict[str, np.ndarray]:
    """A run's conditions as the UNet takes them: the reference's latent mean (unscaled), image tokens after
    ``image_proj``, the driving frames' motion tokens, per-frame pose features, the initial noise (pads
    included), and for the decoded run a reference picture (64×64×3 uint8)."""
    spec = RUNS[run]
    rng = np.random.default_rng(spec["seed"])
    frames, pad = spec["frames"], spec["pad"]
    arrays = dict(
        ref=rng.standard_normal((1, 4, 8, 8)), image=rng.standard_normal((1, 64, 32)),
        motion=rng.standard_normal((frames, 64, 32)), pose=0.5 * rng.standard_normal((frames, 32, 8, 8)),
        noise=rng.standard_normal((1, frames + 2 * pad, 4, 8, 8)),
    )
    out = {k: v.astype(np.float32) for k, v in arrays.items()}
    if spec["decode_chunk_size"]:  # a uint8 reference picture, for the VAE's encoding
        yy, xx = np.mgrid[0:64, 0:64] / 64
        picture = np.stack([0.5 + 0.4 * np.sin(4 * xx + c) * np.cos(3 * yy - c) for c in range(3)], axis=-1)
        out["picture"] = np.clip(255 * picture + rng.normal(0, 10, picture.shape), 0, 255).astype(np.uint8)
    return out


PREPROCESS_SIDE = 160  # the head-pose crop's side before Resize(256) (the release's is 512: smaller, to stay small)
POSE_MAP_SIDE = 64  # the black pose picture's side (the reference crop's)


def preprocess_inputs() -> dict[str, np.ndarray]:
    """A driving frame (110×120×3 uint8, a smooth pattern: a one-pixel shift changes it by several levels), a face
    box (x0, y0, x1, y1) near its left edge and 5 points inside it, so that the expression crop reaches past the
    frame (black there)."""
    rng = np.random.default_rng(53)
    yy, xx = np.mgrid[0:110, 0:120] / 100
    picture = np.stack([0.5 + 0.4 * np.sin(9 * xx + c) * np.cos(7 * yy - 2 * c) for c in range(3)], axis=-1)
    frame = np.clip(255 * picture, 0, 255).astype(np.uint8)
    points = np.array([[18.0, 44], [42, 42], [30, 60], [20, 84], [44, 82]]) + rng.normal(0, 0.7, (5, 2))
    return {"frame": frame, "points": points.astype(np.float32), "box": np.array([4.0, 10, 60, 100], np.float32)}


def delta_code(picture: np.ndarray) -> np.ndarray:
    """An H×W×C uint8 picture as its differences along each row (mod 256): smooth pictures compress ten times
    better so. ``delta_decode`` gives it back exactly."""
    return np.diff(picture.astype(np.int16), axis=1, prepend=0).astype(np.uint8)


def delta_decode(code: np.ndarray) -> np.ndarray:
    return np.cumsum(code, axis=1, dtype=np.uint8)


DINO_PICTURE_SIDE = 288  # a square reference larger than DINO's 224² (the release's is 512²): a downsampling resize
DINO_GRID = 4  # the fixture keeps every 4th row and column of the 224² result


def dino_picture_input() -> np.ndarray:
    """A square reference picture (288×288×3 uint8): smooth stripes plus noise, so that both the resize's
    filter and its alignment show in the result."""
    rng = np.random.default_rng(71)
    yy, xx = np.mgrid[0:DINO_PICTURE_SIDE, 0:DINO_PICTURE_SIDE] / DINO_PICTURE_SIDE
    picture = np.stack([0.5 + 0.35 * np.sin(23 * xx + 5 * c) * np.cos(17 * yy + c) for c in range(3)], axis=-1)
    return np.clip(255 * picture + rng.normal(0, 12, picture.shape), 0, 255).astype(np.uint8)
