"""The job store of `enliven serve` on its own: ids, states, persistence, the queue bound and the cleanup.

No animation runs here: ``run_job`` is replaced by a stand-in that finishes, fails or blocks on demand, so each test
takes milliseconds and proves the store's bookkeeping, not the renderer (tests/serve/test_http_api.py renders).
"""

from __future__ import annotations

import json
import threading
import time
import types

import pytest

from enliven.errors import EnlivenError
from enliven.serve import jobs
from enliven.serve.jobs import CANCELLED, DONE, FAILED, INTERRUPTED, QUEUED, RUNNING, Job, JobStore, QueueFull


class FakeRun:
    """Stands in for ``jobs.run_job``: a job whose driving is "block" waits for ``release`` (calling the progress
    hook meanwhile, as the renderer does between frames, so cancel and stop reach it); "fail" raises the library's
    one-line error; anything else finishes at once."""

    def __init__(self):
        self.release, self.started = threading.Event(), threading.Event()

    def __call__(self, folder, job, on_frame):
        if job.driving == "fail":
            raise EnlivenError(f"no face found in {folder / 'source.png'}")
        if job.driving == "block":
            self.started.set()
            while not self.release.wait(0.01):
                on_frame(1, 10)
        (folder / job.result).write_bytes(b"video")


@pytest.fixture()
def fake_run(monkeypatch):
    run = FakeRun()
    monkeypatch.setattr(jobs, "run_job", run)
    yield run
    run.release.set()  # never leave a worker blocked


@pytest.fixture()
def open_stores():
    """Stores made by a test, closed after it even when it fails (their workers are threads of this process)."""
    made = []
    yield made
    for store in made:
        store.close(5)


def new_store(open_stores, root, **kwargs) -> JobStore:
    store = JobStore(root, **kwargs)
    open_stores.append(store)
    return store


def add(store: JobStore, driving: str = "preset:blink") -> Job:
    job_id, _ = store.new_folder()
    return store.submit(Job(job_id, None, driving))


def wait_state(store: JobStore, job_id: str, states, seconds: float = 5.0) -> Job:
    deadline = time.monotonic() + seconds
    while (job := store.get(job_id)) is not None and job.state not in states:
        assert time.monotonic() < deadline, f"job still {job.state}"
        time.sleep(0.005)
    return job


def on_disk(store: JobStore, job_id: str) -> dict:
    return json.loads((store.root / job_id / "job.json").read_text())


def test_only_32_lowercase_hex_ids_are_valid():
    # The id is the only thing of the client's that becomes a path: anything but uuid4().hex must be refused,
    # above all what would climb out of the jobs folder or name another file in it.
    assert jobs.valid_id("0123456789abcdef" * 2)
    for bad in ["../x", "..", "/etc/passwd", "0" * 32 + "/../x", "../" + "0" * 29, "0" * 31, "0" * 33,
                "A" * 32, "g" * 32, "0" * 31 + "\n", " " + "0" * 31, "0" * 16 + "/" + "0" * 15, "", None, 0]:
        assert not jobs.valid_id(bad), bad


def test_the_store_looks_up_no_path_but_a_job_id(tmp_path, open_stores, fake_run):
    store = new_store(open_stores, tmp_path)
    (tmp_path / "secret").mkdir()
    for bad in ["../x", "../secret", "..", "0" * 32 + "/../../secret"]:
        with pytest.raises(KeyError):
            store.folder(bad)
        assert store.get(bad) is None and store.cancel(bad) is None and not store.remove(bad)
        with pytest.raises(KeyError):
            store.discard(bad)
    assert (tmp_path / "secret").is_dir()  # neither remove nor discard reached it


def test_a_job_goes_queued_running_done_and_each_state_is_on_disk(tmp_path, open_stores, fake_run):
    store = new_store(open_stores, tmp_path)
    job = add(store, "block")
    assert fake_run.started.wait(5)
    assert store.get(job.id).state == RUNNING and on_disk(store, job.id)["state"] == RUNNING
    fake_run.release.set()
    job = wait_state(store, job.id, {DONE})
    assert (job.progress, job.error) == (1.0, None) and job.finished is not None
    assert on_disk(store, job.id)["state"] == DONE
    assert store.result_path(job).read_bytes() == b"video"


def test_a_failing_job_is_failed_with_one_line_naming_its_file_not_its_folder(tmp_path, open_stores, fake_run):
    store = new_store(open_stores, tmp_path)
    job = wait_state(store, add(store, "fail").id, {FAILED})
    assert job.error == "no face found in source.png" and job.finished is not None


def test_cancel_a_queued_job_at_once_and_a_running_one_at_its_next_frame(tmp_path, open_stores, fake_run):
    store = new_store(open_stores, tmp_path, workers=1)
    running = add(store, "block")
    assert fake_run.started.wait(5)
    queued = add(store)
    assert store.cancel(queued.id).state == CANCELLED  # never ran: cancelled now, on disk too
    assert on_disk(store, queued.id)["state"] == CANCELLED
    store.cancel(running.id)
    assert wait_state(store, running.id, {CANCELLED, DONE}).state == CANCELLED  # the hook stopped it
    assert store.cancel(running.id).state == CANCELLED  # cancelling a finished job changes nothing
    assert store.remove(running.id) and not (store.root / running.id).exists()


def test_a_running_or_queued_job_cannot_be_deleted(tmp_path, open_stores, fake_run):
    store = new_store(open_stores, tmp_path, workers=1)
    running = add(store, "block")
    assert fake_run.started.wait(5)
    queued = add(store)
    assert not store.remove(running.id) and not store.remove(queued.id)
    assert (store.root / running.id).is_dir() and (store.root / queued.id).is_dir()


def test_the_queue_holds_queue_size_jobs_and_refuses_the_next(tmp_path, open_stores, fake_run):
    store = new_store(open_stores, tmp_path, workers=1, queue_size=1)
    add(store, "block")
    assert fake_run.started.wait(5)  # the running job takes no queue place
    waiting = add(store)
    with pytest.raises(QueueFull):
        store.check_room()
    with pytest.raises(QueueFull):
        store.new_folder()
    with pytest.raises(QueueFull):  # submit counts again: two uploads may have passed check_room together
        store.submit(Job("e" * 32, None, "preset:blink"))
    fake_run.release.set()
    wait_state(store, waiting.id, {DONE})
    add(store)  # room again once the queue drained


def test_jobs_are_read_back_after_a_reload(tmp_path, open_stores, fake_run):
    first = new_store(open_stores, tmp_path, workers=1)
    done = wait_state(first, add(first).id, {DONE})
    failed = wait_state(first, add(first, "fail").id, {FAILED})
    running = add(first, "block")
    assert fake_run.started.wait(5)
    queued = add(first, "block")
    first.close(5)  # a clean stop: the running job goes back to the queue, ahead of the one that waited
    assert on_disk(first, running.id)["state"] == QUEUED and on_disk(first, queued.id)["state"] == QUEUED
    # What a server killed mid-job leaves: running on disk. It may be what killed the server, so it is not rerun.
    crashed = add(first, "block").id
    (first.root / crashed / "job.json").write_text(json.dumps({**on_disk(first, crashed), "state": RUNNING}))
    (first.root / ("d" * 32)).mkdir()  # a submission that never completed: no job.json
    (first.root / "not-a-job").mkdir()  # not an id: never read, never deleted

    fake_run.release.set()
    again = new_store(open_stores, tmp_path, workers=1)
    assert again.get(done.id).state == DONE and again.result_path(again.get(done.id)).read_bytes() == b"video"
    assert (again.get(failed.id).state, again.get(failed.id).error) == (FAILED, "no face found in source.png")
    assert (again.get(crashed).state, again.get(crashed).error) == (FAILED, INTERRUPTED)
    assert wait_state(again, running.id, {DONE}).state == DONE  # queued ones run again
    assert wait_state(again, queued.id, {DONE}).state == DONE
    assert not (again.root / ("d" * 32)).exists() and (again.root / "not-a-job").is_dir()


def test_cleanup_deletes_finished_jobs_older_than_keep_seconds_only(tmp_path, open_stores, fake_run, monkeypatch):
    # A fake clock for the store (jobs.time), so "older than keep_seconds" needs no waiting.
    now = [time.time()]
    monkeypatch.setattr(jobs, "time", types.SimpleNamespace(time=lambda: now[0]))
    store = new_store(open_stores, tmp_path, workers=1, keep_seconds=3600)
    old = wait_state(store, add(store).id, {DONE})
    now[0] += 1800
    young = wait_state(store, add(store).id, {DONE})
    running = add(store, "block")
    assert fake_run.started.wait(5)
    now[0] += 1801  # old finished 3601 s ago, young 1801 s ago
    assert store.clean() == 1
    assert store.get(old.id) is None and not (store.root / old.id).exists()
    assert store.get(young.id).state == DONE and store.get(running.id).state == RUNNING
    now[0] += 10 * 3600  # however old, a job still running is never deleted
    assert store.clean() == 1 and store.get(running.id) is not None


def test_the_cleaner_thread_deletes_old_jobs_by_itself(tmp_path, open_stores, fake_run):
    # keep_seconds tiny: the cleaner wakes every second (its shortest pause) and deletes the finished job unasked.
    store = new_store(open_stores, tmp_path, keep_seconds=0.01)
    job = wait_state(store, add(store).id, {DONE})
    deadline = time.monotonic() + 5
    while store.get(job.id) is not None:
        assert time.monotonic() < deadline, "the cleaner did not delete the old job"
        time.sleep(0.05)
    assert not (store.root / job.id).exists()


def test_a_store_needs_a_worker_and_a_queue_place(tmp_path):
    for kwargs in ({"workers": 0}, {"queue_size": 0}):
        with pytest.raises(EnlivenError):
            JobStore(tmp_path, **kwargs)
