"""Where the keypoint engine's networks run: PyTorch (default) or onnxruntime (exported graphs).

Both offer the same few calls, so the engine's math does not care which one it talks to.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from enliven.engines.cpu_memory import keep_freed_memory
from enliven.engines.keypoint.accelerate import fold_for_inference, optimise_for_cpu


class TorchBackend:
    def __init__(self, modules: dict[str, nn.Module], fold: bool = True):
        # Folding spectral norm and BatchNorm is exact; on a CPU the decoder and the warping module also
        # run in fewer multiplications (GPUs have their own fast convolutions).
        on_cpu = next(modules["spade_generator"].parameters()).device.type == "cpu"
        if not fold:
            self.modules = modules
        elif on_cpu:
            self.modules = optimise_for_cpu(modules)
            # after the rewrite, whose float64 temporaries then go back to the system; from here on the
            # decoder's ~3.5 GB of per-frame tensors reuse their pages instead of faulting them in anew
            keep_freed_memory()
        else:
            self.modules = fold_for_inference(modules)

    def appearance(self, image: torch.Tensor) -> torch.Tensor:
        return self.modules["appearance_feature_extractor"](image)

    def motion(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.modules["motion_extractor"](image)

    def source_cache(self, feature: torch.Tensor, x_s: torch.Tensor) -> dict | None:
        return self.modules["warping_module"].prepare_source(feature, x_s)

    def warp_decode(self, feature: torch.Tensor, x_d: torch.Tensor, x_s: torch.Tensor,
                    cache: dict | None) -> torch.Tensor:
        warped = self.modules["warping_module"](feature, x_d, x_s, cache)
        return self.modules["spade_generator"](warped["out"])

    def mlp(self, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        return self.modules[name]


class OnnxBackend:
    def __init__(self, onnx_dir, threads: int | None = None):
        from enliven.engines.keypoint.onnx_export import OnnxModules

        self.graphs = OnnxModules(onnx_dir, threads)

    def appearance(self, image: torch.Tensor) -> torch.Tensor:
        return self.graphs.appearance_feature_extractor(image)

    def motion(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.graphs.motion_extractor(image)

    def source_cache(self, feature: torch.Tensor, x_s: torch.Tensor) -> dict | None:
        return None  # the exported warp graph recomputes the source side itself

    def warp_decode(self, feature: torch.Tensor, x_d: torch.Tensor, x_s: torch.Tensor,
                    cache: dict | None) -> torch.Tensor:
        return self.graphs.warp_decode(feature, x_d, x_s)

    def mlp(self, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        return partial(self.graphs.mlp, name)
