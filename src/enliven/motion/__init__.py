"""Motion: per-frame face motion, its sources (video, image, template, presets), alignment and smoothing."""

from enliven.motion.frame import MotionFrame, MotionSequence

__all__ = ["MotionFrame", "MotionSequence"]
