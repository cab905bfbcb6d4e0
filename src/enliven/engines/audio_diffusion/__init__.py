"""EMO's architecture on Hallo's released weights (``audio-diffusion``): speech drives a Stable Diffusion video model.

What is here:

* ``model``: the networks (reference net, denoiser with audio and motion modules, face locator, image and audio
  projections, optional speed layers), on diffusers' UNet and the shared diffusion core.
* ``load_official(dir)``: the modules from Hallo's ``pretrained_models/`` layout, strictly (``checkpoints``).
* ``audio``: wav2vec2 features of every layer per video frame, in ±2-frame windows.
* ``masks``: the face-region picture and the full/face/lip masks from our landmarks.
* ``generate(models, conditions, audio_windows, ...)``: Hallo's sampling, clip after clip chained by motion frames
  (``pipeline``); parity with the release's own code: ``tools/parity/hallo.py``, ``python tools/parity/compare.py
  audio-diffusion``.
* ``engine``: ``--engine audio-diffusion`` with ``--audio`` or ``--text``.
"""

from enliven.engines.lazy import lazy_exports

# Imported on first use: reading this engine's descriptor loads none of its heavy modules.
__getattr__, __all__ = lazy_exports(__name__, {
    "Conditions": "pipeline",
    "generate": "pipeline",
    "load_official": "checkpoints",
    "save_official": "checkpoints",
})
