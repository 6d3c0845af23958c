"""An estimate without history: the rough guess scaled by this machine's probe of the model, timed once
and reused (engine.jobs.probe)."""

from __future__ import annotations

import pytest

from engine import api
from engine.jobs import probe
from engine.spec.reading import load_tree

SECONDS = {"small_cnn": 1e-4, "resnet8": 2e-3, "mlp": 1e-6}  # seconds per example-pass, by model


@pytest.fixture
def timed(monkeypatch):
    """The probe's timer replaced by a table; every call counted."""
    calls = []

    def example_pass_seconds(model, dataset, width=None):
        calls.append((model, dataset, width))
        return SECONDS[model]

    monkeypatch.setattr(probe, "example_pass_seconds", example_pass_seconds)
    return calls


def test_the_probe_is_timed_once_per_machine_and_reused_from_the_cache(tmp_path, timed):
    assert probe.pass_seconds(tmp_path, "resnet8", "fashion_mnist") == 2e-3
    assert probe.pass_seconds(tmp_path, "resnet8", "fashion_mnist") == 2e-3
    assert timed == [("resnet8", "fashion_mnist", None)] and (tmp_path / probe.PROBES_FILE).is_file()
    (tmp_path / probe.PROBES_FILE).write_text("{not json")  # a damaged file is probed again, not trusted
    assert probe.pass_seconds(tmp_path, "resnet8", "fashion_mnist") == 2e-3 and len(timed) == 2


def test_an_estimate_without_history_scales_the_guess_by_the_model_s_probe(cache, timed):
    tree = load_tree(preset="quickstart")
    basis = api.validate_tree(tree)  # small_cnn on fashion_mnist: the guess's own model, not scaled
    bigger = api.validate_tree({**tree, "model": {"name": "resnet8"}})
    assert basis.model.name == "small_cnn" and api.estimate(basis).seconds == pytest.approx(
        api.estimate(bigger).seconds / 20, rel=0.05
    )
    assert "scaled ×20" in api.estimate(bigger).line()
    assert {call[0] for call in timed} == {"resnet8", "small_cnn"} and len(timed) == 2  # probed once each
