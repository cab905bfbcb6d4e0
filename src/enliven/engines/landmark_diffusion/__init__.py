"""Follow-Your-Emoji (``landmark-diffusion``): expression-aware landmarks guide a Stable Diffusion video model.

What is here:

* ``drawing``: the landmark pictures exactly as the release draws them; ``alignment``: its motion alignment on
  our landmark model.
* ``load_official(dir)``: the modules from the official ``pretrained_models/`` layout (sizes from the folder),
  every tensor used, no missing or unexpected keys (``checkpoints``).
* ``generate(models, reference_image, landmark_images, ...)``: sampling as the release does for a clip that
  fits in one window, and past it: overlapping blended windows or keyframes first (``pipeline``).
  Parity, measured against the release's own ``VideoPipeline`` (its vendored diffusers 0.24, transformers
  4.46, CPU fp32) on the same tiny random weights and initial latents, 64×64, 4 frames, 3 steps: max
  difference 7e-6 with guidance 3.5, 2.5e-6 without (the issue asks ≤ 1e-4).
* ``generate_stream``: the same sampling for a stream of landmark pictures, one progressive segment at a time.
* ``engine``: ``--engine landmark-diffusion``, a windowed engine (``engines.base.WindowedEngine``) on the shared
  pipeline: crop, landmark pictures of the aligned targets, ``generate_stream``, paste-back.
"""

from enliven.engines.lazy import lazy_exports

# Imported on first use: reading this engine's descriptor loads none of its heavy modules.
__getattr__, __all__ = lazy_exports(__name__, {
    "Context": "pipeline",
    "LoadReport": "checkpoints",
    "convert_to_safetensors": "checkpoints",
    "generate": "pipeline",
    "generate_stream": "pipeline",
    "load_official": "checkpoints",
})
