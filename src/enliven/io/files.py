"""Input checks, and outputs written to a temporary file beside the target, renamed into place when complete.

Every file the project writes for the user goes through ``atomic_output`` (or ``atomic_file`` beneath it), the one
place that sets a finished file's permissions: the temporary file is private (0600) while it is written; renamed
into place it has the mode a plain ``open(path, "w")`` would give, ``0666 & ~umask``, or the replaced file's own.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import threading
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

    ``path`` is checked first (``check_writable``); a write that fails for want of room or a failing device is
    one ``EnlivenError``. The file's mode: ``atomic_file``'s.

    Deleted on any exception, KeyboardInterrupt included, and on SIGTERM where the CLI turns it into an exception
    (``cli.Terminated``); only SIGKILL or a crash of the interpreter itself can leave a ``.NAME.*.part`` file."""
    path = check_writable(path)
    try:
        with atomic_file(path) as tmp:
            yield tmp
    except OSError as exc:
        if exc.errno in WRITE_FAILURES:
            raise EnlivenError(f"cannot write {path}: {exc.strerror}") from None
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """``atomic_output`` without its output checks and one-line errors, for a file the program keeps for itself
    (``enliven serve``'s job state: a failure there is the server's, and must not read as a client's mistake);
    errors stay as raised.

    The temporary file is private (mkstemp's 0600) while it is written; just before the rename it gets
    ``finished_mode(path)``, so the file appears under ``path`` with its final mode."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent or ".")
    tmp_path = Path(tmp)
    try:  # from the moment the file exists: an interrupt while closing it must remove it too
        os.close(fd)
        yield tmp_path
        _set_mode(tmp_path, finished_mode(path))
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def finished_mode(path: str | os.PathLike) -> int:
    """The mode a file written to ``path`` ends with: an existing file's own (it is replaced, not made anew, as far
    as its readers can tell), else what ``open(path, "w")`` gives, ``0o666 & ~umask``. Set-user-ID and
    set-group-ID bits are not carried onto new contents."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode) & ~(stat.S_ISUID | stat.S_ISGID)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def _set_mode(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except OSError as exc:
        # A file system without Unix modes (FAT, some network mounts) refuses: its files have the mount's mode
        # whatever we ask, and the output itself is complete, so it is kept.
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows.

    ``os.umask`` can only read the mask by setting a new one, and the mask belongs to the whole process: between
    the two calls a file created by another thread (a worker of ``enliven serve``, the video encoder, a caller's
    own thread) would get the stand-in mask. Linux (4.7 and later) shows the mask in /proc/self/status, which
    reads it without that window. Elsewhere the set-and-restore pair is guarded by a lock, which keeps our own
    readers apart, and the stand-in is 0o077, so that a file created meanwhile elsewhere comes out private rather
    than too open."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask
