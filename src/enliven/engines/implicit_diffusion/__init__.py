"""HunyuanPortrait (``implicit-diffusion``): implicit appearance and motion conditions on Stable Video Diffusion.

What is here:

* ``appearance``: DINOv2 ViT-L/14 with registers and the release's ID-aware adapters (ArcFace identity), the
  261 → 64 image projector; ``identity``: ArcFace from ``arcface.onnx`` on a crop aligned from 5 of our landmarks.
* ``implicit_motion``: the expression and head-pose encoders, the intensity-aware refiner, the pose guider, the driving
  crops and intensity buckets.
* ``svd_unet``: SVD's spatio-temporal UNet (diffusers') with the release's decoupled motion attention added through
  attention processors (``build_unet``).
* ``load_official(dir)``: the modules from the official ``pretrained_weights/`` layout, every tensor used, no
  missing or unexpected keys (``checkpoints``); ``tiny``: random test weights in that layout.
* ``sample``: the release's windowed three-branch Euler sampling from encoded conditions (``svd_sampling``), and
  ``generate`` / ``generate_stream`` from pictures (``pipeline``), a long clip in cross-faded segments of 250
  frames, each sampled as the release samples a clip (memory bounded by the segment). Parity with the
  release's own code (its modules, UNet, scheduler and ``HunyuanLongSVDPipeline`` loop, run by
  ``tools/parity/hunyuan_portrait.py`` at tiny random configurations): ``tests/engines/
  test_implicit_diffusion_release.py``; ``python tools/parity/compare.py implicit-diffusion`` prints the figures.
* ``engine``: ``--engine implicit-diffusion``, a windowed engine (``engines.base.WindowedEngine``) on the shared
  pipeline: the driver's crops and landmarks, ``generate_stream``, paste-back.
"""

from enliven.engines.lazy import lazy_exports

# Imported on first use: reading this engine's descriptor loads none of its heavy modules.
__getattr__, __all__ = lazy_exports(__name__, {
    "DrivingFrame": "pipeline",
    "LoadReport": "checkpoints",
    "build_unet": "svd_unet",
    "convert_to_safetensors": "checkpoints",
    "generate": "pipeline",
    "generate_stream": "pipeline",
    "load_official": "checkpoints",
    "sample": "svd_sampling",
})
