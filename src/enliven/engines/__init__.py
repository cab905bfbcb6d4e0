"""Rendering engines behind one protocol (see ``base``), each described by its descriptor (``descriptor``)."""

from enliven.engines.base import (
    Engine,
    SourceState,
    WindowedEngine,
    available,
    create,
    describe,
    descriptors,
    engine_class,
    forget_plugins,
    is_windowed,
    readiness,
    register,
    render_stream,
    weights_name,
)
from enliven.engines.descriptor import EngineDescriptor, EngineOption

__all__ = [
    "Engine", "EngineDescriptor", "EngineOption", "SourceState", "WindowedEngine", "available", "create", "describe",
    "descriptors", "engine_class", "forget_plugins", "is_windowed", "readiness", "register", "render_stream",
    "weights_name",
]
