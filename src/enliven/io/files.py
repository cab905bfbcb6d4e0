"""Input checks, and outputs written to a temporary file beside the target, renamed into place when complete."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from enliven.errors import EnlivenError

# Why a write fails though the output was checked writable beforehand: the disk filled up (or the file size or
# quota limit was reached), the device failed, or it became read-only meanwhile.
WRITE_FAILURES = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO, errno.EROFS}


def require_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it is a non-empty file; otherwise a clear error."""
    path = Path(path)
    if not path.is_file():
        raise EnlivenError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise EnlivenError(f"file is empty: {path}")
    return path


def check_writable(path: str | os.PathLike, inputs: tuple = ()) -> Path:
    """Fail early, before heavy work, if ``path`` cannot be written, or is one of ``inputs`` (the result would
    replace the file it is made from: the user's original would be gone)."""
    path = Path(path)
    for given in inputs:
        if given is not None and _same_file(path, given):
            raise EnlivenError(f"the output {path} is an input too; writing it would destroy the input: name "
                               "another output")
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise EnlivenError(f"output path is a directory: {path}")
    if not folder.is_dir():
        raise EnlivenError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise EnlivenError(f"output folder is not writable: {folder}")
    if path.exists() and not os.access(path, os.W_OK):
        raise EnlivenError(f"output file is not writable: {path}")
    return path


def _same_file(a: Path, b) -> bool:
    try:
        b = Path(b)
    except TypeError:  # not a path (an array, a preset name object): cannot be the output
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.abspath(a) == os.path.abspath(b)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path with the target's suffix; on success rename it to ``path``, else delete it.

    Deleted on any exception, KeyboardInterrupt included, and on SIGTERM where the CLI turns it into an exception
    (``cli.Terminated``); only SIGKILL or a crash of the interpreter itself can leave a ``.NAME.*.part`` file."""
    path = check_writable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent or ".")
    tmp_path = Path(tmp)
    try:  # from the moment the file exists: an interrupt while closing it must remove it too
        os.close(fd)
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        if exc.errno in WRITE_FAILURES:
            raise EnlivenError(f"cannot write {path}: {exc.strerror}") from None
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
