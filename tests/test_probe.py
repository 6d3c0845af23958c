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

    def example_pass_seconds(model, dataset, width=None, batch=128, info=None):
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


def test_a_user_s_data_set_is_probed_at_the_shape_its_file_headers_give(cache, monkeypatch):
    import numpy as np

    shapes = []
    monkeypatch.setattr(
        probe,
        "example_pass_seconds",
        lambda model, dataset, width=None, batch=128, info=None: shapes.append(info) or 4e-4,
    )
    data = cache.parent / "data"
    data.mkdir(exist_ok=True)
    np.savez(data / "mine.npz", x=np.zeros((40, 32, 32, 3), np.uint8), y=np.arange(40) % 5)
    assert probe.cost_ratio(cache, "small_cnn", "arrays", data_path="mine.npz") == pytest.approx(1.0)
    assert (shapes[0].channels, shapes[0].size, shapes[0].num_classes) == (3, 32, 5)  # read, not loaded
    assert shapes[1] is None  # the guess's basis, fashion_mnist, is a built-in shape
    assert probe.cost_ratio(cache, "small_cnn", "arrays", data_path="not_there.npz") == 1.0  # no file: no shape
    assert probe.cost_ratio(cache, "small_cnn", "arrays") == 1.0 and len(shapes) == 2


def test_an_image_folder_s_shape_is_read_from_its_first_image(tmp_path):
    import numpy as np
    from PIL import Image

    from engine.science.user_data import peek_info

    for name in ("cat", "dog", "eel"):
        (tmp_path / "train" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((24, 24), np.uint8)).save(tmp_path / "train" / name / "0.png")
    (tmp_path / "test").mkdir()
    info = peek_info("folder", tmp_path)
    assert info is not None and (info.channels, info.size, info.num_classes) == (1, 24, 3)
    assert peek_info("arrays", tmp_path) is None  # a folder is not an .npz: no shape, no crash
