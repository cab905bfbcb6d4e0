"""What a batch is: its jobs, read from a manifest (CSV or JSONL) or made by pairing two folders.

Every job's options are checked here, with the manifest's line, before anything runs: a mistake in the manifest is
one line and no work, while a job whose input turns out unreadable fails alone, with its own line in the report.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from enliven import engines
from enliven.api import VIDEO_SUFFIXES
from enliven.errors import EnlivenError
from enliven.io.images import IMAGE_SUFFIXES
from enliven.motion.audio import AUDIO_SUFFIXES
from enliven.motion.sources import PRESET_PREFIX
from enliven.options import AnimateOptions

DRIVING_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES | AUDIO_SUFFIXES | {".npz"}
MOTIONS = ("driving", "audio", "text", "preset")  # a job has exactly one
COLUMNS = {"source", "output", "voice", "options", *MOTIONS}
# Options the batch sets itself: each job's progress is the batch's bar, and its frames are the worker's business.
BATCH_OPTIONS = {"progress", "on_frame"}
OPTION_NAMES = {f for f in AnimateOptions.__dataclass_fields__} - BATCH_OPTIONS


@dataclass(frozen=True)
class BatchJob:
    """One animation of a batch: ``source`` animated by ``driving`` (a file or ``preset:NAME``) or spoken ``text``,
    written to ``output`` (a file name inside the batch's output folder)."""

    source: str
    driving: str | None
    output: str
    text: str | None = None
    voice: str = "en"
    options: dict = field(default_factory=dict)

    @property
    def engine(self) -> str:
        return self.options.get("engine", "mesh")

    @property
    def still(self) -> bool:
        """A driving picture gives a picture."""
        return self.driving is not None and Path(self.driving).suffix.lower() in IMAGE_SUFFIXES

    def to_dict(self) -> dict:
        return {"source": self.source, "driving": self.driving, "text": self.text, "voice": self.voice,
                "options": self.options, "output": self.output}


def read_manifest(path: str | os.PathLike, defaults: dict | None = None) -> list[BatchJob]:
    """The jobs of a CSV (header row) or JSONL (one object a line) manifest. Columns / keys: ``source``; one of
    ``driving``, ``audio``, ``text`` or ``preset``; optional ``voice``, ``output`` (a file name in the output folder;
    default SOURCE--DRIVING.mp4, or .png for a driving picture) and ``options`` (a JSON object of ``animate``'s
    options); any other key must be one of those options itself (``engine``, ``multiplier``...). Relative paths
    are relative to the manifest's folder. ``defaults``: options of every job, each job's own win."""
    path = Path(path)
    if not path.is_file():
        raise EnlivenError(f"no such manifest: {path}")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise EnlivenError(f"cannot read manifest {path}: {exc}") from None
    if suffix == ".csv":
        rows = _csv_rows(text, path)
    elif suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(text, path)
    else:
        raise EnlivenError(f"a manifest is a .csv or .jsonl file, not {path.name}")
    jobs = [_job(row, path.parent, defaults or {}, f"{path.name} line {line}") for line, row in rows]
    if not jobs:
        raise EnlivenError(f"manifest {path} lists no jobs")
    _check_outputs(jobs)
    return jobs


def pair_folders(sources: str | os.PathLike, driving: str, defaults: dict | None = None) -> list[BatchJob]:
    """Every picture in ``sources`` with every driving file in ``driving`` (a folder, or ``preset:NAME``), outputs
    named SOURCE--DRIVING.mp4 (.png for a driving picture)."""
    pictures = _files(sources, IMAGE_SUFFIXES, "sources")
    if driving.startswith(PRESET_PREFIX):
        motions = [driving]
    else:
        motions = [str(p) for p in _files(driving, DRIVING_SUFFIXES, "driving")]
    jobs = [_job({"source": str(p), "driving": m}, Path("."), defaults or {}, f"{Path(p).name} × {Path(m).name}")
            for p in pictures for m in motions]
    _check_outputs(jobs)
    return jobs


def _files(folder: str | os.PathLike, suffixes: set[str], role: str) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise EnlivenError(f"--{role} takes a folder: {folder} is not one")
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes
                   and not p.name.startswith("."))
    if not found:
        raise EnlivenError(f"no {role} files ({', '.join(sorted(suffixes))}) in {folder}")
    return found


def _csv_rows(text: str, path: Path) -> list[tuple[int, dict]]:
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or "source" not in [n.strip() for n in reader.fieldnames]:
        raise EnlivenError(f"manifest {path.name}: the first row must name the columns, source among them")
    rows = []
    for row in reader:
        if None in row:
            raise EnlivenError(f"{path.name} line {reader.line_num}: more values than columns")
        values = {k.strip(): v.strip() for k, v in row.items() if v is not None and v.strip() != ""}
        if values:
            rows.append((reader.line_num, {k: _csv_value(k, v, path.name, reader.line_num) for k, v in values.items()}))
    return rows


def _csv_value(column: str, value: str, name: str, line: int):
    """A CSV cell: text for paths and words; for an option column, the JSON value it spells (1.2, true) or text."""
    if column in COLUMNS - {"options"}:
        return value
    if column == "options":
        try:
            return json.loads(value)
        except ValueError:
            raise EnlivenError(f"{name} line {line}: options are not a JSON object: {value[:80]!r}") from None
    try:
        return json.loads(value)
    except ValueError:
        return value


def _jsonl_rows(text: str, path: Path) -> list[tuple[int, dict]]:
    rows = []
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError:
            raise EnlivenError(f"{path.name} line {line}: not a JSON object: {raw[:80]!r}") from None
        if not isinstance(row, dict):
            raise EnlivenError(f"{path.name} line {line}: each line must be a JSON object")
        rows.append((line, row))
    return rows


def _job(row: dict, base: Path, defaults: dict, where: str) -> BatchJob:
    try:
        return _checked_job(row, base, defaults)
    except EnlivenError as exc:
        raise EnlivenError(f"{where}: {exc}") from None


def _checked_job(row: dict, base: Path, defaults: dict) -> BatchJob:
    options = dict(row.get("options") or {})
    if not isinstance(options, dict):
        raise EnlivenError("options must be a JSON object of animate's options")
    unknown = sorted(set(row) - COLUMNS - OPTION_NAMES - BATCH_OPTIONS)
    if unknown:
        raise EnlivenError(f"unknown column(s) {', '.join(map(str, unknown))}; columns are {', '.join(sorted(COLUMNS))}"
                           " and animate's options")
    options.update({k: v for k, v in row.items() if k in OPTION_NAMES | BATCH_OPTIONS})
    options = {**defaults, **options}
    taken = sorted(set(options) & BATCH_OPTIONS)
    if taken:
        raise EnlivenError(f"option(s) {', '.join(taken)} are the batch's own")
    AnimateOptions.from_kwargs(**options)  # every check of animate's options, with the manifest's line
    engines.describe(options.get("engine", "mesh"))
    source = row.get("source")
    if not isinstance(source, str) or not source:
        raise EnlivenError("every job needs a source picture")
    given = [m for m in MOTIONS if row.get(m) not in (None, "")]
    if len(given) != 1:
        raise EnlivenError(f"give exactly one motion of {', '.join(MOTIONS)} (got {', '.join(given) or 'none'})")
    motion = given[0]
    value = row[motion]
    if not isinstance(value, str):
        raise EnlivenError(f"{motion} must be text, not {value!r}")
    text = value if motion == "text" else None
    if motion == "preset":
        driving = value if value.startswith(PRESET_PREFIX) else PRESET_PREFIX + value
    elif motion == "driving" and value.startswith(PRESET_PREFIX):
        driving = value
    elif motion in ("driving", "audio"):
        driving = str(base / value)
    else:
        driving = None
    if driving is not None and driving.startswith(PRESET_PREFIX):
        from enliven.motion.presets import get_preset

        get_preset(driving[len(PRESET_PREFIX):])
    voice = row.get("voice") or "en"
    job = BatchJob(str(base / source), driving, "", text, str(voice), options)
    output = row.get("output") or _default_output(job)
    if not isinstance(output, str) or Path(output).name != output or output.startswith("."):
        raise EnlivenError(f"output must be a file name inside the output folder, not {output!r}")
    wanted = {".png", ".jpg", ".jpeg"} if job.still else VIDEO_SUFFIXES
    if Path(output).suffix.lower() not in wanted:
        kind = "a picture (.png, .jpg): the driving is a picture" if job.still else "a video (.mp4)"
        raise EnlivenError(f"output {output} must be {kind}")
    return BatchJob(job.source, driving, output, text, job.voice, options)


def _default_output(job: BatchJob) -> str:
    if job.text is not None:
        motion = "text"
    elif job.driving.startswith(PRESET_PREFIX):
        motion = job.driving[len(PRESET_PREFIX):]
    else:
        motion = Path(job.driving).stem
    return f"{Path(job.source).stem}--{motion}" + (".png" if job.still else ".mp4")


def _check_outputs(jobs: list[BatchJob]) -> None:
    seen: dict[str, int] = {}
    for i, job in enumerate(jobs):
        key = job.output.lower()  # one file on a case-insensitive disk
        if key in seen:
            raise EnlivenError(f"jobs {seen[key] + 1} and {i + 1} both write {job.output}: name their outputs apart")
        seen[key] = i
