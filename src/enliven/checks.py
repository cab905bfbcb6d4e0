"""Checks of option values given from the command line, the API or a web form: one clear error each."""

from __future__ import annotations

import math
import numbers

from enliven.errors import EnlivenError


def number(name: str, value, low: float | None = None, high: float | None = None) -> float:
    """``value`` as a float if it is a finite real number within [low, high]; else an EnlivenError naming
    ``name``. NaN would slip through comparisons (every one is False) and break geometry far from here."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise EnlivenError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise EnlivenError(f"{name} must be a finite number, got {value}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low:g} and {high:g}" if low is not None and high is not None else (
            f">= {low:g}" if low is not None else f"<= {high:g}")
        raise EnlivenError(f"{name} must be {bounds}, got {value:g}")
    return value


def whole(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int if it is a whole number within [low, high]; else an EnlivenError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise EnlivenError(f"{name} must be a whole number, got {value!r}")
    number(name, value, low, high)
    return int(value)
