"""The training configuration: one TOML file, every key with its documented default in ``default.toml``.

A user's file is read over the defaults; a key the defaults do not have, or a value of another type, is refused
with one line naming it (the CLI exits 2). Paths in the file are relative to the file's own folder.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from importlib import resources
from pathlib import Path

from enliven.errors import EnlivenError

STAGES = ("image", "video", "speed")
PATH_KEYS = {("data", "videos"), ("data", "cache"), ("init", "hallo"), ("init", "base"), ("init", "motion_module"),
             ("init", "vae"), ("init", "wav2vec"), ("init", "face_analysis"), ("run", "output")}
PRECISIONS = ("no", "bf16", "fp16")


def default_text() -> str:
    return resources.files(__package__).joinpath("default.toml").read_text()


def defaults() -> dict:
    return tomllib.loads(default_text())


def _merge(base: dict, given: dict, where: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in given.items():
        name = f"{where}{key}"
        if key not in base:
            raise EnlivenError(f"unknown setting {name!r} in the training config (see default.toml)")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise EnlivenError(f"setting {name!r} must be a table")
            out[key] = _merge(base[key], value, name + ".")
            continue
        expected = type(base[key])
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is list and isinstance(value, list):
            value = [float(v) for v in value]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise EnlivenError(f"setting {name!r} must be {expected.__name__}, not {type(value).__name__}")
        out[key] = value
    return out


def _check(config: dict) -> None:
    data, run = config["data"], config["run"]
    if data["size"] % 64 or data["size"] <= 0:
        raise EnlivenError(f"data.size must be a positive multiple of 64, not {data['size']}")
    for key in ("fps", "clip_frames"):
        if data[key] <= 0:
            raise EnlivenError(f"data.{key} must be positive")
    if data["motion_frames"] < 0 or data["sample_margin"] < 0:
        raise EnlivenError("data.motion_frames and data.sample_margin must be ≥ 0")
    if sorted(data["speed_edges"]) != data["speed_edges"]:
        raise EnlivenError("data.speed_edges must be increasing")
    if run["mixed_precision"] not in PRECISIONS:
        raise EnlivenError(f"run.mixed_precision must be one of {', '.join(PRECISIONS)}")
    if run["batch_size"] <= 0 or run["checkpoint_every"] <= 0 or run["keep_checkpoints"] <= 0:
        raise EnlivenError("run.batch_size, run.checkpoint_every and run.keep_checkpoints must be positive")
    if config["noise"]["prediction"] not in ("v_prediction", "epsilon"):
        raise EnlivenError("noise.prediction must be 'v_prediction' or 'epsilon'")
    for stage in STAGES:
        if config["stages"][stage]["steps"] < 0:
            raise EnlivenError(f"stages.{stage}.steps must be ≥ 0")
    init = config["init"]
    if not init["hallo"] and not init["base"]:
        raise EnlivenError("the training config needs init.hallo (a Hallo release) or init.base (SD-1.5) to start from")


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """The configuration in ``path`` over the defaults (``overrides``: a nested dict applied last, for tests)."""
    given: dict = {}
    base_dir = Path.cwd()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise EnlivenError(f"training config not found: {path}")
        try:
            given = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise EnlivenError(f"cannot read {path} as TOML: {exc}") from None
        base_dir = path.resolve().parent
    config = _merge(defaults(), given)
    if overrides:
        config = _merge(config, overrides)
    for section, key in PATH_KEYS:
        value = config[section][key]
        if value:
            config[section][key] = str((base_dir / value).resolve())
    _check(config)
    return config


def digest(part: dict) -> str:
    """A short hash of a part of the configuration (what a cache or checkpoint was made with)."""
    return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()[:16]
