"""The parity checks in ``tools/parity/`` (shared with ``tools/parity/compare.py``, which prints the README's
figures), importable from the tests."""

from __future__ import annotations

import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "parity"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))
