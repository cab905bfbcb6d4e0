"""LivePortrait's networks, one per file, state-dict compatible with the official checkpoints."""

from enliven.engines.keypoint.networks.appearance import AppearanceFeatureExtractor
from enliven.engines.keypoint.networks.motion_extractor import MotionExtractor
from enliven.engines.keypoint.networks.spade import SPADEDecoder
from enliven.engines.keypoint.networks.stitching import StitchingRetargetingNetwork
from enliven.engines.keypoint.networks.warping import WarpingNetwork

__all__ = [
    "AppearanceFeatureExtractor",
    "MotionExtractor",
    "SPADEDecoder",
    "StitchingRetargetingNetwork",
    "WarpingNetwork",
]
