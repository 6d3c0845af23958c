"""The frames read from the store: a run's result document and the tidy tables the pages and
papers draw from (runs, robust, efficiency, layers, budgets, warnings), and exports of them.

Every function takes an optional Store (default: the cache's, see engine.store.db.open_store).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import SpecError
from engine.report.summaries import hygiene
from engine.spec.runspec import describe
from engine.store.db import BUDGET_COLUMNS, EFFECTIVE_COLUMNS, EFFICIENCY_COLUMNS, SHRUNK_COLUMNS, Store, open_store


def document(run_id: str, store: Store | None = None, cached: bool = True) -> dict[str, Any]:
    """The JSON result document of a run (the CLI contract of ARCHITECTURE.md)."""
    store = store or open_store()
    row = store.run(run_id)
    by_step = {
        name: _group_by_step(rows)
        for name, rows in (
            ("robust", store.robust([run_id])),
            ("transfer", store.robust([run_id], "transfer")),
            ("layers", store.layers(run_id)),
            ("efficiency", store.efficiency([run_id])),
            ("budget", store.budgets([run_id])),
        )
    }
    points = []
    for step in store.steps(run_id):
        k = step["step"]
        point = {
            "step": k,
            "sparsity": step["sparsity"],
            "target_sparsity": step["target_sparsity"],
            "clean_acc": step["clean_acc"],
            "checkpoint": step["checkpoint"],
            "sha256": step["sha256"],
            "robust": [_attack_point(r) for r in by_step["robust"].get(k, [])],
            "layers": [_layer_point(r) for r in by_step["layers"].get(k, [])],
        }
        if by_step["transfer"]:
            point["transfer"] = [_attack_point(r) for r in by_step["transfer"].get(k, [])]
        for cost in by_step["efficiency"].get(k, []):
            point["efficiency"] = {
                c: cost[c] for c in EFFICIENCY_COLUMNS + EFFECTIVE_COLUMNS + SHRUNK_COLUMNS if cost[c] is not None
            }
        for budget in by_step["budget"].get(k, []):
            point["budget"] = {c: budget[c] for c in BUDGET_COLUMNS if budget[c] is not None}
        points.append(point)
    return {
        "run_id": run_id,
        "cached": cached,
        "status": row["status"],
        "error": row["error"],
        "base_id": row["base_id"],
        "engine_version": row["engine_version"],
        "n_steps": row["n_steps"],
        "spec": json.loads(row["spec_json"]),
        "points": points,
        "warnings": [{k: w[k] for k in ("kind", "step", "attack", "message")} for w in warnings_list([run_id], store)],
    }


def _group_by_step(rows: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["step"], []).append(row)
    return grouped


def _layer_point(row: dict[str, Any]) -> dict[str, Any]:
    point = {key: row[key] for key in ("layer", "kind", "numel", "nonzero", "sparsity")} | {
        "prunable": bool(row["prunable"])
    }
    extra = ("mrs", "mrs_reach", "ratio", "effective_nonzero")
    return point | {key: row[key] for key in extra if row.get(key) is not None}


def _attack_point(row: dict[str, Any]) -> dict[str, Any]:
    return {"attack": row["attack"], "norm": row["norm"], "eps": row["eps"], "acc": row["acc"]}


def runs_frame(store: Store | None = None) -> pd.DataFrame:
    """One row per run: id, status, steps done of total, model, dataset, method, schedule."""
    rows = []
    for r in (store or open_store()).runs():
        spec = json.loads(r["spec_json"])
        rows.append(
            {
                "run_id": r["run_id"],
                "status": r["status"],
                "steps_done": r["steps_done"],
                "n_steps": r["n_steps"],
                "dataset": spec["dataset"]["name"],
                "model": spec["model"]["name"],
                "method": spec["prune"]["method"],
                "schedule": spec["schedule"]["name"],
                "base_mode": spec["train"].get("mode", "natural"),
                "finetune_mode": spec["prune"].get("mode") or spec["train"].get("mode", "natural"),
                "base_id": r["base_id"],
                "label": describe(spec),
                "created_at": pd.to_datetime(r["created_at"], unit="s"),
                "error": r["error"],
            }
        )
    columns = [
        "run_id",
        "status",
        "steps_done",
        "n_steps",
        "dataset",
        "model",
        "method",
        "schedule",
        "base_mode",
        "finetune_mode",
        "base_id",
        "label",
        "created_at",
        "error",
    ]
    return pd.DataFrame(rows, columns=columns)


def robust_frame(run_ids: list[str], store: Store | None = None, source: str = "robust") -> pd.DataFrame:
    """Tidy results: run_id, step, sparsity, clean_acc, attack, norm, eps, acc, params.

    `source` is "robust" (white-box attacks on each checkpoint) or "transfer" (crafted on the base).
    """
    columns = ["run_id", "step", "sparsity", "clean_acc", "attack", "norm", "eps", "acc", "params"]
    rows = (store or open_store()).robust(list(run_ids), source) if run_ids else []
    return pd.DataFrame(rows, columns=columns) if not rows else pd.DataFrame(rows)[columns]


def efficiency_frame(run_ids: list[str], store: Store | None = None) -> pd.DataFrame:
    """Per run × step: parameters, compression, FLOPs, theoretical speed-up, sparse size, CPU latency,
    the effective size (weights on an input → output path), and for filter pruning the physically
    smaller model's parameters, FLOPs and latency."""
    columns = ["run_id", "step", "sparsity", *EFFICIENCY_COLUMNS, *EFFECTIVE_COLUMNS, *SHRUNK_COLUMNS]
    rows = (store or open_store()).efficiency(list(run_ids)) if run_ids else []
    return pd.DataFrame(rows, columns=columns) if not rows else pd.DataFrame(rows)[columns]


def warnings_list(run_ids: list[str], store: Store | None = None) -> list[dict[str, Any]]:
    """Hygiene warnings of runs: recorded during evaluation, plus those read off their curves."""
    store = store or open_store()
    found = [
        {"kind": w["kind"], "run_id": w["run_id"], "step": w["step"], "attack": "", "message": w["message"]}
        for w in store.warnings(list(run_ids))
    ]
    for source in ("robust", "transfer"):
        frame = robust_frame(run_ids, store, source)
        if frame.empty:
            continue
        unbounded = tuple(sorted({r.attack for r in frame.itertuples() if '"unbounded": true' in (r.params or "")}))
        found += [vars(w) | {"source": source} for w in hygiene(frame, unbounded)]
    return found


def layers_frame(run_id: str, store: Store | None = None) -> pd.DataFrame:
    """Tidy per-layer table: step, layer, kind, numel, nonzero, sparsity, prunable, mrs, ratio."""
    store = store or open_store()
    frame = pd.DataFrame(store.layers(run_id))
    if frame.empty:
        return frame
    steps = pd.DataFrame(store.steps(run_id))[["step", "sparsity"]].rename(columns={"sparsity": "step_sparsity"})
    return frame.merge(steps, on="step", how="left")


def runs_having(what: str, store: Store | None = None) -> list[str]:
    """Ids of runs (newest first) that have `budgets`, `mrs` or `transfer` results."""
    store = store or open_store()
    having = store.runs_having(what)
    return [r["run_id"] for r in store.runs() if r["run_id"] in having]


def budget_frame(run_ids: list[str], store: Store | None = None) -> pd.DataFrame:
    """Budget trajectories: one row per run × pruning step that trained adversarially (AP or BAP)."""
    columns = ["run_id", "step", "sparsity", "clean_acc", *BUDGET_COLUMNS]
    rows = (store or open_store()).budgets(list(run_ids)) if run_ids else []
    return pd.DataFrame(rows, columns=columns) if not rows else pd.DataFrame(rows)[columns]


def export(run_id: str, fmt: str, out: Path, store: Store | None = None) -> Path:
    """Write a run's results as JSON (the document) or CSV (the tidy robust table)."""
    store = store or open_store()
    out = Path(out)
    if fmt == "json":
        out.write_text(json.dumps(document(run_id, store), indent=2), encoding="utf-8")
    elif fmt == "csv":
        robust_frame([run_id], store).to_csv(out, index=False)
    else:
        raise SpecError([f"format: unknown format {fmt!r}; choose from ['csv', 'json']"])
    return out
