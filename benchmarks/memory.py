"""Peak resident memory of this process, the one figure every benchmark here prints (a sibling module of the
scripts, imported as ``from memory import peak_rss_mib``: ``python benchmarks/X.py`` puts this folder on the path)."""

from __future__ import annotations

import re
import resource
from pathlib import Path


def peak_rss_mib() -> float:
    """Peak resident memory in MiB: since the last ``reset_peak_rss`` (Linux's VmHWM), else since the process
    started (``ru_maxrss``, which Linux reports in KiB)."""
    try:
        return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Start the peak afresh (Linux: writing 5 to /proc/self/clear_refs resets VmHWM); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False
