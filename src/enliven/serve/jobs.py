"""Animation jobs of ``enliven serve``: each kept as a folder under the data folder, run by a fixed set of workers.

A job's folder holds ``job.json`` (its state, written atomically on every change of state) and its own files: the
uploads, saved under names the server chose, and the result. Nothing else is ever read or served: a job is found
by its id only, and an id is 32 lowercase hex digits (``uuid4().hex``), so it can never name another path.

On start the store reads the folders back: done, failed and cancelled jobs are kept (until ``keep_seconds`` after
they finished), queued ones are queued again, and one that was running when the server died is marked failed (it
may be what killed it; running it again could kill the server again). A server stopped cleanly puts its running
jobs back in the queue instead.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from enliven import api
from enliven.errors import EnlivenError
from enliven.io.files import atomic_file
from enliven.io.images import pixel_limit

log = logging.getLogger("enliven.serve")

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = frozenset({DONE, FAILED, CANCELLED})
JOB_ID = re.compile(r"[0-9a-f]{32}")
INTERRUPTED = "interrupted: the server stopped while this job ran; submit it again"


class JobCancelled(Exception):
    """Raised from the progress hook of a job whose cancellation was asked: the library stops and removes the
    unfinished output (``atomic_output``)."""


class ServerStopping(Exception):
    """Raised from the progress hook of a running job when the server stops: the job goes back to the queue."""


class QueueFull(Exception):
    """Every queue place is taken."""


@dataclass
class Job:
    id: str
    source: str | None  # file name in the job's folder; None: the bundled portrait
    driving: str | None  # file name in the job's folder, or preset:NAME; None with ``text``
    text: str | None = None  # spoken by espeak-ng
    voice: str = "en"
    options: dict = field(default_factory=dict)  # ``animate``'s options, as the client gave them (JSON values)
    result: str = "result.mp4"
    state: str = QUEUED
    progress: float = 0.0  # 0..1
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None

    def public(self) -> dict:
        """What a client sees of the job."""
        return {"id": self.id, "state": self.state, "progress": round(self.progress, 4), "error": self.error}


def valid_id(job_id: str) -> bool:
    return isinstance(job_id, str) and JOB_ID.fullmatch(job_id) is not None


class JobStore:
    """Jobs under ``root``, run by ``workers`` threads; at most ``queue_size`` wait; finished ones are deleted
    ``keep_seconds`` after they finished. ``max_pixels``: the largest picture or video frame a job reads.
    ``runner``: what runs a job (``run_job``'s signature; default ``run_job``, here)."""

    def __init__(
        self, root: str | os.PathLike, workers: int = 1, queue_size: int = 16, keep_seconds: float = 24 * 3600,
        max_pixels: int = 40_000_000, runner=None,
    ):
        if workers < 1 or queue_size < 1:
            raise EnlivenError("the server needs at least one worker and one queue place")
        self.root = Path(root) / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.queue_size, self.keep_seconds, self.max_pixels = queue_size, keep_seconds, max_pixels
        self.runner = runner or run_job  # runner(folder, job, on_frame): here, or elsewhere (serve --ray)
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._cancel: set[str] = set()
        self._queue: queue.Queue[str | None] = queue.Queue()  # bounded by ``submit``, which counts queued jobs
        self._stopping = threading.Event()
        self._load()
        self.clean()
        self._threads = [threading.Thread(target=self._work, name=f"enliven-job-{i}", daemon=True)
                         for i in range(workers)]
        self._threads.append(threading.Thread(target=self._clean_now_and_then, name="enliven-jobs-clean", daemon=True))
        for thread in self._threads:
            thread.start()

    # --- files ---
    def folder(self, job_id: str) -> Path:
        if not valid_id(job_id):
            raise KeyError(job_id)
        return self.root / job_id

    def _save(self, job: Job) -> None:
        """job.json replaced in one step: a crash leaves the old state or the new one, never half a file."""
        with atomic_file(self.root / job.id / "job.json") as tmp:
            tmp.write_text(json.dumps(asdict(job)))

    def _load(self) -> None:
        for folder in self.root.iterdir():
            if not valid_id(folder.name):
                continue
            try:
                job = Job(**json.loads((folder / "job.json").read_text()))
            except (OSError, ValueError, TypeError):  # a job whose submission never completed
                shutil.rmtree(folder, ignore_errors=True)
                continue
            if job.state == RUNNING:
                job.state, job.error, job.finished = FAILED, INTERRUPTED, time.time()
                self._save(job)
            self._jobs[job.id] = job
        for job in sorted(self._jobs.values(), key=lambda j: j.created):
            if job.state == QUEUED:
                self._queue.put(job.id)

    # --- what the API calls ---
    def new_folder(self) -> tuple[str, Path]:
        """A fresh id and its folder, for the uploads; the job exists only once ``submit`` is called."""
        self.check_room()
        job_id = uuid.uuid4().hex
        folder = self.root / job_id
        folder.mkdir()
        return job_id, folder

    def discard(self, job_id: str) -> None:
        """Remove the folder of a job that was never submitted (its upload was refused)."""
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def check_room(self) -> None:
        with self._lock:
            waiting = sum(job.state == QUEUED for job in self._jobs.values())
        if waiting >= self.queue_size:
            raise QueueFull(f"the queue is full ({waiting} jobs waiting); try again later")

    def submit(self, job: Job) -> Job:
        with self._lock:
            waiting = sum(j.state == QUEUED for j in self._jobs.values())
            if waiting >= self.queue_size:
                raise QueueFull(f"the queue is full ({waiting} jobs waiting); try again later")
            self._save(job)
            self._jobs[job.id] = job
        self._queue.put(job.id)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id) if valid_id(job_id) else None

    def result_path(self, job: Job) -> Path:
        return self.root / job.id / job.result

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued job now, a running one at its next frame; a finished job is left as it is."""
        with self._lock:
            job = self._jobs.get(job_id) if valid_id(job_id) else None
            if job is None or job.state in FINISHED:
                return job
            if job.state == QUEUED:
                self._finish(job, CANCELLED)
            else:
                self._cancel.add(job_id)
            return job

    def remove(self, job_id: str) -> bool:
        """Delete a finished job and its files."""
        with self._lock:
            job = self._jobs.get(job_id) if valid_id(job_id) else None
            if job is None or job.state not in FINISHED:
                return False
            del self._jobs[job_id]
        shutil.rmtree(self.root / job_id, ignore_errors=True)
        return True

    def clean(self) -> int:
        """Delete jobs that finished more than ``keep_seconds`` ago; returns how many."""
        limit = time.time() - self.keep_seconds
        with self._lock:
            old = [j.id for j in self._jobs.values() if j.state in FINISHED and (j.finished or j.created) < limit]
        return sum(self.remove(job_id) for job_id in old)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the workers; running jobs stop at their next frame and wait in the queue for the next start."""
        self._stopping.set()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)
        if hasattr(self.runner, "close"):
            self.runner.close()

    # --- workers ---
    def _finish(self, job: Job, state: str, error: str | None = None) -> None:
        job.state, job.error = state, error
        job.finished = time.time() if state in FINISHED else None
        if state == DONE:
            job.progress = 1.0
        self._save(job)

    def _clean_now_and_then(self) -> None:
        while not self._stopping.wait(min(600.0, max(1.0, self.keep_seconds / 4))):
            self.clean()

    def _work(self) -> None:
        while (job_id := self._queue.get()) is not None:
            with self._lock:
                job = self._jobs.get(job_id)
                if job is None or job.state != QUEUED or self._stopping.is_set():
                    continue
                job.state = RUNNING
                self._save(job)
            state, error = self._run(job)
            with self._lock:
                self._cancel.discard(job.id)
                self._finish(job, state, error)

    def _run(self, job: Job) -> tuple[str, str | None]:
        def on_frame(done: int, total: int | None) -> None:
            if job.id in self._cancel:
                raise JobCancelled
            if self._stopping.is_set():
                raise ServerStopping
            if total:
                job.progress = min(done / total, 0.99)  # 1 only once the file is in place

        try:
            with pixel_limit(self.max_pixels):
                self.runner(self.root / job.id, job, on_frame)
        except JobCancelled:
            return CANCELLED, None
        except ServerStopping:
            job.progress = 0.0
            return QUEUED, None
        except EnlivenError as exc:  # the line the CLI would print, naming the job's files but not its folder
            return FAILED, str(exc).replace(str(self.root / job.id) + os.sep, "")
        except Exception as exc:  # noqa: BLE001 - a bug: the job fails with one line, the server carries on
            log.exception("job %s failed", job.id)
            return FAILED, f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]
        return DONE, None


def run_job(folder: Path, job: Job, on_frame) -> api.AnimateResult:
    """Animate one job with the same library calls as the CLI, writing ``folder/job.result``."""
    source = folder / job.source if job.source else api.bundled_portrait()
    output = folder / job.result
    options = dict(job.options, progress=False, on_frame=on_frame)
    if job.text is not None:
        return api.animate_text(source, job.text, output, voice=job.voice, **options)
    driving = job.driving if job.driving.startswith(api.PRESET_PREFIX) else folder / job.driving
    return api.animate(source, driving, output, **options)
