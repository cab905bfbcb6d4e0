"""`enliven serve` as a client sees it, driven with httpx.

Most tests call the FastAPI app in-process (fastapi.testclient: the same ASGI app, middleware and worker threads as
a server, without starting a process); one test runs the real `enliven serve` process, for what only a process
shows: the command line, a restart on the same data folder and a SIGTERM stop with a job running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import wave
from pathlib import Path

import av
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the app extra is not installed (pip install -e '.[app]')")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from enliven import api, cli  # noqa: E402
from enliven.serve import jobs  # noqa: E402
from enliven.serve.http import create_app  # noqa: E402
from enliven.serve.jobs import INTERRUPTED  # noqa: E402

UPLOAD_LIMIT_MB = 1  # small, so that the 413 test uploads little
MAX_PIXELS = 1_000_000
DRIVER_FRAMES, DRIVER_FPS = 12, 6.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`enliven serve` in a child process, with the limits of the in-process app."""

    def __init__(self, data_dir: Path):
        self.data_dir, self.port, self.process = data_dir, free_port(), None

    def start(self) -> None:
        command = [sys.executable, "-m", "enliven", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir),
                   "--max-upload-mb", str(UPLOAD_LIMIT_MB), "--max-upload-pixels", str(MAX_PIXELS)]
        self.log = open(self.data_dir.parent / "server.log", "ab")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.data_dir.parent / "server.log").read_text()
            try:
                if httpx.get(f"{self.url}/openapi.json", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("the server did not come up in 60 s")

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(60)
        self.log.close()
        return status

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def in_process(data_dir: Path, **options) -> TestClient:
    """The API in this process; use as ``with in_process(...) as client`` (the exit stops its workers, as a server's
    shutdown does)."""
    app = create_app(data_dir, max_upload_bytes=UPLOAD_LIMIT_MB * 1024 * 1024, max_pixels=MAX_PIXELS, **options)
    return TestClient(app, base_url="http://enliven.test")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve") / "data"


@pytest.fixture(scope="module")
def client(data_dir):
    with in_process(data_dir) as client:
        yield client


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    """A 2 s driving clip at 6 fps (the bundled portrait opening its mouth): 12 frames, quick to animate."""
    path = tmp_path_factory.mktemp("driver") / "driver.mp4"
    api.demo(path, preset="mouth", fps=DRIVER_FPS, progress=False)
    return path


def wait(client, job_id: str, until=("done", "failed", "cancelled"), seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = client.get(f"/v1/jobs/{job_id}").json()
        if status["state"] in until:
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {status} after {seconds} s")


def submit(client, files=None, **fields) -> httpx.Response:
    data = {k: (json.dumps(v) if k == "options" else v) for k, v in fields.items()}
    return client.post("/v1/animate", files=files, data=data)


def mp4_frames(data: bytes, path: Path) -> tuple[int, float]:
    path.write_bytes(data)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames, float(stream.average_rate)


def test_submit_poll_download(client, driver, tmp_path):
    with open(api.bundled_portrait(), "rb") as source, open(driver, "rb") as driving:
        response = submit(client, files={"source": ("me.png", source), "driving": ("driver.mp4", driving)},
                          options={"multiplier": 1.2, "controls": {"smile": 0.3}})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    seen = []
    while (status := client.get(f"/v1/jobs/{job_id}").json())["state"] not in ("done", "failed"):
        seen.append(status["progress"])
        time.sleep(0.05)
    assert status == {"id": job_id, "state": "done", "progress": 1.0, "error": None}
    assert any(0 < p < 1 for p in seen), seen  # progress was reported between frames
    result = client.get(f"/v1/jobs/{job_id}/result")
    assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
    assert mp4_frames(result.content, tmp_path / "out.mp4") == (DRIVER_FRAMES, DRIVER_FPS)


def test_preset_and_driving_image(client, tmp_path):
    job_id = submit(client, driving="preset:blink", options={"fps": 4}).json()["id"]
    assert wait(client, job_id)["state"] == "done"
    assert mp4_frames(client.get(f"/v1/jobs/{job_id}/result").content, tmp_path / "b.mp4") == (12, 4.0)
    with open(api.bundled_portrait(), "rb") as picture:  # a driving picture gives a still
        job_id = submit(client, files={"driving": ("face.png", picture)},
                        options={"controls": {"wink": 1}}).json()["id"]
    assert wait(client, job_id)["state"] == "done"
    result = client.get(f"/v1/jobs/{job_id}/result")
    assert result.headers["content-type"] == "image/png" and result.content.startswith(b"\x89PNG")


def test_text_driving(client, tmp_path):
    if shutil.which("espeak-ng") is None and not os.environ.get("CI"):
        pytest.skip("espeak-ng is not installed here (.ci/run installs it)")
    job_id = submit(client, text="Hi.", options={"fps": 5}).json()["id"]
    assert wait(client, job_id)["state"] == "done", client.get(f"/v1/jobs/{job_id}").json()
    frames, _ = mp4_frames(client.get(f"/v1/jobs/{job_id}/result").content, tmp_path / "t.mp4")
    assert frames >= 2


def test_cancel_a_running_job_leaves_no_file(client, data_dir):
    job_id = submit(client, driving="preset:demo").json()["id"]  # 125 frames: long enough to catch running
    wait(client, job_id, until=("running",))
    cancelled = client.delete(f"/v1/jobs/{job_id}")
    assert cancelled.status_code == 202
    assert wait(client, job_id)["state"] == "cancelled"
    assert client.get(f"/v1/jobs/{job_id}/result").status_code == 409
    assert sorted(p.name for p in (data_dir / "jobs" / job_id).iterdir()) == ["job.json"]  # no partial mp4


def test_a_finished_job_is_deleted(client, data_dir):
    job_id = submit(client, driving="preset:blink", options={"fps": 2}).json()["id"]
    wait(client, job_id)
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert not (data_dir / "jobs" / job_id).exists()


def test_oversize_upload_is_refused_with_413(client, data_dir):
    big = b"\0" * (UPLOAD_LIMIT_MB * 1024 * 1024 + 1)
    response = client.post("/v1/animate", files={"driving": ("big.mp4", big)})
    assert response.status_code == 413 and "limit" in response.json()["error"]

    def chunks():  # a file part sent without Content-Length: refused as the bytes stream past the limit
        yield b'--x\r\nContent-Disposition: form-data; name="driving"; filename="big.mp4"\r\n\r\n'
        for _ in range(2 * UPLOAD_LIMIT_MB * 16):
            yield b"\0" * 65536

    response = client.post("/v1/animate", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413
    assert all((p / "job.json").exists() for p in (data_dir / "jobs").iterdir())  # no half-submitted job


def test_bad_input_is_400_with_the_cli_line(client, data_dir, tmp_path, capsys):
    assert cli.main(["animate", str(api.bundled_portrait()), "preset:blink", "-o", str(tmp_path / "o.mp4"),
                     "--multiplier", "99", "-q"]) == cli.EXIT_BAD_INPUT
    cli_line = capsys.readouterr().err.strip()
    response = submit(client, driving="preset:blink", options={"multiplier": 99})
    assert response.status_code == 400
    assert f"enliven: error: {response.json()['error']}" == cli_line
    for fields, words in [
        (dict(driving="preset:nope"), "unknown motion preset"),
        (dict(driving="/etc/passwd"), "uploaded file or preset"),
        (dict(driving="preset:blink", options={"weights": "/etc"}), "cannot be set by a client"),
        (dict(driving="preset:blink", options={"engine": "nope"}), "unknown engine"),
        (dict(driving="preset:blink", text="hi"), "exactly one motion"),
        (dict(), "exactly one motion"),
    ]:
        response = submit(client, **fields)
        assert response.status_code == 400 and words in response.json()["error"], (fields, response.text)
    response = client.post("/v1/animate", files={"driving": ("x.mp4", b"not a video")})
    assert response.status_code == 400 and "cannot read video driving.mp4" in response.json()["error"]
    assert str(data_dir) not in response.json()["error"]  # the client's file name, not the server's path


def test_pixel_limit_on_uploads(client, tmp_path):
    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("RGB", (1200, 1000)).save(big)  # 1.2 MP, over this server's 1 MP, yet a small file
    with open(big, "rb") as picture:
        response = client.post("/v1/animate", files={"source": ("big.png", picture)}, data={"driving": "preset:blink"})
    assert response.status_code == 400 and "pixels" in response.json()["error"]


def test_only_job_ids_are_looked_up(client):
    for bad in ("..%2F..%2Fetc%2Fpasswd", "abc", "0" * 31 + "G", "0" * 32 + "/../x", "0" * 32):
        assert client.get(f"/v1/jobs/{bad}").status_code == 404, bad
        assert client.get(f"/v1/jobs/{bad}/result").status_code == 404, bad
    assert client.get("/docs").status_code == 200
    assert "/v1/animate" in client.get("/openapi.json").json()["paths"]


def speech_wav(path: Path, seconds: float = 1.2, rate: int = 16000) -> Path:
    """A tone switched on and off twice a second: loud and silent stretches, as speech has, for the mouth to
    follow."""
    t = np.arange(int(rate * seconds)) / rate
    samples = 0.5 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(rate)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


def test_audio_driving_upload_gives_a_video_with_that_sound(client, tmp_path):
    wav = speech_wav(tmp_path / "speech.wav")
    with open(wav, "rb") as audio:
        response = submit(client, files={"driving": ("hello.wav", audio)}, options={"fps": 5})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert wait(client, job_id) == {"id": job_id, "state": "done", "progress": 1.0, "error": None}
    result = client.get(f"/v1/jobs/{job_id}/result")
    assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
    path = tmp_path / "out.mp4"
    assert mp4_frames(result.content, path) == (6, 5.0)  # 1.2 s of audio at 5 fps
    with av.open(str(path)) as container:  # the upload's sound is muxed in, as the CLI does
        (sound,) = container.streams.audio
        assert abs(float(sound.duration * sound.time_base) - 1.2) < 0.1


@pytest.fixture()
def blocking_run(monkeypatch):
    """``jobs.run_job`` replaced: each job waits for ``release`` (no animation: these tests are about the queue and
    the clock, and a blocked renderer is the cheapest busy worker)."""
    release, started = threading.Event(), threading.Semaphore(0)

    def run(folder, job, on_frame):
        started.release()
        while not release.wait(0.01):
            on_frame(1, 10)
        (folder / job.result).write_bytes(b"video")

    monkeypatch.setattr(jobs, "run_job", run)
    yield types.SimpleNamespace(release=release, started=started)
    release.set()


def test_a_full_queue_answers_503_and_keeps_no_upload(tmp_path, blocking_run):
    data = tmp_path / "data"
    with in_process(data, workers=1, queue_size=1) as client:
        running = submit(client, driving="preset:blink").json()["id"]
        assert blocking_run.started.acquire(timeout=10)  # the one worker is busy
        waiting = submit(client, driving="preset:blink")
        assert waiting.status_code == 202  # the one queue place
        with open(api.bundled_portrait(), "rb") as picture:  # with an upload, to see that it is not kept
            full = submit(client, files={"source": ("me.png", picture)}, driving="preset:blink")
        assert full.status_code == 503 and "queue is full" in full.json()["error"]
        assert full.headers["retry-after"] == "30"
        assert sorted(p.name for p in (data / "jobs").iterdir()) == sorted([running, waiting.json()["id"]])
        blocking_run.release.set()
        assert wait(client, waiting.json()["id"], seconds=10)["state"] == "done"
        assert submit(client, driving="preset:blink").status_code == 202  # room again


def test_jobs_finished_longer_than_keep_hours_ago_are_deleted(tmp_path, blocking_run, monkeypatch):
    # A fake clock for the job store: two hours pass in no time. keep_hours=1 must mean 3600 s.
    now = [time.time()]
    monkeypatch.setattr(jobs, "time", types.SimpleNamespace(time=lambda: now[0]))
    blocking_run.release.set()
    data = tmp_path / "data"
    with in_process(data, keep_hours=1) as client:
        old = submit(client, driving="preset:blink").json()["id"]
        wait(client, old, seconds=10)
        now[0] += 1800
        young = submit(client, driving="preset:blink").json()["id"]
        wait(client, young, seconds=10)
        now[0] += 1801  # old finished 3601 s ago, young 1801 s ago
        assert client.app.state.store.clean() == 1  # what the cleaner thread runs every 15 min
        assert client.get(f"/v1/jobs/{old}").status_code == 404 and not (data / "jobs" / old).exists()
        assert client.get(f"/v1/jobs/{young}").json()["state"] == "done"
        assert client.get(f"/v1/jobs/{young}/result").content == b"video"


def test_a_restart_keeps_finished_jobs_and_sigterm_requeues_the_running_one(tmp_path):
    """The only test with a real `enliven serve` process: jobs made by one server (in-process here) are read back by
    the next, started from the command line; SIGTERM stops it cleanly with a job running, which goes back to the
    queue for the start after."""
    from PIL import Image

    data = tmp_path / "data"
    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 64), (200, 180, 160)).save(blank)
    with in_process(data) as client:
        done = submit(client, driving="preset:blink", options={"fps": 2}).json()["id"]
        wait(client, done)
        with open(blank, "rb") as picture:  # no face in it: fails in the worker, not at submission
            failed = submit(client, files={"source": ("blank.png", picture)}, driving="preset:blink").json()["id"]
        assert wait(client, failed)["error"] == "no face found in source.png"  # the job's file name, not its folder
        before = client.get(f"/v1/jobs/{done}/result").content
    crashed = "f" * 32  # what a server killed mid-job leaves: a job.json that says running
    (data / "jobs" / crashed).mkdir()
    (data / "jobs" / crashed / "job.json").write_text(json.dumps(
        {"id": crashed, "source": None, "driving": "preset:blink", "state": "running", "created": time.time()}))

    server = Server(data)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as again:
            assert again.get(f"/v1/jobs/{done}").json()["state"] == "done"
            assert again.get(f"/v1/jobs/{done}/result").content == before
            status = again.get(f"/v1/jobs/{failed}").json()
            assert status["state"] == "failed" and status["error"]
            assert again.get(f"/v1/jobs/{crashed}").json()["error"] == INTERRUPTED
            running = submit(again, driving="preset:demo").json()["id"]  # 125 frames: still running at the stop
            wait(again, running, until=("running",))
    finally:
        status = server.stop()
    # uvicorn shuts down gracefully (the lifespan's store.close runs), then re-raises the SIGTERM it caught, so the
    # CLI exits as for any command stopped by SIGTERM.
    log = (tmp_path / "server.log").read_text()
    assert status == cli.EXIT_TERMINATED and "Application shutdown complete" in log, log
    job = json.loads((data / "jobs" / running / "job.json").read_text())
    assert (job["state"], job["progress"], job["error"]) == ("queued", 0.0, None)
    assert sorted(p.name for p in (data / "jobs" / running).iterdir()) == ["job.json"]  # no partial mp4
