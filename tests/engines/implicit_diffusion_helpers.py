"""Deterministic weights and inputs for the HunyuanPortrait tests: the ones ``tools/parity/hunyuan_portrait.py``
ran the release's own code on (``tools/parity/fill.py``, ``tools/parity/hunyuan_inputs.py``; on the path through
``tests/engines/conftest.py``)."""

from __future__ import annotations

from fill import fill_module, fill_value, filled_state
from hunyuan_inputs import FIXTURE_BUCKETS, FIXTURE_SIZES, RESNET_SIDE, fixture_inputs

__all__ = ["FIXTURE_BUCKETS", "FIXTURE_SIZES", "RESNET_SIDE", "fill_module", "fill_value", "filled_state",
           "fixture_inputs"]
