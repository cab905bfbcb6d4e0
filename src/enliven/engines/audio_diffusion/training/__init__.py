"""Training the ``audio-diffusion`` networks: ``enliven train audio-diffusion CONFIG`` (see the README's training
section).

* ``config``: the TOML file over ``default.toml`` (every hyper-parameter, documented);
* ``preprocess``: videos → per-video caches (crops' VAE latents, wav2vec2 features, masks, head speed), resumable;
* ``data``: pictures and clips drawn from the caches, keyed by step (resumes repeat the uninterrupted run);
* ``net``: the trained networks as one module, the noise schedule, min-SNR loss, what each stage trains;
* ``train``: processes (``torchrun``, DDP), the stages, mixed precision, checkpointing, logs;
* ``state``: safetensors checkpoints and the weights folder ``--engine audio-diffusion --weights`` loads;
* ``events``: TensorBoard event files written without protobuf.
"""

from __future__ import annotations


def main(config_path, resume: str = "latest", preprocess_only: bool = False, say=print) -> dict:
    """Load ``config_path`` and run it (what the CLI calls)."""
    from enliven.engines.audio_diffusion.training.config import load_config
    from enliven.engines.audio_diffusion.training.train import run_training

    return run_training(load_config(config_path), resume=resume, preprocess_only=preprocess_only, say=say)
