"""Rendering engines behind one protocol (see ``base``)."""

from enliven.engines.base import (
    Engine,
    SourceState,
    WindowedEngine,
    available,
    create,
    engine_class,
    is_windowed,
    readiness,
    register,
    render_stream,
    weights_name,
)

__all__ = [
    "Engine", "SourceState", "WindowedEngine", "available", "create", "engine_class", "is_windowed", "readiness",
    "register", "render_stream", "weights_name",
]
