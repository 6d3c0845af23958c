"""Helpers shared by the test modules (not tests themselves): the repository root, a page run
through the app's router with AppTest, and the small robust-training spec tree."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 60

ROBUST_TREE = {
    "dataset": {"name": "synthetic", "train_size": 512},
    "model": {"name": "small_cnn"},
    "train": {"mode": "pgd_at", "epochs": 1, "batch_size": 64, "lr": 0.002, "adversary": {"eps": 0.05, "steps": 2}},
    "prune": {"method": "lwm", "batch_size": 64, "lr": 0.001, "score_steps": 4},
    "schedule": {"name": "one_shot", "targets": [0.5, 0.9], "finetune_steps": 4},
    "eval": {"n_samples": 64, "batch_size": 64, "attacks": [{"name": "pgd_linf", "eps": [0, 0.05], "steps": 3}]},
    "seed": 0,
}


def page(path: str, cache_root, monkeypatch, **query) -> AppTest:
    import streamlit as st

    from engine import api

    monkeypatch.setenv("AER_CACHE_DIR", str(cache_root))
    api.forget_stores()
    st.cache_data.clear()
    # pages run inside the router, as in the app, so page links between them resolve
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    for key, value in query.items():
        at.query_params[key] = value
    if path != "app.py":
        at.switch_page(path)
    return at.run()


SURFACE_VIEWS = [
    "3-D surface",
    "heat map",
    "slice at one ε",
    "slice at one sparsity",
    "adversarial share",
    "certified vs attacked",
]
"""The Surface page's views (pages/surface.py: VIEWS), which tests open one by one."""
