"""What an engine is, in one place: its descriptor.

Each engine folder has a light ``descriptor.py`` (nothing heavy imported) holding an ``EngineDescriptor``: its name,
the system it implements, where its class is (imported only when the engine is built), what it needs (an extra's
module, weights by their ``enliven.weights`` name, words for the user), its options (with help and how the command
line reads them) and what it can do. The registry (``engines.base``) keeps descriptors; the command line, the web
page, ``enliven engines``, readiness checks and ``api`` read them. Engines from other packages register theirs
through the ``enliven.engines`` entry-point group (``module:DESCRIPTOR``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EngineOption:
    """One option of an engine: the engine's keyword ``name`` and its command-line flag (``--name`` with dashes).

    ``parse`` turns the flag's text into the value (int, float, str); a ``switch`` is a flag without a value that
    gives the engine ``switch_value`` (e.g. ``--no-stitching`` → ``stitching=False``), named by ``flag``. The engine
    checks the value itself (one error line); the command line only reads it."""

    name: str
    help: str
    parse: Callable[[str], Any] = str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    flag: str | None = None  # the command-line flag, when not --name
    switch_value: Any = None  # a flag without a value: this is given to the engine

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def is_switch(self) -> bool:
        return self.switch_value is not None


@dataclass(frozen=True)
class EngineDescriptor:
    """An engine's identity (see the module's text). ``factory``: ``"package.module:Class"``, imported on first use
    so listing engines loads no engine code (or the class itself, for an engine defined in code already loaded).
    ``windowed``: renders windows of frames (``WindowedEngine``); ``extracts``: ``motion extract --engine NAME`` can
    store its own motion in a template; ``video_source``: can re-animate a face in a video; ``audio``: can be driven
    by speech."""

    name: str
    system: str
    factory: str | Callable
    needs: str
    weights: str | None = None
    extra_module: str | None = None
    options: tuple[EngineOption, ...] = ()
    windowed: bool = False
    extracts: bool = False
    video_source: bool = True
    audio: bool = True
    capabilities: tuple[str, ...] = field(default=())

    def load(self) -> Callable:
        """The engine's class (or factory), imported now."""
        if callable(self.factory):
            return self.factory
        module, _, attribute = self.factory.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def option(self, name: str) -> EngineOption | None:
        return next((o for o in self.options if o.name == name), None)

    def can(self) -> list[str]:
        """What it can do, in words (``enliven engines``)."""
        words = ["renders windows of frames" if self.windowed else "renders frame by frame"]
        words += ["stores its own motion in templates"] if self.extracts else []
        words += ["re-animates faces in videos"] if self.video_source else ["pictures only as sources"]
        words += ["driven by speech"] if self.audio else []
        return words + list(self.capabilities)
