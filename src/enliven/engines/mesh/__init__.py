"""The default ``mesh`` engine: a training-free dense warp driven by the 478-point face mesh."""

from enliven.engines.mesh.engine import MeshEngine

__all__ = ["MeshEngine"]
