"""``enliven serve --ray ADDRESS``: the HTTP API's jobs run on a Ray cluster, by the batch's workers.

The server keeps its job folders, queue, states and HTTP side as they are (``serve.jobs.JobStore``); only the
running of a job moves: its inputs go to an ``EngineWorker`` on the cluster as bytes, its result comes back and is
renamed into the job's folder whole. The server's ``--workers`` threads each run one job at a time, so at most that
many workers exist, kept per engine with their models loaded; a thread that needs another engine while all are
made stops an idle one of another engine first (a worker waiting for room that the idle ones hold would wait
forever).
"""

from __future__ import annotations

import threading
from pathlib import Path

from enliven.batch.runner import connect, gpu_engine, need_ray
from enliven.batch.worker import EngineWorker
from enliven.errors import EnlivenError
from enliven.io.files import atomic_output, require_file

POLL = 0.5  # seconds between looks at a running job's cancellation


class WorkerLost(Exception):
    """The job's worker died every time it was tried."""


class RayDispatcher:
    """What ``JobStore`` calls to run a job (``run_job``'s signature), on the Ray cluster at ``address``
    (``local``: one started in this process with this machine's cores)."""

    def __init__(self, address: str, workers: int = 1, max_pixels: int | None = None, retries: int = 2,
                 cpus_per_worker: float = 1.0, setup=None):
        self.ray = need_ray("enliven serve --ray")
        self.started = connect(address)
        self.workers, self.max_pixels, self.retries = workers, max_pixels, retries
        self.cpus_per_worker, self.setup = cpus_per_worker, setup  # setup: as BatchSettings.setup
        self.remote = self.ray.remote(EngineWorker)
        self._lock = threading.Lock()
        self._idle: dict[str, list] = {}  # engine -> idle workers
        self._count = 0  # workers made and not stopped

    def __call__(self, folder: Path, job, on_frame) -> None:
        from enliven import api

        source = folder / job.source if job.source else api.bundled_portrait()
        driving = job.driving
        if driving is not None and not driving.startswith(api.PRESET_PREFIX):
            driving = str(folder / driving)
        spec = {"source": str(source), "driving": driving, "text": job.text, "voice": job.voice,
                "options": dict(job.options), "output": job.result}
        source_bytes = require_file(source).read_bytes()
        driving_bytes = None if driving is None or driving.startswith(api.PRESET_PREFIX) else \
            require_file(driving).read_bytes()
        engine = spec["options"].get("engine", "mesh")
        error = None
        for _attempt in range(self.retries + 1):
            worker = self._acquire(engine)
            ref = worker.run.remote(spec, source_bytes, driving_bytes)
            try:
                while not self.ray.wait([ref], timeout=POLL)[0]:
                    on_frame(*self._progress(worker))  # raises when the job is cancelled or the server stops
                out = self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:
                self._stop(worker)
                error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                continue
            except BaseException:
                self._stop(worker)  # the job stops with its worker; a fresh one is made for the next
                raise
            self._release(engine, worker)
            if out["ok"]:
                with atomic_output(folder / job.result) as tmp:
                    tmp.write_bytes(out["data"])
                return
            error = out["error"]
            if not out["retry"]:
                raise EnlivenError(error)
        raise WorkerLost(f"{error} (tried {self.retries + 1} times)")

    def _progress(self, worker) -> tuple[int, int | None]:
        """The worker's frames done and in all; (0, None) when it does not answer in time (busy, or dying: the
        job's own reference tells which)."""
        try:
            return self.ray.get(worker.progress.remote(), timeout=POLL)
        except (self.ray.exceptions.RayError, TimeoutError):
            return 0, None

    def _acquire(self, engine: str):
        with self._lock:
            idle = self._idle.get(engine)
            if idle:
                return idle.pop()
            if self._count >= self.workers:  # make room: stop an idle worker of another engine
                other = next((name for name, workers in self._idle.items() if workers), None)
                if other is not None:
                    self.ray.kill(self._idle[other].pop())
                    self._count -= 1
            self._count += 1
        resources = dict(num_cpus=self.cpus_per_worker)
        if gpu_engine(engine) and self.ray.cluster_resources().get("GPU", 0) > 0:
            resources = dict(num_cpus=min(1.0, self.cpus_per_worker), num_gpus=1)
        return self.remote.options(**resources, max_restarts=0, scheduling_strategy="SPREAD",
                                   max_concurrency=EngineWorker.CONCURRENCY).remote(self.setup, self.max_pixels)

    def _release(self, engine: str, worker) -> None:
        with self._lock:
            self._idle.setdefault(engine, []).append(worker)

    def _stop(self, worker) -> None:
        self.ray.kill(worker)
        with self._lock:
            self._count -= 1

    def close(self) -> None:
        with self._lock:
            for workers in self._idle.values():
                for worker in workers:
                    self.ray.kill(worker)
            self._idle.clear()
        if self.started:
            self.ray.shutdown()
