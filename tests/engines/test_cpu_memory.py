"""Freed memory kept for reuse: big per-frame tensors must not page-fault their way in every frame."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

# A frame-like workload of big temporaries (128 to 512 MiB), run until it repeats; print the fewest minor
# page faults of three more runs (glibc's placement can take a run or two more to settle).
_PROBE = """
import resource, torch
from enliven.engines.cpu_memory import keep_freed_memory
applied = keep_freed_memory()

def frame():
    a = torch.ones(32 * 2**20)
    b = a * 2
    return float(torch.cat([a, b]).sum())

for _ in range(3):
    frame()
faults = []
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    frame()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, min(faults))
"""


def _steady_state_faults(keep: str) -> tuple[bool, int]:
    env = {**os.environ, "ENLIVEN_KEEP_FREED_MEMORY": keep}
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_memory_is_reused_without_page_faults():
    pages = (128 + 128 + 256) * 2**20 // os.sysconf("SC_PAGE_SIZE")  # touched by each run
    applied, faults = _steady_state_faults("1")
    assert applied and faults < pages // 50
    # left alone, glibc maps big blocks afresh: every page faults again (what the setting saves)
    applied, faults = _steady_state_faults("0")
    assert not applied and faults > pages // 2
