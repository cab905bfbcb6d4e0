"""The compiled loops work where Numba has nowhere to cache them (a read-only install and home) or cannot write
the cache (a full disk)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from enliven.engines.mesh import raster


def test_kernels_compile_without_a_cache_location(tmp_path):
    """A copy of the rasteriser's module whose ``__pycache__`` cannot be made (a file holds the name) and a Numba
    cache folder under a plain file: Numba finds no cache location (its decorator would raise at import); the
    module still imports, compiles and gives the same map as the installed one."""
    package = tmp_path / "copied"
    package.mkdir()
    shutil.copy(raster.__file__, package / "raster_copy.py")
    (package / "__pycache__").write_text("not a folder")
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    script = (
        "import sys, numpy as np\n"
        f"sys.path.insert(0, {str(package)!r})\n"
        "import raster_copy\n"
        "m = np.zeros((20, 20), np.float32); n = m.copy()\n"
        "raster_copy.backward_map(np.array([[1.0, 1.0], [18.0, 2.0], [3.0, 17.0]]),\n"
        "    np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]), np.array([[0, 1, 2]]), m, n, 1)\n"
        "np.save(sys.argv[1], np.stack([m, n]))\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(blocked / "cache"), XDG_CACHE_HOME=str(blocked / "xdg"),
               HOME=str(blocked / "home"), PYTHONDONTWRITEBYTECODE="1")
    out = tmp_path / "maps.npy"
    done = subprocess.run([sys.executable, "-c", script, str(out)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    m, n = np.zeros((20, 20), np.float32), np.zeros((20, 20), np.float32)
    raster.backward_map(np.array([[1.0, 1.0], [18.0, 2.0], [3.0, 17.0]]), np.array([[0.0, 0.0], [10.0, 0.0],
                        [0.0, 10.0]]), np.array([[0, 1, 2]]), m, n, 1)
    assert (m != 0).sum() > 50 and np.array_equal(np.load(out), np.stack([m, n]))
    assert not any(Path(package).glob("*.nbi"))  # nothing was cached beside it


def test_kernels_compile_where_their_cache_cannot_be_written(tmp_path):
    """A first run on a full disk (a file-size limit of 0 bytes: every write past it fails as on a full disk):
    Numba's cache cannot be written, and the kernels still compile and run, where writing the cache used to end
    the render with a traceback from inside Numba."""
    package = tmp_path / "copied"
    package.mkdir()
    shutil.copy(raster.__file__, package / "raster_copy.py")
    script = (
        "import resource, signal, sys, numpy as np\n"
        f"sys.path.insert(0, {str(package)!r})\n"
        "import raster_copy\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) as on a full disk\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        "m = np.zeros((20, 20), np.float32); n = m.copy()\n"
        "raster_copy.backward_map(np.array([[1.0, 1.0], [18.0, 2.0], [3.0, 17.0]]),\n"
        "    np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]), np.array([[0, 1, 2]]), m, n, 1)\n"
        "print(int((m != 0).sum()))\n"
    )
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) > 50
    assert not [p for p in package.rglob("*.nbc") if p.stat().st_size > 0]  # nothing could be cached
