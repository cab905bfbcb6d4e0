"""HunyuanPortrait (``implicit-diffusion``): implicit appearance and motion conditions on Stable Video Diffusion.

What is here:

* ``appearance``: DINOv2 ViT-L/14 with registers and the release's ID-aware adapters (ArcFace identity), the
  261 → 64 image projector; ``identity``: ArcFace from ``arcface.onnx`` on a crop aligned from 5 of our landmarks.
* ``motion``: the expression and head-pose encoders, the intensity-aware refiner, the pose guider, the driving
  crops and intensity buckets.
* ``unet``: SVD's spatio-temporal UNet (diffusers') with the release's decoupled motion attention added through
  attention processors (``build_unet``).
* ``load_official(dir)``: the modules from the official ``pretrained_weights/`` layout, every tensor used, no
  missing or unexpected keys (``checkpoints``); ``tiny``: random test weights in that layout.
* ``sample``: the release's windowed three-branch Euler sampling from encoded conditions (``sampling``), and
  ``generate`` / ``generate_stream`` from pictures (``pipeline``), a long clip in cross-faded segments of 250
  frames, each sampled as the release samples a clip (memory bounded by the segment). Parity, against the
  release's own UNet and ``HunyuanLongSVDPipeline`` loop (diffusers 0.29, CPU fp32) on the same tiny random
  weights and inputs: the UNet's output and a whole sampling run (windows, pads, ramped guidance) are
  identical (difference 0.0), the decoded frames within 7e-7.
* ``engine``: ``--engine implicit-diffusion``, a windowed engine (``engines.base.WindowedEngine``) on the shared
  pipeline: the driver's crops and landmarks, ``generate_stream``, paste-back.
"""

from enliven.engines.lazy import lazy_exports

# Imported on first use: reading this engine's descriptor loads none of its heavy modules.
__getattr__, __all__ = lazy_exports(__name__, {
    "DrivingFrame": "pipeline",
    "LoadReport": "checkpoints",
    "build_unet": "unet",
    "convert_to_safetensors": "checkpoints",
    "generate": "pipeline",
    "generate_stream": "pipeline",
    "load_official": "checkpoints",
    "sample": "sampling",
})
