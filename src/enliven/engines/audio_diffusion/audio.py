"""Speech → the audio tokens the denoiser attends to: wav2vec2 features of every layer, per video frame.

As Hallo's ``AudioProcessor.preprocess`` and ``process_audio_emb`` (scripts/inference.py) do:

1. 16 kHz mono samples, normalised to zero mean and unit variance over the whole clip (transformers'
   ``Wav2Vec2FeatureExtractor`` with ``do_normalize``: ``(x - mean) / sqrt(var + 1e-7)``);
2. ``frames = ceil(seconds × fps)``; the samples are padded with zeros (after normalising) so the frame count is a
   whole number of clips (``clip`` frames; ``fps``/16000 samples per frame);
3. wav2vec2's convolutional features, linearly interpolated (``align_corners=True``) to one per video frame,
   then its feature projection and transformer; the hidden states of every transformer layer (not the
   projection's output) are stacked: (frames, layers, C);
4. each frame gets a window of ±2 frames (clamped at the ends of the padded sequence): (frames, 5, layers, C).

Differences kept: the release needs a GPU for this step and runs a vocal separator (Kim_Vocal_2, MDX-Net, through
``audio-separator``) first; we run on the CPU in fp32 and take the audio as given (a clean voice recording is what
the separator would return; separate music from speech beforehand if needed).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

RATE = 16000
FPS = 25
RADIUS = 2
SEGMENT = 1500  # frames wav2vec2 reads at once (60 s at 25 fps)
OVERLAP = 50  # frames of context on each side of a segment past the first


def normalise(samples: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance (transformers' ``Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm``)."""
    samples = np.asarray(samples, np.float32)
    return (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)


def frame_count(samples: int, fps: int = FPS, rate: int = RATE) -> int:
    """Video frames for ``samples`` samples (Hallo's ``ceil(len / rate × fps)``)."""
    return math.ceil(samples / rate * fps)


@torch.no_grad()
def layer_features(encoder, samples: np.ndarray, clip: int = 16, fps: int = FPS, rate: int = RATE,
                   segment: int = SEGMENT, overlap: int = OVERLAP) -> tuple[torch.Tensor, int]:
    """(frames padded to whole clips, layers, C) float32 features of ``samples`` (16 kHz mono) and the number of
    frames the audio itself lasts.

    Up to ``segment`` frames (60 s at 25 fps) the whole audio goes through wav2vec2 at once, as the release does.
    Longer audio would need memory growing with the square of its length in self-attention (the release runs
    out of it), so it is cut into segments of ``segment`` frames that overlap by ``overlap`` frames on each side;
    each segment keeps the frames away from its cut ends, which see ±``overlap`` frames (±2 s) of context."""
    values = torch.from_numpy(normalise(samples))
    frames = frame_count(len(values), fps, rate)
    length = frames
    if clip > 0 and frames % clip:
        values = F.pad(values, (0, (clip - frames % clip) * (rate // fps)))
        frames += clip - frames % clip
    if frames <= segment:
        return _features(encoder, values, frames), length
    per_frame = rate // fps
    values = F.pad(values, (0, max(frames * per_frame - len(values), 0)))
    parts = []
    for start in range(0, frames, segment):
        end = min(start + segment, frames)
        low, high = max(start - overlap, 0), min(end + overlap, frames)
        chunk = _features(encoder, values[low * per_frame:high * per_frame], high - low)
        parts.append(chunk[start - low:end - low])
    return torch.cat(parts), length


def _features(encoder, values: torch.Tensor, frames: int) -> torch.Tensor:
    device = next(encoder.parameters()).device
    conv = encoder.feature_extractor(values[None].to(device, torch.float32)).transpose(1, 2)  # (1, T, 512)
    conv = F.interpolate(conv.transpose(1, 2), size=frames, mode="linear", align_corners=True).transpose(1, 2)
    hidden, _ = encoder.feature_projection(conv)
    features = torch.stack(layer_outputs(encoder.encoder, hidden), dim=1)[0]  # (layers, frames, C)
    return features.transpose(0, 1).float().cpu()


def layer_outputs(encoder, hidden: torch.Tensor) -> list[torch.Tensor]:
    """What transformers' ``Wav2Vec2Encoder`` returns as ``hidden_states[1:]`` (every layer's output; for the
    stable-layer-norm variant the last one after the final norm), in eval mode without a mask: computed here
    layer by layer, because transformers 5 collects hidden states only at the top-level model."""
    hidden = hidden + encoder.pos_conv_embed(hidden)
    stable = encoder.config.do_stable_layer_norm if hasattr(encoder, "config") else False
    if not stable:
        hidden = encoder.layer_norm(hidden)
    outputs = []
    for layer in encoder.layers:
        out = layer(hidden)
        hidden = out[0] if isinstance(out, tuple) else out
        outputs.append(hidden)
    if stable:
        outputs[-1] = encoder.layer_norm(outputs[-1])
    return outputs


def windows(features: torch.Tensor, radius: int = RADIUS, start: int = 0, stop: int | None = None) -> torch.Tensor:
    """(frames, ...) → (frames, 2·radius + 1, ...): each frame with its neighbours, clamped at both ends of the
    whole sequence; ``start``/``stop``: only those frames' windows (a clip's, without building all of them)."""
    count = features.shape[0]
    stop = count if stop is None else stop
    index = torch.arange(start, stop)[:, None] + torch.arange(-radius, radius + 1)[None]
    return features[index.clamp(0, count - 1)]
