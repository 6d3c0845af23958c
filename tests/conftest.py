"""Shared fixtures: an isolated cache per test, tiny trained models, the smoke spec."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.support import REPO

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
os.environ["AER_WORKERS"] = "0"  # AppTest runs of app.py must not start worker pools


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Iterator[Path]:
    """A fresh cache folder that the engine, CLI subprocesses and pages all use."""
    root = tmp_path / "cache"
    root.mkdir()
    monkeypatch.setenv("AER_CACHE_DIR", str(root))
    monkeypatch.setenv("AER_DATA_DIR", str(tmp_path / "data"))
    from engine import api

    api.forget_stores()
    yield root
    api.forget_stores()


@pytest.fixture
def store(cache):
    """The Store of the fresh cache."""
    from engine import api

    return api.open_store()


@pytest.fixture(scope="session")
def synthetic():
    """The synthetic dataset (deterministic, in memory)."""
    from engine.science.data import load_dataset

    return load_dataset("synthetic")


def _trained(name: str, data, steps: int = 150):
    from engine.science.device import prepare_model
    from engine.science.models import build_model
    from engine.science.training import train_steps

    torch.manual_seed(0)
    model = prepare_model(build_model(name, data.info), torch.device("cpu"))
    train_steps(
        model,
        data.x_train,
        data.y_train,
        steps=steps,
        batch_size=64,
        lr=2e-3,
        generator=torch.Generator().manual_seed(0),
    )
    return model.eval()


@pytest.fixture(scope="session")
def tiny_cnn(synthetic):
    """A small CNN trained briefly on the synthetic data (eval mode)."""
    return _trained("small_cnn", synthetic)


@pytest.fixture(scope="session")
def tiny_mlp(synthetic):
    """An MLP trained briefly on the synthetic data (eval mode)."""
    return _trained("mlp", synthetic)


@pytest.fixture
def smoke_tree() -> dict:
    """The raw smoke preset as a dict (edit freely)."""
    import yaml

    return yaml.safe_load((REPO / "presets" / "smoke.yaml").read_text())


@pytest.fixture(scope="module")
def populated(tmp_path_factory, request):
    """A cache holding one finished smoke run and one run still computing."""
    import yaml

    from engine import api
    from engine.science.catalog import validate
    from engine.spec.reading import apply_overrides

    root = tmp_path_factory.mktemp("pages-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AER_CACHE_DIR", str(root))
        api.forget_stores()
        tree = yaml.safe_load((REPO / "presets" / "smoke.yaml").read_text())
        done = validate(copy.deepcopy(tree))
        api.run(done, api.open_store())
        running = validate(apply_overrides(copy.deepcopy(tree), ["seed=5"]))
        store = api.open_store()
        from engine import ENGINE_VERSION

        store.begin_run(running.run_id(), running.base_id(), running.canonical_json(), ENGINE_VERSION, 3)
        from engine.jobs import queue

        api.submit(running, store)
        claimed = queue.claim(store, "test-worker", lease_seconds=3600)
        queue.report(store, claimed.fence(), 1, 3, "pruning to 78.8%, fine-tuning", 0.45, 40.0)
        api.forget_stores()
    return root, done.run_id(), running.run_id()
