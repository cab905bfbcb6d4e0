"""What the engine registry tells users before anything loads: which engines are ready, and what the others need."""

from __future__ import annotations

import pytest

from enliven import engines, weights


def test_the_default_engine_is_ready_and_needs_nothing():
    assert engines.readiness("mesh") is None
    assert engines.weights_name("mesh") is None


@pytest.mark.parametrize("name", [n for n in engines.available() if engines.weights_name(n)])
def test_an_engine_without_its_weights_says_how_to_get_them(name, tmp_path, monkeypatch):
    monkeypatch.setenv("ENLIVEN_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty Hugging Face cache
    assert engines.weights_name(name) in weights.MODELS
    needs = engines.readiness(name)
    assert needs is not None and f"enliven weights download {engines.weights_name(name)}" in needs


@pytest.mark.parametrize("name", [n for n in engines.available() if engines.weights_name(n)])
def test_an_engine_with_its_weights_in_place_is_ready(name, tmp_path, monkeypatch):
    monkeypatch.setenv("ENLIVEN_WEIGHTS", str(tmp_path))
    (tmp_path / engines.weights_name(name)).mkdir()
    assert engines.readiness(name) is None
