"""Export the keypoint engine to ONNX and run it with onnxruntime.

Files written (opset 20, whose GridSample takes the 5-D volumes the warping module samples):

    appearance_feature_extractor.onnx  image (1,3,S,S) → feature_3d
    motion_extractor.onnx              image → kp, exp, pitch, yaw, roll, t, scale (raw head outputs)
    warping_spade.onnx                 feature_3d, kp_driving, kp_source → image (1,3,2S,2S)  (W and G in one graph)
    stitching.onnx, retarget_eye.onnx, retarget_lip.onnx   the MLPs

``OnnxModules`` loads such a folder and offers the same calls as the PyTorch modules, so the engine's
math runs unchanged on either backend.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from enliven.engines.keypoint.config import LivePortraitConfig
from enliven.engines.keypoint.networks.motion_extractor import HEADS
from enliven.errors import EnlivenError
from enliven.io.files import atomic_output

OPSET = 20
MLPS = ("stitching", "retarget_eye", "retarget_lip")


class _WarpDecode(nn.Module):
    def __init__(self, warping: nn.Module, generator: nn.Module):
        super().__init__()
        self.warping, self.generator = warping, generator

    def forward(self, feature_3d, kp_driving, kp_source):
        return self.generator(self.warping(feature_3d, kp_driving, kp_source)["out"])


class _MotionHeads(nn.Module):
    def __init__(self, motion: nn.Module):
        super().__init__()
        self.motion = motion

    def forward(self, image):
        out = self.motion(image)
        return tuple(out[k] for k in HEADS)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise EnlivenError("ONNX export needs onnx and onnxruntime: pip install 'enliven[onnx]'") from None


def export_onnx(modules: dict[str, nn.Module], out_dir: str | os.PathLike,
                config: LivePortraitConfig | None = None) -> list[Path]:
    """Write the engine's ONNX graphs into ``out_dir``; returns the files."""
    _require_onnx()
    config = config or LivePortraitConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size = config.input_size
    image = torch.rand(1, 3, size, size)
    kp = torch.rand(1, config.num_kp, 3) - 0.5
    with torch.no_grad():
        feature = modules["appearance_feature_extractor"](image)
    graphs = [
        ("appearance_feature_extractor", modules["appearance_feature_extractor"], (image,), ["image"], ["feature_3d"]),
        ("motion_extractor", _MotionHeads(modules["motion_extractor"]), (image,), ["image"], list(HEADS)),
        (
            "warping_spade",
            _WarpDecode(modules["warping_module"], modules["spade_generator"]),
            (feature, kp, kp),
            ["feature_3d", "kp_driving", "kp_source"],
            ["image"],
        ),
    ]
    for name in MLPS:
        width = modules[name].mlp[0].in_features
        graphs.append((name, modules[name], (torch.rand(1, width),), ["x"], ["delta"]))
    written = []
    for name, module, args, inputs, outputs in graphs:
        path = out / f"{name}.onnx"
        module.eval()  # the export restores the previous mode afterwards; it must be eval before and after
        with torch.no_grad(), warnings.catch_warnings(), atomic_output(path) as tmp:
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, args, str(tmp), opset_version=OPSET, dynamo=False, input_names=inputs, output_names=outputs
            )
        written.append(path)
    return written


class _Session:
    """One onnxruntime graph behind a PyTorch-like call (tensors in, tensors out)."""

    def __init__(self, path: Path, threads: int | None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        feeds = {n: t.detach().cpu().numpy().astype(np.float32) for n, t in zip(self.inputs, tensors)}
        return [torch.from_numpy(a) for a in self.session.run(None, feeds)]


class OnnxModules:
    """The exported graphs, called like the PyTorch modules the engine uses."""

    def __init__(self, onnx_dir: str | os.PathLike, threads: int | None = None):
        _require_onnx()
        folder = Path(onnx_dir)
        missing = [n for n in ("appearance_feature_extractor", "motion_extractor", "warping_spade", *MLPS)
                   if not (folder / f"{n}.onnx").is_file()]
        if missing:
            names = ", ".join(m + ".onnx" for m in missing)
            raise EnlivenError(f"{folder} lacks {names}; run `enliven weights export-onnx`")
        self._s = {n.stem: _Session(n, threads) for n in folder.glob("*.onnx")}

    def appearance_feature_extractor(self, image: torch.Tensor) -> torch.Tensor:
        return self._s["appearance_feature_extractor"].run(image)[0]

    def motion_extractor(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(HEADS, self._s["motion_extractor"].run(image)))

    def warp_decode(self, feature_3d: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> torch.Tensor:
        return self._s["warping_spade"].run(feature_3d, kp_driving, kp_source)[0]

    def mlp(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return self._s[name].run(x)[0]
