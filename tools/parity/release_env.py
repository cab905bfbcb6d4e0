"""What the parity scripts need to import a release's code in a small environment: empty stand-ins for packages
the release imports at the top of a file but never calls on the paths the scripts run (video readers, torchvision
transforms), and the checkout's commit."""

from __future__ import annotations

import importlib.machinery
import subprocess
import sys
import types
from pathlib import Path


class _Unused(types.ModuleType):
    """A module whose every attribute is a placeholder: importing names from it works, using them fails."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise_on_use = type(name, (), {"__init__": _refuse, "__call__": _refuse})
        setattr(self, name, raise_on_use)
        return raise_on_use


def _refuse(*_args, **_kwargs):
    raise RuntimeError("a package stubbed by tools/parity/release_env.py was used: install it")


def stub_missing(*names: str) -> list[str]:
    """Stand-ins for each of ``names`` that does not import (missing, or built for another torch)."""
    stubbed = []
    for name in names:
        try:
            __import__(name)
            continue
        except Exception:
            pass
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            full = ".".join(parts[:depth])
            if full not in sys.modules or not isinstance(sys.modules[full], _Unused):
                module = _Unused(full)
                module.__spec__ = importlib.machinery.ModuleSpec(full, None)
                module.__path__ = []
                sys.modules[full] = module
                if depth > 1:
                    setattr(sys.modules[".".join(parts[:depth - 1])], parts[depth - 1], module)
        stubbed.append(name)
    return stubbed


def release_commit(release: Path, given: str | None) -> str:
    """``given``, or the checkout's HEAD (git)."""
    if given:
        return given
    try:
        return subprocess.run(["git", "-C", str(release), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit("not a git checkout: say which commit it is with --commit") from None


def torchvision_transforms() -> bool:
    """Import torchvision for its Python transforms when its C extension cannot load (a wheel built for a CUDA
    torch beside a CPU torch: its operator registrations fail at import). The transforms never call the
    extension; ``torchvision.ops`` would fail on use. False when torchvision is not installed at all."""
    try:
        import torchvision  # noqa: F401

        return True
    except ImportError:
        return False
    except RuntimeError:
        pass
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]
    sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    import torchvision.transforms  # noqa: F401

    return True
