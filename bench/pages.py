"""Page render time from a store of many runs: every page through Streamlit's AppTest.

The store is filled with synthetic rows (no training): N runs of 6 checkpoints × 7 ε each, with
efficiency, layer, budget and transfer rows, so every page has something to draw. Each page is
run twice; the second (warm) run is what a user waits for on every interaction.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGES = ["home", "surface", "compare", "layers", "budget", "transfer", "runs"]  # playground needs checkpoints


def fill(root: Path, n_runs: int) -> None:
    """A store at `root` holding `n_runs` finished fake runs."""
    from engine.store.db import StepRecord, Store

    store = Store(root)
    layers = [
        {"layer": name, "kind": kind, "numel": 1000, "nonzero": 500, "sparsity": 0.5, "prunable": True, "mrs": 0.1}
        for name, kind in (("features.conv1", "Conv2d"), ("features.conv2", "Conv2d"), ("fc1", "Linear"))
    ]
    for i in range(n_runs):
        run_id = f"{i:064x}"
        spec = json.dumps(
            {
                "dataset": {"name": "synthetic"},
                "model": {"name": "small_cnn"},
                "prune": {"method": "global_magnitude", "mode": "bap"},
                "schedule": {"name": "gradual", "final_sparsity": 0.9},
                "train": {"mode": "natural"},
                "seed": i,
            },
            separators=(",", ":"),
        )
        store.begin_run(run_id, f"{i % 50:064x}", spec, "bench", 6)  # 50 bases of 20 runs each
        for step in range(6):
            sparsity = step * 0.18
            robust = [
                {"attack": "pgd_linf", "norm": "Linf", "eps": e, "acc": max(0.0, 0.9 - e * 5 - sparsity / 10)}
                for e in (0, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1)
            ]
            budget = {
                "norm": "RMS-L2",
                "batches": 10,
                "examples": 1000,
                "cutoff": 0.05,
                "budget_mean": 0.04,
                **{f"budget_q{q}": q / 2000 for q in (10, 25, 50, 75, 90)},
            }
            store.put_step(
                StepRecord(
                    {
                        "run_id": run_id,
                        "step": step,
                        "target_sparsity": sparsity,
                        "sparsity": sparsity,
                        "clean_acc": 0.9,
                        "checkpoint": "x",
                        "sha256": "0",
                        "mask_checkpoint": "x",
                        "mask_sha256": "0",
                        "train_seconds": 1.0,
                        "eval_seconds": 1.0,
                    },
                    robust,
                    layers,
                    transfer=robust,
                    budget=budget if step else None,
                    efficiency={
                        "params": 1000,
                        "nonzero_params": 500,
                        "compression_ratio": 2.0,
                        "flops": 10,
                        "sparse_flops": 5.0,
                        "theoretical_speedup": 2.0,
                        "size_bytes": 100.0,
                        "latency_ms_b1": 0.1,
                        "latency_ms_b128": 1.0,
                    },
                )
            )
        store.finish_run(run_id)
    store.close()


def render_seconds(root: Path, page: str) -> tuple[float, float]:
    """(first, warm) seconds for one page of the app, run inside the router as a user sees it."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from engine import api

    os.environ["AER_CACHE_DIR"], os.environ["AER_WORKERS"] = str(root), "0"
    api.forget_stores()
    st.cache_data.clear()
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.switch_page(f"pages/{page}.py")
    started = time.perf_counter()
    at.run()
    first = time.perf_counter() - started
    started = time.perf_counter()
    at.run()
    warm = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"{page}: {at.exception[0].message}")
    return first, warm


def run(n_runs: int = 1000) -> dict:
    """Seconds to fill the store, and each page's first and warm render time."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = time.perf_counter()
        fill(root, n_runs)
        result = {"runs": n_runs, "fill_s": round(time.perf_counter() - started, 1)}
        for page in PAGES:
            first, warm = render_seconds(root, page)
            result[f"{page}_first_s"], result[f"{page}_warm_s"] = round(first, 2), round(warm, 2)
    result["slowest_warm_s"] = max(v for k, v in result.items() if k.endswith("_warm_s"))
    return result
