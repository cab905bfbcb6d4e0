"""Follow-Your-Emoji (``landmark-diffusion``): expression-aware landmarks guide a Stable Diffusion video model.

What is here:

* ``drawing``: the landmark pictures exactly as the release draws them; ``alignment``: its motion alignment on
  our landmark model.
* ``load_official(dir)``: the modules from the official ``pretrained_models/`` layout (sizes from the folder),
  every tensor used, no missing or unexpected keys (``checkpoints``).
* ``generate(models, reference_image, landmark_images, ...)``: sampling as the release does for a clip that
  fits in one window, and past it: overlapping blended windows or keyframes first (``pipeline``).
  Parity with the release's own code (``VideoPipeline``, its guider, ReferenceNet and UNet, run by
  ``tools/parity/follow_your_emoji.py`` at a tiny random configuration): ``tests/engines/
  test_landmark_diffusion_release.py``; ``python tools/parity/compare.py landmark-diffusion`` prints the figures.
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
