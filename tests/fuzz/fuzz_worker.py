"""A long-lived process that runs fuzz cases the way a user would, one after another, and reports how each ended.

Started by ``fuzz_harness.Fuzzer``. Importing enliven, MediaPipe and PyAV takes seconds, a case a fraction of
one: so cases run in this one process, through ``enliven.cli.main`` (exactly what the ``enliven`` command runs)
or ``enliven.api``. The parent owns every time limit: a case that hangs is killed with this whole process.

Protocol: one JSON request per line on stdin, one JSON reply per line on the original stdout. During a case,
file descriptors 1 and 2 go to pipes (so FFmpeg's or MediaPipe's own prints are caught too, and a simulated full
disk cannot stop them); what came through is written to files the parent reads once the case has ended.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import threading
import time
import traceback
from pathlib import Path


def _peak_rss_reset() -> None:
    """Start a new peak-memory measurement (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class _Capture:
    """A pipe that a thread drains into memory: what a case writes to file descriptor ``fd``."""

    MARK = b"\0fuzz-case-end\0"

    def __init__(self, name: str):
        self.read_end, self.write_end = os.pipe()
        self.data = bytearray()
        self.ended = threading.Event()
        threading.Thread(target=self._drain, daemon=True, name=f"fuzz-capture-{name}").start()

    def _drain(self) -> None:
        while chunk := os.read(self.read_end, 65536):
            self.data += chunk
            if self.data.endswith(self.MARK):
                del self.data[-len(self.MARK):]
                self.ended.set()

    def take(self) -> bytes:
        """Everything written since the last take (waits for the pipe to be drained up to now)."""
        self.ended.clear()
        os.write(self.write_end, self.MARK)
        self.ended.wait(30)
        data, self.data = bytes(self.data), bytearray()
        return data


def _run_cli(argv: list[str]) -> int:
    from enliven import cli

    try:
        return int(cli.main(argv) or 0)
    except SystemExit as exc:  # argparse: --help exits 0, a bad option 2
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)


def _run_api(call: str, args: list, kwargs: dict) -> int:
    """An API call as a program would make it: an EnlivenError is the documented failure (exit 2 here);
    anything else escaping is a bug (exit 1, traceback printed as Python would)."""
    from enliven import api
    from enliven.errors import EnlivenError

    try:
        getattr(api, call)(*args, **kwargs)
        return 0
    except EnlivenError as exc:
        message = str(exc)
        print(f"enliven: error: {message}", file=sys.stderr)
        return 2 if message and "\n" not in message else 3  # 3: an error message of several lines


def _warm_up(source: str) -> None:
    """Import everything and run the face models once, so the first case is not charged with it (time and the
    models' start-up prints, which belong to no case)."""
    import tqdm

    from enliven import api, cli  # noqa: F401

    # tqdm keeps one monitor thread per process once a bar has run; it is not a thread a case left behind.
    tqdm.tqdm.monitor_interval = 0
    from enliven.face.analyzer import FaceAnalyzer
    from enliven.io.images import read_image

    image = read_image(source)
    for static in (True, False):
        with FaceAnalyzer(static=static) as analyzer:
            analyzer.detect(image)


def main() -> None:
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    # A full disk is simulated with RLIMIT_FSIZE; its signal would kill the process, where a real full disk
    # fails the write with an error. Ignored, a write past the limit fails with EFBIG: the real case.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    logs = Path(sys.argv[1])
    _warm_up(sys.argv[2])
    captures = {1: _Capture("stdout"), 2: _Capture("stderr")}
    threads_at_rest = threading.active_count()
    import enliven

    replies.write(json.dumps({"ready": True, "pid": os.getpid(), "enliven": enliven.__file__}) + "\n")
    fsize_soft, fsize_hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    for line in sys.stdin:
        request = json.loads(line)
        fds_before = _open_fds()
        saved = os.dup(1), os.dup(2)
        sys.stdout.flush(), sys.stderr.flush()
        for fd, capture in captures.items():
            os.dup2(capture.write_end, fd)
        os.chdir(request["cwd"])
        _peak_rss_reset()
        started = time.monotonic()
        if request.get("fsize") is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (request["fsize"], fsize_hard))
        try:
            if request.get("api"):
                call = request["api"]
                code = _run_api(call["call"], call["args"], call["kwargs"])
            else:
                code = _run_cli(request["argv"])
        except BaseException:  # noqa: BLE001 - what Python would print for an uncaught exception
            traceback.print_exc()
            code = 1
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_soft, fsize_hard))
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])
        elapsed = time.monotonic() - started
        for fd, name in ((1, "stdout"), (2, "stderr")):
            (logs / name).write_bytes(captures[fd].take())
        # Threads an enliven call started must be gone once it returns (a reader stopped early, an encoder
        # that failed): give them a bounded moment, then report the ones left.
        deadline = time.monotonic() + 5.0
        while threading.active_count() > threads_at_rest and time.monotonic() < deadline:
            time.sleep(0.02)
        leftover_threads = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
        reply = {
            "exit": code,
            "seconds": elapsed,
            "peak_rss": _peak_rss(),
            "threads": leftover_threads if threading.active_count() > threads_at_rest else [],
            "leaked_fds": _open_fds() - fds_before,
        }
        os.chdir("/")
        replies.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
