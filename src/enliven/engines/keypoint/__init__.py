"""The ``keypoint`` engine: LivePortrait (implicit 3D keypoints, warping + SPADE decoder, stitching and
eye/lip retargeting), loading the official checkpoints unchanged."""

from enliven.engines.keypoint.checkpoints import convert_to_safetensors, load_config, load_official, save_official
from enliven.engines.keypoint.config import LivePortraitConfig, build_modules, random_modules, tiny_config
from enliven.engines.keypoint.onnx_export import export_onnx

__all__ = [
    "LivePortraitConfig",
    "build_modules",
    "convert_to_safetensors",
    "export_onnx",
    "load_config",
    "load_official",
    "random_modules",
    "save_official",
    "tiny_config",
]

from enliven.engines.keypoint import engine as _engine  # noqa: F401  (registers "keypoint")
