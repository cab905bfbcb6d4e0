"""Issue 26: every output ends with the usual permissions.

A new file has the mode a plain ``open(path, "w")`` gives, ``0666 & ~umask`` (0644 under umask 022, 0640 under
027); a file that is replaced keeps its own mode; the temporary file is private (0600) while it is written. One
set of checks per kind of output: videos, pictures, motion templates, bench reports and plots, the job files of
``enliven serve``, converted weights.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from enliven import api
from enliven.cli import main
from enliven.errors import EnlivenError
from enliven.io import files
from enliven.io.files import atomic_output

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EXPECTED = {0o022: 0o644, 0o027: 0o640}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=sorted(EXPECTED), ids=lambda m: f"umask{m:03o}")
def umask(request):
    """The process's umask set for one test, and restored after it whatever happens."""
    before = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(before)


@pytest.fixture
def umask_022():
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


# --- the helper itself ---

def test_atomic_output_new_file_gets_the_umask_mode_and_the_temporary_file_is_private(tmp_path, umask):
    target = tmp_path / "out.bin"
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"data")
        assert mode(tmp) == 0o600  # private while it is written
    assert target.read_bytes() == b"data"
    assert mode(target) == EXPECTED[umask]
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


@pytest.mark.parametrize("kept", [0o640, 0o600, 0o664], ids=lambda m: f"{m:04o}")
def test_atomic_output_replacing_a_file_keeps_its_mode(tmp_path, umask_022, kept):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    target.chmod(kept)
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
        assert mode(tmp) == 0o600
    assert target.read_bytes() == b"new" and mode(target) == kept


def test_set_id_bits_are_not_carried_onto_new_contents(tmp_path, umask_022):
    target = tmp_path / "tool"
    target.write_bytes(b"old")
    target.chmod(0o6755)
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert mode(target) == 0o755


def test_a_failed_write_leaves_the_old_file_and_its_mode(tmp_path, umask_022):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    target.chmod(0o640)
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("render failed")
    assert target.read_bytes() == b"old" and mode(target) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_file_system_without_modes_keeps_the_output(tmp_path, umask_022, monkeypatch):
    def refuse(path, wanted):
        raise PermissionError(1, "Operation not permitted", str(path))

    monkeypatch.setattr(files.os, "chmod", refuse)
    target = tmp_path / "out.bin"
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"data")
    assert target.read_bytes() == b"data"


def test_atomic_output_keeps_its_one_line_for_a_full_disk_and_atomic_file_does_not(tmp_path):
    def full(tmp):
        raise OSError(28, "No space left on device")

    with pytest.raises(EnlivenError, match="cannot write .*No space left"), atomic_output(tmp_path / "a") as tmp:
        full(tmp)
    with pytest.raises(OSError) as raised, files.atomic_file(tmp_path / "b") as tmp:
        full(tmp)
    assert not isinstance(raised.value, EnlivenError)
    assert list(tmp_path.iterdir()) == []


def test_the_umask_is_read_without_changing_it(umask, monkeypatch):
    assert files.current_umask() == umask
    assert os.umask(umask) == umask  # still in place

    def no_proc(*args, **kwargs):  # a system without /proc: the set-and-restore fallback
        raise FileNotFoundError(2, "No such file or directory", "/proc/self/status")

    monkeypatch.setattr(files, "open", no_proc, raising=False)
    assert files.current_umask() == umask
    assert os.umask(umask) == umask


# --- each kind of output, written by the project's own functions ---

def _video(folder: Path) -> list[Path]:
    out = folder / "motion.mp4"
    api.render_motion("preset:nod", out, size=64, progress=False)
    return [out]


def _picture(folder: Path) -> list[Path]:
    from enliven.io.images import write_image

    out = folder / "still.png"
    write_image(out, np.full((8, 8, 3), 128, np.uint8))
    return [out]


def _template(folder: Path) -> list[Path]:
    from enliven.motion.presets import preset_motion
    from enliven.motion.template import save_template

    out = folder / "motion.npz"
    save_template(out, preset_motion("nod", fps=5))
    return [out]


def _bench_report(folder: Path) -> list[Path]:
    from enliven.evaluation.report import write_report
    from enliven.evaluation.runner import Series

    series = Series(values={"psnr": [30.0, 31.0], "lmd": [0.01, 0.02]})
    series.counts = {"frames": 2}
    written = write_report({"kind": "self", "engines": ["mesh"], "results": {"clip": {"mesh": series}}},
                           folder / "report")
    assert {p.suffix for p in written} == {".json", ".md", ".png"}  # every kind of report file is checked
    return written


def _job_state(folder: Path) -> list[Path]:
    from enliven.serve.jobs import DONE, Job, JobStore

    store = JobStore(folder / "data", workers=1)
    try:
        job_id = "0" * 32
        store.folder(job_id).mkdir(exist_ok=True)
        store._save(Job(job_id, None, "preset:nod", state=DONE, finished=time.time()))  # the store's one write path
    finally:
        store.close(5)
    return [store.folder(job_id) / "job.json"]


def _converted_weights(folder: Path, tiny_weights: Path) -> list[Path]:
    from enliven.engines.keypoint import convert_to_safetensors

    weights = folder / "weights"
    if not weights.exists():  # a copy: the session's tiny weights must not gain .safetensors (loading prefers them)
        shutil.copytree(tiny_weights, weights)
    return convert_to_safetensors(weights)


def _onnx_graphs(folder: Path, tiny_modules) -> list[Path]:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from enliven.engines.keypoint import export_onnx

    modules, config = tiny_modules
    return export_onnx(modules, folder / "onnx", config)


KINDS = ["video", "picture", "template", "bench report", "serve job state", "converted weights", "onnx graphs"]


@pytest.fixture(scope="module")
def tiny_modules(tiny_weights):
    from enliven.engines.keypoint import load_config, load_official

    config = load_config(tiny_weights)
    return load_official(tiny_weights, config=config), config


@pytest.fixture
def write(request):
    """The writer of one kind of output: called with a folder, it writes there and returns the files."""
    kind = request.param
    if kind == "converted weights":
        weights = request.getfixturevalue("tiny_weights")
        return lambda folder: _converted_weights(folder, weights)
    if kind == "onnx graphs":
        modules = request.getfixturevalue("tiny_modules")
        return lambda folder: _onnx_graphs(folder, modules)
    return {"video": _video, "picture": _picture, "template": _template, "bench report": _bench_report,
            "serve job state": _job_state}[kind]


@pytest.mark.parametrize("write", KINDS, indirect=True)
def test_a_new_output_has_the_umask_mode(tmp_path, umask, write):
    written = write(tmp_path)
    assert written
    assert {p.name: oct(mode(p)) for p in written} == {p.name: oct(EXPECTED[umask]) for p in written}
    assert not [p.name for p in tmp_path.rglob("*.part*")]


@pytest.mark.parametrize("kept", [0o640, 0o600], ids=lambda m: f"{m:04o}")
@pytest.mark.parametrize("write", KINDS, indirect=True)
def test_a_replaced_output_keeps_its_mode(tmp_path, umask_022, write, kept):
    first = write(tmp_path)
    for path in first:
        path.chmod(kept)
    stamps = {p: p.stat().st_ino for p in first}
    second = write(tmp_path)
    assert sorted(second) == sorted(first)
    assert all(p.stat().st_ino != stamps[p] for p in second)  # written anew, not left alone
    assert {p.name: oct(mode(p)) for p in second} == {p.name: oct(kept) for p in second}


def test_the_diffusion_engines_safetensors_copy_has_the_umask_mode(tmp_path, umask):
    import torch

    from enliven.engines.tensor_files import write_safetensors_copy

    source, target = tmp_path / "unet.pth", tmp_path / "unet.safetensors"
    torch.save({"w": torch.zeros(2, 2)}, source)
    assert write_safetensors_copy(source, target)
    assert mode(target) == EXPECTED[umask]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unet.pth", "unet.safetensors"]


def test_enliven_demo_writes_a_readable_video(tmp_path, umask, capsys):
    """The issue's own report: ``enliven demo -o demo.mp4`` wrote 0600."""
    out = tmp_path / "demo.mp4"
    assert main(["-q", "demo", "-o", str(out), "--preset", "nod", "--fps", "5"]) == 0
    assert mode(out) == EXPECTED[umask]


def test_a_serve_job_result_and_its_state_have_the_umask_mode(tmp_path, umask):
    """A real job of ``enliven serve``: the store saves its state, the library renders the result."""
    from enliven.serve.jobs import DONE, Job, JobStore

    store = JobStore(tmp_path / "data", workers=1)
    try:
        job_id, folder = store.new_folder()
        job = store.submit(Job(job_id, None, "preset:nod", options={"fps": 5}))
        deadline = time.monotonic() + 60
        while store.get(job_id).state != DONE and time.monotonic() < deadline:
            assert store.get(job_id).error is None
            time.sleep(0.05)
        assert job.state == DONE
    finally:
        store.close(5)
    assert {p.name: oct(mode(p)) for p in folder.iterdir()} == {
        "job.json": oct(EXPECTED[umask]), "result.mp4": oct(EXPECTED[umask])}
