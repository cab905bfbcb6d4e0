"""Talking-head videos → one cache file per video, what training reads (no video is decoded while training).

Per video, with our analyser (``motion.tracking.analyse``: the followed face in every frame, shots, MediaPipe's
478 landmarks):

* frames resampled to ``data.fps`` (nearest source frame), and the longest run of frames where the followed face
  is seen kept (at least one clip and its motion frames);
* one fixed square crop for the run (``face.crop.face_crop`` around the median landmarks, axis-aligned, so head
  motion stays in the picture, as in Hallo's fixed-box crops), ``data.size`` pixels;
* the face-region picture and the full/face/lip masks from the median landmarks (``masks.region_conditions``, the
  same function the engine uses at inference on the reference picture);
* head speed per frame: the change of (yaw, pitch, roll) between neighbouring frames, in degrees per second
  (EMO's speed buckets are made from it at training time, with ``data.speed_edges``);
* the VAE's latent distribution per frame (mean and standard deviation, fp16; training samples from it, as Hallo's
  ``latent_dist.sample()``), and wav2vec2's hidden states of every layer per frame (``audio.layer_features``, fp16);
* the face embedding of the median frame (``identity.face_embedding``; zeros without the recognition network).

Written atomically (a temporary file renamed into place), one file per video, so an interrupted run resumes at
the next video; a file made with other preprocessing settings is made again. With several processes, process
``r`` of ``n`` takes every ``n``-th video.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from enliven.engines.audio_diffusion.training.config import digest
from enliven.errors import EnlivenError

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
VERSION = 1


def list_videos(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise EnlivenError(f"no such folder of videos: {folder}")
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not videos:
        raise EnlivenError(f"no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) in {folder}")
    return videos


def settings(config: dict) -> dict:
    """What a cache file depends on (a change makes it again)."""
    data = config["data"]
    return {"version": VERSION, "size": data["size"], "fps": data["fps"], "crop_scale": data["crop_scale"],
            "init": {k: config["init"][k] for k in ("hallo", "vae", "wav2vec", "face_analysis")}}


def cache_path(config: dict, video: Path) -> Path:
    return Path(config["data"]["cache"]) / f"{video.stem}.safetensors"


def is_done(path: Path, wanted: str) -> bool:
    if not path.is_file():
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("settings") == wanted
    except Exception:  # noqa: BLE001 - a damaged file is made again
        return False


def head_speed(landmarks: np.ndarray, fps: float) -> np.ndarray:
    """(T,) degrees per second: the norm of the (yaw, pitch, roll) change, central differences inside."""
    from enliven.face.geometry import fit_pose

    angles = np.array([fit_pose(points).angles() for points in landmarks], np.float64)
    if len(angles) < 2:
        return np.zeros(len(angles), np.float32)
    change = np.gradient(angles, axis=0)  # per frame
    return (np.linalg.norm(change, axis=1) * fps).astype(np.float32)


def _longest_run(seen: np.ndarray) -> tuple[int, int]:
    best, start = (0, 0), None
    for i, ok in enumerate(list(seen) + [False]):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best


def _read_frames(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    from enliven.io.video import VideoReader

    needed, out = set(wanted), {}
    last = max(wanted)
    for t, image in enumerate(VideoReader(path)):
        if t in needed:
            out[t] = image
        if t >= last:
            break
    return out


@torch.no_grad()
def preprocess_video(video: Path, out: Path, modules: dict, config: dict, wanted: str) -> str:
    """Write ``out`` for ``video``; returns a one-line summary."""
    import cv2
    from safetensors.torch import save_file

    from enliven.engines.audio_diffusion import audio as audio_features
    from enliven.engines.audio_diffusion.identity import face_embedding
    from enliven.engines.audio_diffusion.masks import region_conditions
    from enliven.engines.audio_diffusion.pipeline import LATENT_SCALE
    from enliven.face.crop import face_crop
    from enliven.io.files import atomic_file
    from enliven.motion.audio import read_audio
    from enliven.motion.tracking import TrackOptions, analyse

    data = config["data"]
    fps, size = float(data["fps"]), int(data["size"])
    need = data["clip_frames"] + data["motion_frames"] + 1
    track = analyse(video, TrackOptions(driver_face="largest", reference="first"))
    try:
        count = int(np.floor(track.frames * fps / track.fps + 1e-6))
        source_index = [min(int(round(k * track.fps / fps)), track.frames - 1) for k in range(count)]
        seen = np.array([track.followed[i] >= 0 for i in source_index])
        start, end = _longest_run(seen)
        if end - start < need:
            return f"skipped {video.name}: the face is seen in {end - start} frames in a row, {need} needed"
        index = source_index[start:end]
        landmarks = np.stack([track.landmarks(i) for i in index]).astype(np.float64)
    finally:
        track.store.close()
    median = np.median(landmarks, axis=0)
    crop = face_crop(median, size, data["crop_scale"], rotate=False)
    frames_of = _read_frames(video, index)
    crops = np.stack([cv2.warpAffine(frames_of[i], crop.o2c, (size, size), flags=cv2.INTER_AREA,
                                     borderMode=cv2.BORDER_REPLICATE) for i in index])
    in_crop = landmarks[:, :, :2] @ crop.o2c[:, :2].T + crop.o2c[:, 2]
    reference_landmarks = np.median(in_crop, axis=0)
    region, masks = region_conditions(reference_landmarks, size)
    speed = head_speed(landmarks, fps)

    vae = modules["vae"]
    device = next(vae.parameters()).device
    means, stds = [], []
    for chunk in np.array_split(crops, max(1, len(crops) // 8)):
        pixels = torch.from_numpy(chunk).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(device)
        dist = vae.encode(pixels).latent_dist
        means.append((dist.mean * LATENT_SCALE).half().cpu())
        stds.append((dist.std * LATENT_SCALE).half().cpu())

    samples = [block for block in read_audio(video, audio_features.RATE)]
    samples = np.concatenate(samples) if samples else np.zeros(0, np.float32)
    if samples.size == 0:
        return f"skipped {video.name}: no audio"
    features, _ = audio_features.layer_features(modules["audio_encoder"], samples, clip=0, fps=int(fps))
    frames_total = features.shape[0]
    audio_index = torch.tensor([min(start + k, frames_total - 1) for k in range(end - start)])
    audio = features[audio_index].half()

    width = modules["image_proj"].proj.in_features
    middle = len(crops) // 2
    root = config["init"]["face_analysis"] or config["init"]["hallo"] or None
    if root and (Path(root) / "pretrained_models").is_dir():
        root = str(Path(root) / "pretrained_models")
    embedding = face_embedding(crops[middle], in_crop[middle], Path(root) if root else None)
    if embedding is None or embedding.shape[0] != width:
        embedding = np.zeros(width, np.float32)

    tensors = {
        "latent_mean": torch.cat(means).contiguous(), "latent_std": torch.cat(stds).contiguous(),
        "audio": audio.contiguous(), "speed": torch.from_numpy(speed), "embedding": torch.from_numpy(embedding),
        "region": torch.from_numpy((region[0] * 255).round().astype(np.uint8)),
    }
    for level, parts in enumerate(masks):
        for name, mask in zip(("full", "face", "lip"), parts):
            tensors[f"mask.{level}.{name}"] = torch.from_numpy(np.ascontiguousarray(mask, np.float32))
    metadata = {"settings": wanted, "source": video.name, "fps": str(fps),
                "frames": str(len(index)), "info": json.dumps({"source_frames": [index[0], index[-1]]})}
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return f"{video.name}: {len(index)} frames, head speed median {np.median(speed):.1f}°/s"


def preprocess(config: dict, modules: dict, rank: int = 0, world: int = 1, say=print) -> list[Path]:
    """Make every missing cache file (this process's share); returns every video's cache path."""
    videos = list_videos(config["data"]["videos"])
    wanted = digest(settings(config))
    paths = []
    for i, video in enumerate(videos):
        out = cache_path(config, video)
        paths.append(out)
        if i % world != rank or is_done(out, wanted):
            continue
        say(preprocess_video(video, out, modules, config, wanted))
    return paths
