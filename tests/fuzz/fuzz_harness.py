"""Run fuzz cases in a worker process and judge how each ended, by what a user would see and find on disk.

A case passes when, within the time limit, it ends in one of two ways:
- **done**: exit 0, the output is a complete file of its kind (every video frame decodes, the picture loads,
  the template's arrays read without pickle), no traceback or Python warning on stderr;
- **refused**: exit 2 with one line ``enliven: error: ...`` on stderr (argparse's usage block may come before
  it), and no output: a file already at the output path is left byte for byte as it was.
Either way nothing else may appear on disk (no ``.part`` file, nothing in the temporary folder), no input may
change, no thread the call started may outlive it, no file descriptor may stay open, and the peak memory of the
case stays under ``MEMORY_LIMIT``. Anything else is a failure: a traceback, a hang, a crash of the process, junk
left behind, an output that does not decode.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image

WORKER = Path(__file__).with_name("fuzz_worker.py")
CASE_SECONDS = float(os.environ.get("ENLIVEN_FUZZ_CASE_SECONDS", 90))  # a few seconds each; past this it hung
START_SECONDS = 300  # importing and warming up the worker on a loaded CI machine
MEMORY_LIMIT = 3 * 2**30  # the worker idles near 0.5 GiB; a case that needs 3 GiB on 160-px inputs is a bug
UNPICKLED_MARK = Path("/tmp/enliven-fuzz-unpickled")  # fuzz_media._Sentinel creates it if ever unpickled
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
ERROR_LINE = re.compile(r"^enliven[\w -]*: error: \S")
PYTHON_WARNING = re.compile(r"\b\w*Warning: ")


@dataclass
class Case:
    """One run: a command line (or an API call) in its own folder. ``kind`` groups cases in the counts;
    ``label`` says what the case is, enough to rebuild it; ``expect`` narrows the allowed ends ("done" for
    valid inputs that must work, "refused" for inputs that must be refused, None for either)."""

    kind: str
    label: str
    folder: Path
    output: Path | None
    argv: list[str] | None = None
    api: dict | None = None
    fsize: int | None = None
    expect: str | None = None


@dataclass
class Outcome:
    case: Case
    exit: int | None
    seconds: float
    peak_rss: int
    stderr: str
    problems: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.problems:
            return "failed"
        return "done" if self.exit == 0 else "refused"

    def describe(self) -> str:
        tail = self.stderr.strip().splitlines()[-6:]
        head = f"[{self.case.kind}] {self.case.label}\n  argv: {self.case.argv or self.case.api}\n"
        return (head + f"  exit {self.exit} after {self.seconds:.1f} s: " + "; ".join(self.problems)
                + "\n  stderr: " + "\n          ".join(tail))


class Tally:
    """Counts of every case run in this session, by kind and verdict, and the failures, for the summary."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.failures: list[Outcome] = []
        self.problem_classes: Counter[tuple[str, str]] = Counter()
        self.seconds: Counter[str] = Counter()
        self.slowest: dict[str, float] = {}
        self.peak_rss = 0

    def add(self, outcome: Outcome) -> None:
        kind = outcome.case.kind
        self.counts[(kind, outcome.verdict)] += 1
        self.seconds[kind] += outcome.seconds
        self.slowest[kind] = max(self.slowest.get(kind, 0.0), outcome.seconds)
        self.peak_rss = max(self.peak_rss, outcome.peak_rss)
        if outcome.problems:
            self.failures.append(outcome)
            for problem in outcome.problems:
                self.problem_classes[(outcome.case.kind, problem.split(":")[0])] += 1

    def lines(self) -> list[str]:
        kinds = sorted({kind for kind, _ in self.counts})
        total = sum(self.counts.values())
        failed = sum(self.counts[(k, "failed")] for k in kinds)
        out = [f"fuzz cases: {total} run, {failed} failed; highest peak memory of a case "
               f"{self.peak_rss / 2**30:.2f} GiB (limit {MEMORY_LIMIT / 2**30:.0f} GiB)"]
        for kind in kinds:
            n = {v: self.counts[(kind, v)] for v in ("done", "refused", "failed")}
            out.append(f"  {kind:<16} {sum(n.values()):4d} cases: {n['done']:4d} done, {n['refused']:4d} refused, "
                       f"{n['failed']:4d} failed; {self.seconds[kind]:6.1f} s in all, slowest "
                       f"{self.slowest[kind]:.1f} s")
        for (kind, problem), count in sorted(self.problem_classes.items()):
            out.append(f"  failed {kind}/{problem}: {count}")
        return out


TALLY = Tally()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(folder: Path) -> dict[Path, str]:
    """Each path under ``folder``: a digest of a regular file's bytes, else what it is (a FIFO is never opened:
    reading one would wait for a writer forever)."""
    return {p: "link" if p.is_symlink() else "dir" if p.is_dir() else _digest(p) if p.is_file() else "special"
            for p in folder.rglob("*")}


def _check_output(path: Path) -> str | None:
    """Why ``path`` is not a complete output of its kind (None if it is)."""
    suffix = path.suffix.lower()
    try:
        if suffix in VIDEO_SUFFIXES:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    return "output video has no video stream"
                frames = sum(1 for _ in container.decode(video=0))
            return None if frames else "output video has no frames"
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                for key in data.files:
                    data[key]
            return None
        with Image.open(path) as image:
            image.load()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure to read it back is the finding
        return f"output does not read back: {type(exc).__name__}: {exc}"


def _stderr_problems(text: str, code: int) -> list[str]:
    problems = []
    if "Traceback (most recent call last)" in text:
        problems.append("traceback")
    lines = [line for line in text.replace("\r", "\n").splitlines() if line.strip()]
    if code == 0:
        warnings = [line for line in lines if PYTHON_WARNING.search(line)]
        if warnings:
            problems.append(f"warning printed: {warnings[0][:160]}")
        return problems
    if code == 2:
        if lines and lines[0].startswith("usage:"):  # argparse: its usage block, then its one error line
            lines = [line for line in lines if not line.startswith(("usage:", " "))]
        if len(lines) != 1 or not ERROR_LINE.match(lines[0]):
            problems.append(f"not one error line: {len(lines)} line(s): {' | '.join(lines[:3])[:300]}")
    return problems


class Fuzzer:
    """Owns the worker process; ``run`` executes one case and returns its judged ``Outcome``."""

    def __init__(self, workdir: Path, source_picture: Path, src: str | None = None):
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.tmp = workdir / "tmp"  # the worker's TMPDIR: must be empty after every case
        self.logs.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.source_picture = source_picture
        self.src = src  # another enliven source tree to fuzz (ENLIVEN_FUZZ_SRC), e.g. an older checkout
        self.process: subprocess.Popen | None = None

    def _start(self) -> None:
        env = dict(os.environ, TMPDIR=str(self.tmp), PYTHONUNBUFFERED="1")
        if self.src:
            env["PYTHONPATH"] = self.src + os.pathsep + env.get("PYTHONPATH", "")
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), str(self.logs), str(self.source_picture)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.logs / "worker.log", "ab"),
            env=env, start_new_session=True, text=True,
        )
        reply = self._reply(START_SECONDS)
        if not reply or not reply.get("ready"):
            self.stop()
            raise RuntimeError("the fuzz worker did not start; see " + str(self.logs / "worker.log"))
        if self.src and not Path(reply["enliven"]).resolve().is_relative_to(Path(self.src).resolve()):
            self.stop()
            raise RuntimeError(f"the fuzz worker imported {reply['enliven']}, not the tree in {self.src}")
        for leftover in self.tmp.iterdir():  # what the models' start-up wrote is not a case's
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()

    def _reply(self, seconds: float) -> dict | None:
        """The worker's next reply line, or None if it sent none within ``seconds`` or died."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(seconds):
                return None
        line = self.process.stdout.readline()
        return json.loads(line) if line else None

    def stop(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # the worker and anything it started (espeak-ng)
            except ProcessLookupError:
                pass
            self.process.wait()
            self.process = None

    def run(self, case: Case) -> Outcome:
        if self.process is None or self.process.poll() is not None:
            self._start()
        UNPICKLED_MARK.unlink(missing_ok=True)
        before = _snapshot(case.folder)
        request = {"cwd": str(case.folder), "argv": case.argv, "api": case.api, "fsize": case.fsize}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self._reply(CASE_SECONDS)
        problems = []
        if reply is None:
            try:  # the reply pipe closed: give the process a moment to be seen dead
                died = self.process.wait(5)
            except subprocess.TimeoutExpired:
                died = None
            problems.append(f"hang: no end within {CASE_SECONDS:.0f} s" if died is None
                            else f"crash: the process died ({'signal ' + str(-died) if died < 0 else died})")
            self.stop()
            reply = {"exit": None, "seconds": CASE_SECONDS, "peak_rss": 0, "threads": [], "leaked_fds": 0}
        stderr = (self.logs / "stderr").read_text(errors="replace") if reply["exit"] is not None else ""
        outcome = Outcome(case, reply["exit"], reply["seconds"], reply["peak_rss"], stderr, problems)
        if reply["exit"] is not None:
            self._judge(outcome, before, reply)
        TALLY.add(outcome)
        return outcome

    def _judge(self, outcome: Outcome, before: dict[Path, str], reply: dict) -> None:
        case, code, problems = outcome.case, outcome.exit, outcome.problems
        if code not in (0, 2):
            problems.append(f"exit code {code}")
        if case.expect == "done" and code != 0:
            problems.append("refused a valid input")
        if case.expect == "refused" and code == 0:
            problems.append("accepted an input it must refuse")
        problems += _stderr_problems(outcome.stderr, code)
        after = _snapshot(case.folder)
        output = case.output.resolve() if case.output else None
        for path, digest in after.items():
            if path not in before and not (code == 0 and path.resolve() == output):
                problems.append(f"left behind: {path.relative_to(case.folder)}")
            elif path in before and digest != before[path] and not (code == 0 and path.resolve() == output):
                problems.append(f"changed: {path.relative_to(case.folder)}")
        problems += [f"deleted: {p.relative_to(case.folder)}" for p in before if p not in after]
        if code == 0 and output is not None:
            why = _check_output(output) if output.exists() else "no output file"
            if why:
                problems.append(f"bad output: {why}")
        leftovers = list(self.tmp.iterdir())
        if leftovers:
            problems.append(f"temporary left behind: {', '.join(p.name for p in leftovers[:3])}")
            for leftover in leftovers:
                shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink()
        if reply["threads"]:
            problems.append(f"threads still running: {', '.join(reply['threads'])}")
        if reply["leaked_fds"] > 0:
            problems.append(f"file descriptors left open: {reply['leaked_fds']}")
        if reply["peak_rss"] > MEMORY_LIMIT:
            problems.append(f"memory: peak {reply['peak_rss'] / 2**30:.1f} GiB")
        if UNPICKLED_MARK.exists():
            problems.append("unpickled: a template's pickle ran")
