"""Running a batch on Ray: pools of workers, retries, resumption, the report.

The driver (this process) holds the queue. Each engine gets a pool of ``EngineWorker`` actors (one per CPU it may
use, or one per GPU for an engine with a ``device`` option when the cluster has GPUs), each running one job at a
time with the model kept loaded. A job whose worker dies (a killed process, a lost machine) is sent to a fresh
worker, which Ray places where there is room (``SPREAD``: another machine where there is one); so is a job that
failed for a reason other than its input, up to ``retries`` more times. A job with bad input (no face, an
unreadable file) fails once, with its one line: it would fail the same way again.

Outputs come back as bytes and are renamed into the output folder whole (``io.files.atomic_output``), so an output
that exists is finished: a rerun skips it, which is how an interrupted batch resumes. The report
(``batch-report.jsonl``: one JSON object a job) is rewritten in place every few seconds and at the end.
"""

from __future__ import annotations

import collections
import glob
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from enliven.batch.jobs import BatchJob
from enliven.batch.worker import EngineWorker
from enliven.errors import EnlivenError
from enliven.io.files import atomic_file, atomic_output, require_file

DONE, FAILED, SKIPPED, PENDING = "done", "failed", "skipped", "pending"
REPORT_NAME = "batch-report.jsonl"
REPORT_EVERY = 2.0  # seconds between rewrites of the report while the batch runs
WAIT_TICK = 1.0  # seconds between looks at running jobs' time limits
KEPT_DRIVING = 64  # driving files held in Ray's object store at once (a driver used by many jobs is sent once)


def need_ray(what: str = "enliven batch"):
    """Ray, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise EnlivenError(f"{what} needs the batch extra (Ray): pip install 'enliven[batch]'") from None
    return ray


@dataclass(frozen=True)
class BatchSettings:
    """Where and how a batch runs."""

    address: str | None = None
    """None: Ray started in this process with this machine's cores; else a cluster's address (``auto``,
    ``HOST:PORT`` or ``ray://HOST:10001``)."""
    num_cpus: int | None = None
    """Cores of the Ray started here (default: all of this machine's); ignored with ``address``."""
    retries: int = 2
    """Times a job is tried again after its worker died or it failed for a reason other than its input."""
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 1.0
    """For engines with a ``device`` option, on a cluster with GPUs (``auto`` or ``cuda``)."""
    max_workers: int | None = None
    """At most this many workers per engine (default: as many as the cluster has room for)."""
    job_timeout: float | None = 4 * 3600.0
    """A job running longer than this many seconds has its worker stopped and counts as failed (then retried)."""
    max_pixels: int | None = None
    """The largest picture or video frame a job reads (default: the library's limit)."""
    setup: Callable[[], None] | None = None
    """Called in every worker as it starts (register a plugin engine, set threads); must pickle."""

    def __post_init__(self):
        if self.retries < 0 or self.cpus_per_worker <= 0 or self.gpus_per_worker <= 0:
            raise EnlivenError("retries must be 0 or more, and each worker needs some CPU or GPU")
        if self.max_workers is not None and self.max_workers < 1:
            raise EnlivenError(f"max workers must be at least 1, got {self.max_workers}")
        if self.job_timeout is not None and self.job_timeout <= 0:
            raise EnlivenError(f"the job time limit must be positive, got {self.job_timeout}")


@dataclass
class JobRecord:
    """One job's line of the report."""

    index: int  # its place in the batch, from 1
    job: BatchJob
    state: str = PENDING
    attempts: int = 0
    seconds: float | None = None  # the run that finished it (the worker's time, inputs and output transfer aside)
    frames: int | None = None
    worker: str | None = None  # host:pid of the worker that finished it (or ran it last)
    error: str | None = None

    def to_dict(self) -> dict:
        return {"index": self.index, "output": self.job.output, "state": self.state, "attempts": self.attempts,
                "seconds": None if self.seconds is None else round(self.seconds, 3), "frames": self.frames,
                "worker": self.worker, "error": self.error, "source": self.job.source, "driving": self.job.driving,
                "text": self.job.text, "engine": self.job.engine}


@dataclass
class BatchResult:
    records: list[JobRecord]
    seconds: float
    report: Path
    workers: int = 0
    counts: dict = field(default_factory=dict)

    def __post_init__(self):
        self.counts = collections.Counter(r.state for r in self.records)

    @property
    def failed(self) -> list[JobRecord]:
        return [r for r in self.records if r.state == FAILED]

    def summary(self, failures: int = 20) -> str:
        """A table of the batch: jobs in each state, the rate, and the failed jobs with their lines."""
        done = self.counts.get(DONE, 0)
        rate = done / self.seconds * 60 if self.seconds > 0 else 0.0
        lines = [f"{'state':<8} {'jobs':>6}"]
        lines += [f"{state:<8} {self.counts.get(state, 0):>6}" for state in (DONE, FAILED, SKIPPED, PENDING)]
        lines.append(f"{'total':<8} {len(self.records):>6}")
        lines.append(f"{done} done in {self.seconds:.1f} s ({rate:.1f} jobs/min, {self.workers} "
                     f"worker{'' if self.workers == 1 else 's'}); "
                     f"report: {self.report}")
        failed = self.failed
        if failed:
            width = min(40, max(len(r.job.output) for r in failed))
            lines.append("failed:")
            lines += [f"  {r.job.output:<{width}}  {r.error}" for r in failed[:failures]]
            if len(failed) > failures:
                lines.append(f"  ... and {len(failed) - failures} more (see the report)")
        return "\n".join(lines)


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join Ray: the one already set up in this process, the cluster at ``address``, or a new one here with
    ``num_cpus`` cores (default: all). Returns whether this call started it (then the caller shuts it down)."""
    ray = need_ray()
    if ray.is_initialized():
        return False
    quiet = dict(logging_level=logging.WARNING, log_to_driver=False)
    try:
        if address and address != "local":
            ray.init(address=address, **quiet)
        else:
            # address="local": a new Ray here even when this machine is part of a `ray start` cluster (ray.init
            # would join that one, and refuse the core count).
            # Ray 2.60 starts a local Ray with token authentication on (a token made in ~/.ray/auth_token) and
            # says so at WARNING on every start: that is the safe default we want, not news to print before the bar.
            said = logging.getLogger("ray._private.authentication.authentication_token_setup")
            level = said.level
            said.setLevel(logging.ERROR)
            try:
                ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                         **quiet)
            finally:
                said.setLevel(level)
    except ConnectionError as exc:
        raise EnlivenError(f"cannot reach the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
    return True


def run_batch(
    jobs: list[BatchJob], out_dir: str | os.PathLike, settings: BatchSettings = BatchSettings(),
    progress: bool = True, report: str | os.PathLike | None = None,
    on_job: Callable[[JobRecord], None] | None = None,
) -> BatchResult:
    """Run ``jobs`` into ``out_dir`` (made if missing); returns every job's record, also written to ``report``
    (default ``OUT_DIR/batch-report.jsonl``). Jobs whose output exists are skipped. ``on_job`` is called with each
    job's record as it finishes (done or failed). Ctrl-C stops the running jobs, writes the report (unfinished
    jobs ``pending``) and is raised again; the next run picks up from there."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnlivenError(f"cannot make the output folder {out_dir}: {exc.strerror}") from None
    report_path = Path(report) if report is not None else out_dir / REPORT_NAME
    records = [JobRecord(i, job) for i, job in enumerate(jobs, 1)]
    for record in records:
        output = out_dir / record.job.output
        if output.exists():
            record.state = SKIPPED
            continue
        # What a driver killed outright while renaming a result into place can leave (atomic_file's temporary
        # name); only this batch writes these names (one batch per output folder).
        for stale in out_dir.glob(f".{glob.escape(output.stem)}.*.part{glob.escape(output.suffix)}"):
            stale.unlink(missing_ok=True)
    started = time.perf_counter()
    todo = [r for r in records if r.state == PENDING]
    writer = _ReportWriter(report_path, records)
    result = BatchResult(records, 0.0, report_path)
    started_ray = connect(settings.address, settings.num_cpus) if todo else False
    bar = tqdm(total=len(records), initial=len(records) - len(todo), desc="batch", unit="job",
               disable=not progress, dynamic_ncols=True)
    try:
        if todo:
            for group in _groups(todo):
                result.workers = max(result.workers, _Pool(group, out_dir, settings, bar, writer, on_job).run())
    finally:
        bar.close()
        result.seconds = time.perf_counter() - started
        result.counts = collections.Counter(r.state for r in records)
        writer.write()
        if started_ray:
            need_ray().shutdown()
    return result


def _groups(records: list[JobRecord]) -> list[list[JobRecord]]:
    """The jobs by engine, in the order each engine first appears: one pool of workers at a time has the
    cluster's room to itself."""
    groups: dict[str, list[JobRecord]] = {}
    for record in records:
        groups.setdefault(record.job.engine, []).append(record)
    return list(groups.values())


class _ReportWriter:
    def __init__(self, path: Path, records: list[JobRecord]):
        self.path, self.records, self.last = path, records, 0.0

    def write(self) -> None:
        with atomic_file(self.path) as tmp:
            tmp.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in self.records))
        self.last = time.monotonic()

    def now_and_then(self) -> None:
        if time.monotonic() - self.last > REPORT_EVERY:
            self.write()


def gpu_engine(engine: str) -> bool:
    """Engines that choose their device (the diffusion engines' ``device`` option) run on a GPU where there is one."""
    from enliven import engines

    return engines.describe(engine).option("device") is not None


class _Pool:
    """The workers of one engine and the jobs they run."""

    def __init__(self, records, out_dir: Path, settings: BatchSettings, bar, writer: _ReportWriter, on_job):
        self.ray = need_ray()
        self.records, self.out_dir, self.settings = records, out_dir, settings
        self.bar, self.writer, self.on_job = bar, writer, on_job
        self.driving_refs: collections.OrderedDict = collections.OrderedDict()
        self.failed = sum(r.state == FAILED for r in writer.records)  # for the bar, over the whole batch
        engine = records[0].job.engine
        gpus = self.ray.cluster_resources().get("GPU", 0)
        device = records[0].job.options.get("engine_options", {}).get("device", "auto")
        use_gpu = gpu_engine(engine) and gpus > 0 and device != "cpu"
        if use_gpu:
            room = int(gpus // settings.gpus_per_worker)
            self.resources = dict(num_cpus=min(1.0, settings.cpus_per_worker), num_gpus=settings.gpus_per_worker)
        else:
            room = int(self.ray.cluster_resources().get("CPU", 1) // settings.cpus_per_worker)
            self.resources = dict(num_cpus=settings.cpus_per_worker)
        self.size = max(1, min(room, settings.max_workers or room, len(records)))
        self.remote = self.ray.remote(EngineWorker)

    def _new_worker(self):
        # max_restarts=0: a dead worker is replaced by the pool (its job goes back in the queue), not restarted
        # in place by Ray, so that the job's attempts are counted here.
        return self.remote.options(**self.resources, max_restarts=0, scheduling_strategy="SPREAD",
                                   max_concurrency=EngineWorker.CONCURRENCY).remote(
            self.settings.setup, self.settings.max_pixels)

    def run(self) -> int:
        ray = self.ray
        queue = collections.deque(self.records)
        idle = [self._new_worker() for _ in range(self.size)]
        running: dict = {}  # object ref -> (record, worker, monotonic start)
        try:
            while queue or running:
                while queue and idle:
                    record = queue.popleft()
                    try:
                        source, driving = self._inputs(record.job)
                    except EnlivenError as exc:
                        self._finish(record, FAILED, error=str(exc))
                        continue
                    worker = idle.pop()
                    record.attempts += 1
                    ref = worker.run.remote(record.job.to_dict(), source, driving)
                    running[ref] = (record, worker, time.monotonic())
                ready, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_TICK)
                for ref in ready:
                    record, worker, _start = running.pop(ref)
                    self._collect(ref, record, worker, queue, idle)
                self._stop_overdue(running, queue, idle)
                self.writer.now_and_then()
        finally:
            for record, worker, _start in running.values():  # interrupted: these go back to pending
                record.attempts -= 1
                ray.kill(worker)
            for worker in idle:
                ray.kill(worker)
        return self.size

    def _collect(self, ref, record: JobRecord, worker, queue, idle) -> None:
        ray = self.ray
        try:
            out = ray.get(ref)
        except ray.exceptions.RayActorError as exc:  # the worker died (killed, out of memory, its machine lost)
            ray.kill(worker)
            idle.append(self._new_worker())
            self._again_or_fail(record, f"worker lost: {_first_line(exc)}", queue)
            return
        except ray.exceptions.RayError as exc:  # the task itself was lost or cancelled; the worker lives on
            idle.append(worker)
            self._again_or_fail(record, f"internal error: {_first_line(exc)}", queue)
            return
        idle.append(worker)
        record.worker = out.get("worker")
        if not out["ok"]:
            if out["retry"]:
                self._again_or_fail(record, out["error"], queue)
            else:
                self._finish(record, FAILED, error=out["error"])
            return
        try:
            with atomic_output(self.out_dir / record.job.output) as tmp:
                tmp.write_bytes(out["data"])
        except EnlivenError as exc:
            self._finish(record, FAILED, error=str(exc))
            return
        self._finish(record, DONE, seconds=out["seconds"], frames=out["frames"])

    def _stop_overdue(self, running: dict, queue, idle) -> None:
        limit = self.settings.job_timeout
        if limit is None:
            return
        now = time.monotonic()
        for ref, (record, worker, start) in list(running.items()):
            if now - start > limit:
                del running[ref]
                self.ray.kill(worker)
                idle.append(self._new_worker())
                self._again_or_fail(record, f"timed out after {limit:g} s", queue)

    def _again_or_fail(self, record: JobRecord, error: str, queue) -> None:
        record.error = error
        if record.attempts <= self.settings.retries:
            queue.append(record)  # to the back: the next free worker, likely another one
        else:
            self._finish(record, FAILED, error=f"{error} (tried {record.attempts} times)")

    def _finish(self, record: JobRecord, state: str, error: str | None = None, seconds=None, frames=None) -> None:
        record.state, record.error, record.seconds, record.frames = state, error, seconds, frames
        self.bar.update()
        if state == FAILED:
            self.failed += 1
            self.bar.set_postfix(failed=self.failed, refresh=False)
        if self.on_job is not None:
            self.on_job(record)

    def _inputs(self, job: BatchJob) -> tuple[bytes, object]:
        """The source's bytes, and the driving file's (as an object-store reference, sent once for every job that
        uses it), or None for a preset or text."""
        source = require_file(job.source).read_bytes()
        if job.driving is None or job.driving.startswith("preset:"):
            return source, None
        ref = self.driving_refs.pop(job.driving, None)
        if ref is None:
            ref = self.ray.put(require_file(job.driving).read_bytes())
        self.driving_refs[job.driving] = ref
        while len(self.driving_refs) > KEPT_DRIVING:
            self.driving_refs.popitem(last=False)
        return source, ref


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]
