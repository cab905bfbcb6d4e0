"""One job run on a worker, from its inputs' bytes to its output's bytes; and the Ray actor that runs them.

Files travel as bytes (Ray's object store), not as paths: the machines of a cluster need no shared disk, and the
only writer of the output folder is the batch's driver, which renames each result into place whole. A worker that
dies mid-job leaves nothing in the output folder, only its own temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from enliven.errors import EnlivenError


def where() -> str:
    """This worker, for the report: host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_spec(job: dict, source: bytes | None, driving: bytes | None, max_pixels: int | None = None,
             kept: dict | None = None, on_frame: Callable | None = None) -> dict:
    """Run one job (``BatchJob.to_dict()``) on its inputs' bytes (``driving``: None for a preset or text).

    Returns ``{"ok": True, "data": the output's bytes, "frames", "seconds"}``, or ``{"ok": False, "error": one
    line, "retry": whether running it again could help}``: bad input (no face, an unreadable file: an
    ``EnlivenError``) gives the same line every time, so it is not retried; anything else (a bug, memory) may not.
    ``kept``: engines kept loaded across calls (``api.keeping_engines``)."""
    from enliven import api
    from enliven.io.images import pixel_limit

    folder = Path(tempfile.mkdtemp(prefix="enliven-batch-"))
    names: dict[str, str] = {}
    try:
        source_path = _put(folder, "source", job["source"], source, names)
        motion = job["driving"]
        if driving is not None:
            motion = _put(folder, "driving", motion, driving, names)
        output = folder / ("output" + Path(job["output"]).suffix)
        names[str(output)] = job["output"]
        options = dict(job["options"], progress=False, on_frame=on_frame)
        started = time.perf_counter()
        with pixel_limit(max_pixels) if max_pixels else contextlib.nullcontext(), api.keeping_engines(kept):
            if job["text"] is not None:
                result = api.animate_text(source_path, job["text"], output, voice=job["voice"], **options)
            else:
                result = api.animate(source_path, motion, output, **options)
        seconds = time.perf_counter() - started
        return {"ok": True, "data": output.read_bytes(), "frames": result.frames, "seconds": seconds}
    except EnlivenError as exc:
        return {"ok": False, "error": _named(str(exc), names, folder), "retry": False}
    except Exception as exc:  # noqa: BLE001 - a bug or a resource: one line, and the job may be tried again
        line = f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]
        return {"ok": False, "error": _named(line, names, folder), "retry": True}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _put(folder: Path, role: str, original: str, data: bytes, names: dict) -> Path:
    path = folder / (role + Path(original).suffix.lower())
    path.write_bytes(data)
    names[str(path)] = original
    return path


def _named(line: str, names: dict, folder: Path) -> str:
    """An error line naming the job's own files, not the worker's temporary copies."""
    for temporary, original in names.items():
        line = line.replace(temporary, original)
    return line.replace(str(folder) + os.sep, "")


class EngineWorker:
    """The Ray actor (``ray.remote`` is applied where Ray is used, so this module imports without it): one per
    engine and device, running one job at a time and keeping the engine's model loaded between them.

    Made with ``max_concurrency=CONCURRENCY``: ``progress`` answers while ``run`` works (``run`` is still sent one
    job at a time). ``setup``: called once when the worker starts (register a plugin engine, set threads)."""

    CONCURRENCY = 2

    def __init__(self, setup: Callable[[], None] | None = None, max_pixels: int | None = None):
        if setup is not None:
            setup()
        self.max_pixels = max_pixels
        self.kept: dict = {}
        self.frames: tuple[int, int | None] = (0, None)

    def where(self) -> str:
        return where()

    def progress(self) -> tuple[int, int | None]:
        """Frames written of the running job, and of its whole (None if not known)."""
        return self.frames

    def run(self, job: dict, source: bytes | None, driving: bytes | None) -> dict:
        def on_frame(done: int, total: int | None) -> None:
            self.frames = (done, total)

        self.frames = (0, None)
        return dict(run_spec(job, source, driving, self.max_pixels, self.kept, on_frame), worker=where())
