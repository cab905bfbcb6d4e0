"""Keep freed memory in the process, so that big per-frame tensors stop page-faulting every frame.

glibc serves blocks over 32 MiB with fresh ``mmap`` calls and unmaps them on ``free``: each frame of
a large network then touches all its intermediates as new pages, which the kernel must fault in
and zero. On the LivePortrait decoder that is some 3.5 GB per frame, and 1.3 GB in its warping module
(``benchmarks/keypoint_speed.py`` prints them, and how much time keeping them saves). Serving every block
from the heap and never trimming it makes the second frame reuse the first frame's pages; the price is that the
process keeps its peak memory until it exits.

Intel's PyTorch CPU tuning guide gets the same effect by preloading jemalloc or TCMalloc; this
does it from inside the process, with the C library that is already there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # from glibc's malloc.h
_applied = False


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (process-wide, once). Returns whether it is in effect.

    A no-op off Linux/glibc, and when ``ENLIVEN_KEEP_FREED_MEMORY=0`` asks to leave the allocator alone.
    """
    global _applied
    if _applied:
        return True
    if os.environ.get("ENLIVEN_KEEP_FREED_MEMORY", "1") == "0":
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        # big blocks from the heap, not mmap; then never give the heap's top back (2 GiB − 1: mallopt takes an int)
        _applied = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        return False
    return _applied
