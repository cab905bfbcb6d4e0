"""``enliven batch``: many animations on Ray, on this machine or a cluster (the ``batch`` extra).

``jobs`` reads a manifest or pairs two folders into ``BatchJob``s (no Ray needed); ``runner.run_batch`` runs them
on pools of ``worker.EngineWorker`` actors, retrying, resuming and reporting; ``dispatch.RayDispatcher`` runs the
jobs of ``enliven serve --ray`` on the same workers.
"""

from __future__ import annotations

import json

from enliven.batch.jobs import BatchJob, pair_folders, read_manifest
from enliven.batch.runner import BatchResult, BatchSettings, JobRecord, run_batch
from enliven.errors import EnlivenError

__all__ = ["BatchJob", "BatchResult", "BatchSettings", "JobRecord", "job_defaults", "jobs_from", "pair_folders",
           "read_manifest", "run_batch"]


def job_defaults(engine: str | None = None, options: str | None = None) -> dict:
    """Options for every job of a batch, from ``--engine`` and ``--options`` (a JSON object of animate's)."""
    defaults = {}
    if options:
        try:
            defaults = json.loads(options)
        except ValueError:
            raise EnlivenError(f"--options is not valid JSON: {options[:80]!r}") from None
        if not isinstance(defaults, dict):
            raise EnlivenError("--options takes a JSON object of animate's options, like '{\"multiplier\": 1.2}'")
    if engine:
        defaults["engine"] = engine
    return defaults


def jobs_from(manifest: str | None = None, sources: str | None = None, driving: str | None = None,
              defaults: dict | None = None) -> list[BatchJob]:
    """The jobs of a manifest, or of every picture in ``sources`` with every file in ``driving`` (or a preset)."""
    if (manifest is None) == (sources is None and driving is None):
        raise EnlivenError("give either a MANIFEST (.csv or .jsonl) or --sources DIR with --driving DIR")
    if manifest is not None:
        return read_manifest(manifest, defaults)
    if sources is None or driving is None:
        raise EnlivenError("--sources and --driving go together: every picture in one with every motion in the other")
    return pair_folders(sources, driving, defaults)
