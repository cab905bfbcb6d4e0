"""`enliven batch` and `enliven serve --ray` on a local Ray cluster of 2 CPUs, shared by the tests of this module
(Ray takes seconds to start). Jobs are short: presets at 5 frames/s on a 128-pixel crop."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from enliven import api, cli
from enliven.batch import BatchSettings, jobs_from, pair_folders, read_manifest, run_batch
from enliven.batch.worker import run_spec
from enliven.errors import EnlivenError

ray = pytest.importorskip("ray", reason="the batch extra is not installed (pip install -e '.[batch]')")

FAST = {"fps": 5, "crop_size": 128}  # frames = 5 × the preset's seconds
PRESET_SECONDS = {"mouth": 2, "blink": 3, "nod": 3, "smile": 3}


@pytest.fixture(scope="module")
def cluster():
    """One local Ray for the module; the batch joins it rather than starting its own."""
    # The kill hook below is a function of this module, which Ray's workers cannot import by name.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # num_gpus: a GPU as Ray counts it (nothing here uses one), so that the pools' choice of device shows.
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
             logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """The bundled portrait, a picture without a face (a smooth gradient) and a file that is no picture."""
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "portrait.png").write_bytes(api.bundled_portrait().read_bytes())
    y = np.linspace(0, 255, 200)[:, None].repeat(160, 1)
    gradient = np.stack([y, y[::-1], np.full_like(y, 128)], -1).astype(np.uint8)
    Image.fromarray(gradient).save(folder / "wall.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 this is not a JPEG " * 20)
    return folder


def frames_in(path: Path) -> int:
    with av.open(str(path)) as video:
        return sum(1 for _ in video.decode(video=0))


def leftovers(folder: Path) -> list[str]:
    """Temporary files: what a job that did not finish could have left."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or ".part" in p.name)


def write_manifest(folder: Path, rows: list[dict]) -> Path:
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def good_rows(inputs: Path, presets=("mouth", "blink", "nod", "smile")) -> list[dict]:
    return [{"source": str(inputs / "portrait.png"), "preset": p, "output": f"{p}.mp4", "options": FAST}
            for p in presets]


# --- manifests (no Ray) ---

def test_csv_manifest_reads_paths_options_and_outputs(tmp_path, inputs):
    (tmp_path / "me.png").write_bytes(b"x")
    (tmp_path / "driver.mp4").write_bytes(b"x")
    manifest = tmp_path / "jobs.csv"
    manifest.write_text('source,driving,preset,text,output,multiplier,options\n'
                        'me.png,driver.mp4,,,,1.5,"{""crf"": 20}"\n'
                        'me.png,,nod,,nod.mp4,,\n'
                        'me.png,,,Hello there,,,\n')
    jobs = read_manifest(manifest, defaults={"crf": 30, "engine": "mesh"})
    assert [j.output for j in jobs] == ["me--driver.mp4", "nod.mp4", "me--text.mp4"]
    assert jobs[0].source == str(tmp_path / "me.png") and jobs[0].driving == str(tmp_path / "driver.mp4")
    assert jobs[0].options == {"crf": 20, "multiplier": 1.5, "engine": "mesh"}  # the job's own options win
    assert jobs[1].driving == "preset:nod" and jobs[1].options["crf"] == 30
    assert jobs[2].text == "Hello there" and jobs[2].driving is None


@pytest.mark.parametrize("line, message", [
    ('{"source": "a.png"}', "line 1: give exactly one motion"),
    ('{"source": "a.png", "preset": "nod", "multiplier": 99}', "line 1: multiplier must be between 0 and 10"),
    ('{"source": "a.png", "preset": "nod", "colour": 1}', "line 1: unknown column(s) colour"),
    ('{"source": "a.png", "preset": "nod", "output": "../x.mp4"}', "line 1: output must be a file name"),
    ('{"source": "a.png", "preset": "nod", "progress": false}', "line 1: option(s) progress are the batch's own"),
    ('{"source": "a.png", "driving": "b.jpg", "output": "x.mp4"}', "must be a picture"),
    ('{"source": "a.png", "preset": "nod"}\n{"source": "a.png", "preset": "nod"}', "jobs 1 and 2 both write"),
    ("[1, 2]", "line 1: each line must be a JSON object"),
])
def test_bad_manifest_is_one_line_before_any_work(tmp_path, line, message):
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(line + "\n")
    with pytest.raises(EnlivenError, match=re.escape(message)):
        read_manifest(manifest)


def test_cli_bad_manifest_exits_2_with_one_line(tmp_path, capsys):
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("source,preset\nme.png,nod,extra\n")
    assert cli.main(["batch", str(manifest), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == "enliven: error: jobs.csv line 2: more values than columns\n"
    assert not (tmp_path / "out").exists()
    assert cli.main(["batch", "-o", str(tmp_path / "out")]) == 2  # neither a manifest nor folders


def test_folders_pair_every_source_with_every_driving(tmp_path, inputs):
    drivers = tmp_path / "drivers"
    drivers.mkdir()
    for name in ("a.mp4", "b.npz", "c.png", "notes.txt"):
        (drivers / name).write_bytes(b"x")
    jobs = pair_folders(inputs, str(drivers))
    assert len(jobs) == 3 * 3  # three pictures (broken.jpg is one by its name) × three motions; notes.txt is none
    assert {j.output for j in jobs if Path(j.source).name == "wall.png"} == {
        "wall--a.mp4", "wall--b.mp4", "wall--c.png"}
    assert len(jobs_from(sources=str(inputs), driving="preset:nod")) == 3


def test_worker_keeps_the_engine_across_jobs(inputs, monkeypatch):
    """Two jobs with one engine's options on one worker build the engine once."""
    from enliven import engines

    built = []
    create = engines.create
    monkeypatch.setattr(engines, "create", lambda *a, **k: built.append(a) or create(*a, **k))
    job = {"source": "me.png", "driving": "preset:mouth", "text": None, "voice": "en", "options": FAST,
           "output": "out.mp4"}
    kept: dict = {}
    portrait = (inputs / "portrait.png").read_bytes()
    for _ in range(2):
        out = run_spec(job, portrait, None, kept=kept)
        assert out["ok"] and out["frames"] == 10 and out["data"][4:8] == b"ftyp"
    assert len(built) == 1
    assert run_spec(dict(job, source="wall.png"), (inputs / "wall.png").read_bytes(), None, kept=kept) == {
        "ok": False, "error": "no face found in wall.png", "retry": False}


# --- on Ray ---

def test_six_jobs_four_done_two_reported(cluster, inputs, tmp_path):
    rows = good_rows(inputs) + [
        {"source": str(inputs / "broken.jpg"), "preset": "mouth", "output": "broken.mp4", "options": FAST},
        {"source": str(inputs / "wall.png"), "preset": "mouth", "output": "wall.mp4", "options": FAST},
    ]
    out = tmp_path / "out"
    result = run_batch(read_manifest(write_manifest(tmp_path, rows)), out, BatchSettings(), progress=False)
    assert result.counts == {"done": 4, "failed": 2}
    assert result.workers == 2
    for preset, seconds in PRESET_SECONDS.items():
        assert frames_in(out / f"{preset}.mp4") == 5 * seconds
    assert not (out / "broken.mp4").exists() and not (out / "wall.mp4").exists()
    assert leftovers(out) == []
    report = [json.loads(line) for line in (out / "batch-report.jsonl").read_text().splitlines()]
    assert [r["output"] for r in report] == [row["output"] for row in rows]
    failed = {r["output"]: r for r in report if r["state"] == "failed"}
    assert failed["wall.mp4"]["error"] == f"no face found in {inputs / 'wall.png'}"
    assert failed["broken.mp4"]["error"].startswith(f"cannot read image {inputs / 'broken.jpg'}")
    for r in failed.values():
        assert "\n" not in r["error"] and r["attempts"] == 1  # bad input is not retried: it would fail the same
    assert all(r["seconds"] > 0 and r["frames"] > 0 and r["worker"] for r in report if r["state"] == "done")
    summary = result.summary()
    assert "done          4" in summary and "failed        2" in summary and "wall.mp4" in summary


def test_gpu_engines_ask_for_a_gpu_each_and_cpu_engines_fan_out(cluster, inputs, tmp_path):
    from enliven.batch.runner import JobRecord, _Pool, _ReportWriter

    def pool(engine_options: dict, engine: str = "landmark-diffusion", jobs: int = 3):
        options = {"engine": engine, "engine_options": engine_options} if engine_options is not None else {}
        records = [JobRecord(i, job) for i, job in enumerate(read_manifest(write_manifest(tmp_path, [
            {"source": "a.png", "preset": "nod", "output": f"{i}.mp4", "options": options} for i in range(jobs)])))]
        return _Pool(records, tmp_path, BatchSettings(), None, _ReportWriter(tmp_path / "r.jsonl", records), None)

    on_gpu = pool({})
    assert (on_gpu.resources, on_gpu.size) == ({"num_cpus": 1.0, "num_gpus": 1.0}, 1)  # one worker per GPU
    on_cpu = pool({"device": "cpu"})
    assert (on_cpu.resources, on_cpu.size) == ({"num_cpus": 1.0}, 2)
    mesh = pool(None)
    assert (mesh.resources, mesh.size) == ({"num_cpus": 1.0}, 2)  # as many as the cores
    assert pool(None, jobs=1).size == 1  # no idle workers


def _die_mid_job_once(marker: str) -> None:
    """Worker set-up: the first worker to write a job's third frame kills its own process (SIGKILL: nothing of
    Python's clean-up runs), noting its pid in ``marker``; every later worker runs normally."""
    from enliven.io import video

    write = video.VideoWriter.write
    written = [0]

    def dying_write(self, picture):
        written[0] += 1
        if written[0] == 3:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return write(self, picture)

    video.VideoWriter.write = dying_write


def test_killed_worker_job_completes_on_retry(cluster, inputs, tmp_path):
    marker = tmp_path / "killed"
    out = tmp_path / "out"
    jobs = read_manifest(write_manifest(tmp_path, good_rows(inputs, ("nod", "smile"))))
    settings = BatchSettings(setup=functools.partial(_die_mid_job_once, str(marker)))
    result = run_batch(jobs, out, settings, progress=False)
    killed = marker.read_text()
    assert result.counts == {"done": 2}
    retried = [r for r in result.records if r.attempts == 2]
    assert len(retried) == 1 and [r.attempts for r in result.records].count(1) == 1
    assert not retried[0].worker.endswith(f":{killed}")  # finished by another worker
    assert frames_in(out / retried[0].job.output) == 15
    assert leftovers(out) == []


def test_interrupted_batch_resumes_with_unfinished_jobs_only(cluster, inputs, tmp_path):
    out = tmp_path / "out"
    jobs = read_manifest(write_manifest(tmp_path, good_rows(inputs)))

    def interrupt(record):
        raise KeyboardInterrupt  # Ctrl-C, as the first job finishes

    with pytest.raises(KeyboardInterrupt):
        run_batch(jobs, out, BatchSettings(), progress=False, on_job=interrupt)
    report = [json.loads(line) for line in (out / "batch-report.jsonl").read_text().splitlines()]
    finished = [r["output"] for r in report if r["state"] == "done"]
    assert len(finished) == 1 and [r["state"] for r in report].count("pending") == 3
    assert sorted(p.name for p in out.glob("*.mp4")) == finished and leftovers(out) == []
    before = (out / finished[0]).stat()
    unfinished = next(r["output"] for r in report if r["state"] == "pending")
    stale = out / f".{Path(unfinished).stem}.k2j4x9.part.mp4"  # as a driver killed mid-rename would leave it
    stale.write_bytes(b"half a video")

    ran = []
    result = run_batch(jobs, out, BatchSettings(), progress=False, on_job=lambda r: ran.append(r.job.output))
    assert sorted(ran) == sorted(set(j.output for j in jobs) - set(finished))
    assert result.counts == {"done": 3, "skipped": 1}
    assert not stale.exists() and leftovers(out) == []
    after = (out / finished[0]).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # left as it was
    assert all(frames_in(out / f"{p}.mp4") == 5 * s for p, s in PRESET_SECONDS.items())


def test_serve_ray_completes_a_job_through_the_api(cluster, tmp_path, monkeypatch):
    pytest.importorskip("fastapi", reason="the app extra is not installed")
    from fastapi.testclient import TestClient

    from enliven.serve import jobs
    from enliven.serve.http import create_app

    def not_here(*args):
        raise AssertionError("ran in the server's process")

    monkeypatch.setattr(jobs, "run_job", not_here)  # the job must run on the cluster to complete
    app = create_app(tmp_path / "data", workers=1, ray_address="auto")
    with TestClient(app, base_url="http://enliven.test") as client:
        response = client.post("/v1/animate", data={"driving": "preset:mouth", "options": json.dumps(FAST)})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        deadline = time.monotonic() + 120
        while (state := client.get(f"/v1/jobs/{job_id}").json())["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        assert state["state"] == "done", state
        result = client.get(f"/v1/jobs/{job_id}/result")
        assert result.status_code == 200
    video = tmp_path / "result.mp4"
    video.write_bytes(result.content)
    assert frames_in(video) == 10


def _slow_frames() -> None:
    """Worker set-up: each frame written takes 0.1 s more, so that a job runs long enough to be watched."""
    from enliven.io import video

    write = video.VideoWriter.write

    def slow_write(self, picture):
        time.sleep(0.1)
        return write(self, picture)

    video.VideoWriter.write = slow_write


def test_serve_ray_reports_the_workers_progress(cluster, tmp_path):
    from enliven.batch.dispatch import RayDispatcher
    from enliven.serve.jobs import Job

    seen = []
    dispatcher = RayDispatcher("auto", workers=1, setup=_slow_frames)
    job = Job("0" * 32, None, "preset:smile", options=FAST)  # 15 frames: 1.5 s or more, watched every 0.5 s
    try:
        dispatcher(tmp_path, job, lambda done, total: seen.append((done, total)))
    finally:
        dispatcher.close()
    assert frames_in(tmp_path / "result.mp4") == 15
    assert any(0 < done < 15 and total == 15 for done, total in seen), seen
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
