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
    second, once) rather than failing at import; and where writing the cache fails (a full disk), the compiled
    code serves this process uncached rather than the failure ending the render."""
    try:
        dispatcher = njit(cache=True, nogil=True)(function)
    except RuntimeError:  # Numba: "cannot cache function ...: no locator available"
        return njit(nogil=True)(function)
    cache = dispatcher._cache  # Numba's FunctionCache (numba is pinned to 0.68.x in pyproject.toml)
    save = cache.save_overload

    def save_if_possible(signature, data) -> None:
        try:
            save(signature, data)  # written to a temporary file and renamed: a failure leaves no broken entry
        except OSError:
            pass

    cache.save_overload = save_if_possible
    return dispatcher
