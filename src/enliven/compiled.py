"""Loops compiled with Numba: the few per-pixel loops NumPy cannot vectorise without large temporaries."""

from __future__ import annotations

from collections.abc import Callable

from numba import njit


def compiled(function: Callable) -> Callable:
    """``function`` compiled by Numba in nopython mode, releasing the GIL while it runs (so the pipeline's other
    threads, a driver's decoder and the encoder, go on meanwhile). The machine code is cached on disk where Numba
    finds a writable place (a ``__pycache__`` beside the module, else the user's cache folder): later processes
    load it in milliseconds.
    Where there is none (a read-only install and home), it is compiled afresh in each process instead (about a
    second, once) rather than failing at import."""
    try:
        return njit(cache=True, nogil=True)(function)
    except RuntimeError:  # Numba: "cannot cache function ...: no locator available"
        return njit(nogil=True)(function)
