"""Package attributes imported on first use (PEP 562), so that importing an engine's package (to read its
descriptor) loads none of its heavy modules."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], list[str]]:
    """A module ``__getattr__`` for ``package`` that imports ``name`` from its submodule ``exports[name]`` when it
    is first asked for, and the ``__all__`` to go with it."""

    def __getattr__(name: str) -> object:
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(exports)
