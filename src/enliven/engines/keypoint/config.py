"""Network hyperparameters: the official release's ``models.yaml``, and a tiny variant for tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from enliven.engines.keypoint.networks import (
    AppearanceFeatureExtractor,
    MotionExtractor,
    SPADEDecoder,
    StitchingRetargetingNetwork,
    WarpingNetwork,
)

MODULE_NAMES = (
    "appearance_feature_extractor",
    "motion_extractor",
    "warping_module",
    "spade_generator",
    "stitching",
    "retarget_eye",
    "retarget_lip",
)


@dataclass(frozen=True)
class LivePortraitConfig:
    appearance_feature_extractor: dict = field(
        default_factory=lambda: dict(
            image_channel=3, block_expansion=64, num_down_blocks=2, max_features=512, reshape_channel=32,
            reshape_depth=16, num_resblocks=6,
        )
    )
    motion_extractor: dict = field(default_factory=lambda: dict(num_kp=21, backbone="convnextv2_tiny"))
    warping_module: dict = field(
        default_factory=lambda: dict(
            num_kp=21, block_expansion=64, max_features=512, num_down_blocks=2, reshape_channel=32,
            estimate_occlusion_map=True,
            dense_motion_params=dict(block_expansion=32, max_features=1024, num_blocks=5, reshape_depth=16, compress=4),
        )
    )
    spade_generator: dict = field(
        default_factory=lambda: dict(upscale=2, block_expansion=64, max_features=512, num_down_blocks=2)
    )
    # (input, hidden, output): stitching takes [x_s, x_d]; eye takes [x_s, c_s,L, c_s,R, c_d]; lip [x_s, c_s, c_d].
    stitching: tuple = (126, (128, 128, 64), 65)
    retarget_eye: tuple = (66, (256, 256, 128, 128, 64), 63)
    retarget_lip: tuple = (65, (128, 128, 64), 63)
    input_size: int = 256  # F and M see the crop at this size
    num_kp: int = 21


def tiny_config() -> LivePortraitConfig:
    """Same structure, a few thousand times fewer weights: for tests with random weights."""
    return LivePortraitConfig(
        appearance_feature_extractor=dict(
            image_channel=3, block_expansion=8, num_down_blocks=2, max_features=64, reshape_channel=8,
            reshape_depth=8, num_resblocks=1,
        ),
        motion_extractor=dict(num_kp=21, backbone="convnextv2_tiny", depths=(1, 1, 1, 1), dims=(8, 16, 32, 64)),
        warping_module=dict(
            num_kp=21, block_expansion=8, max_features=64, num_down_blocks=2, reshape_channel=8,
            estimate_occlusion_map=True,
            dense_motion_params=dict(block_expansion=8, max_features=32, num_blocks=2, reshape_depth=8, compress=2),
        ),
        spade_generator=dict(upscale=2, block_expansion=8, max_features=64, num_down_blocks=2, out_channels=8),
        input_size=64,
    )


def random_modules(config: LivePortraitConfig | None = None, seed: int = 0) -> dict[str, nn.Module]:
    """Random weights with BatchNorm statistics away from the identity, like a trained model's; eval mode.
    For tests and benchmarks: the arithmetic (and so the time) equals the real model's."""
    torch.manual_seed(seed)
    modules = build_modules(config)
    for m in modules.values():
        for mod in m.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
        m.eval()
    return modules


def build_modules(config: LivePortraitConfig | None = None) -> dict[str, nn.Module]:
    """Freshly initialised modules, keyed like ``load_official``'s result."""
    config = config or LivePortraitConfig()

    def mlp(spec):
        inp, hidden, out = spec
        return StitchingRetargetingNetwork(inp, list(hidden), out)

    return {
        "appearance_feature_extractor": AppearanceFeatureExtractor(**config.appearance_feature_extractor),
        "motion_extractor": MotionExtractor(**config.motion_extractor),
        "warping_module": WarpingNetwork(**config.warping_module),
        "spade_generator": SPADEDecoder(**config.spade_generator),
        "stitching": mlp(config.stitching),
        "retarget_eye": mlp(config.retarget_eye),
        "retarget_lip": mlp(config.retarget_lip),
    }
