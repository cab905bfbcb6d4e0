"""Rendering engines behind one protocol (see ``base``)."""

from enliven.engines.base import Engine, SourceState, available, create, register

__all__ = ["Engine", "SourceState", "available", "create", "register"]
