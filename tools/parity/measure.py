"""How ours and a release's outputs are compared, for both engines' parity checks: the largest difference over the
release's largest magnitude, and the tolerances the tests hold them to."""

from __future__ import annotations

import numpy as np

MODULE_TOLERANCE, RUN_TOLERANCE = 1e-4, 1e-3  # one module's output; a whole sampling run
# A sampling loop around an elementwise stand-in for the model: no sum or product whose order a CPU may choose,
# so only the loops' own float arithmetic can differ (measured 0 on HunyuanPortrait's).
LOOP_TOLERANCE = 1e-6


def relative(ours, release) -> float:
    """max |ours − release| / max |release|; different shapes are an error, not a number."""
    ours, release = np.asarray(ours, np.float64), np.asarray(release, np.float64)
    if ours.shape != release.shape:
        raise AssertionError(f"shapes differ: ours {ours.shape}, the release's {release.shape}")
    return float(np.abs(ours - release).max() / np.abs(release).max())
