"""The compiled loops work where Numba has nowhere to cache them (a read-only install and home)."""

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
