"""The ``keypoint`` engine: LivePortrait (implicit 3D keypoints, warping + SPADE decoder, stitching and
eye/lip retargeting), loading the official checkpoints unchanged."""

from enliven.engines.lazy import lazy_exports

# Imported on first use: reading this engine's descriptor loads none of its heavy modules.
__getattr__, __all__ = lazy_exports(__name__, {
    "LivePortraitConfig": "config",
    "build_modules": "config",
    "convert_to_safetensors": "checkpoints",
    "export_onnx": "onnx_export",
    "load_config": "checkpoints",
    "load_official": "checkpoints",
    "random_modules": "config",
    "save_official": "checkpoints",
    "tiny_config": "config",
})
