"""The ``keypoint`` engine: LivePortrait (implicit 3D keypoints, warping + SPADE decoder, stitching and
eye/lip retargeting), loading the official checkpoints unchanged."""


# Imported on first use (PEP 562): reading this engine's descriptor loads none of its heavy modules.
_EXPORTS = {
    "LivePortraitConfig": "config",
    "build_modules": "config",
    "convert_to_safetensors": "checkpoints",
    "export_onnx": "onnx_export",
    "load_config": "checkpoints",
    "load_official": "checkpoints",
    "random_modules": "config",
    "save_official": "checkpoints",
    "tiny_config": "config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
