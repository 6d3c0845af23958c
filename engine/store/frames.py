"""The frames read from the store: a run's result document and the tidy tables the pages and
papers draw from (runs, robust, efficiency, layers, budgets, warnings), and exports of them.

Every function takes an optional Store (default: the cache's, see engine.store.db.open_store).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import SpecError
from engine.report.ratios import with_mrpf_rule
from engine.report.sequential import paired_grown
from engine.report.stats import Difference, intervals, successes, unpack_flags, unpaired, wilson
from engine.report.summaries import hygiene
from engine.spec.reading import excerpt
from engine.spec.runspec import describe
from engine.store.db import Store, open_store
from engine.store.migrations import (
    BUDGET_COLUMNS,
    EFFECTIVE_COLUMNS,
    EFFICIENCY_COLUMNS,
    LATENCY_COLUMNS,
    ONNX_COLUMNS,
    SHRUNK_COLUMNS,
)


def document(run_id: str, store: Store | None = None, cached: bool = True) -> dict[str, Any]:
    """The JSON result document of a run (the CLI contract: docs/cli.md, `run --json`)."""
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
        attacked = by_step["robust"].get(k, [])
        if attacked:  # the clean accuracy is measured on the same evaluation images as every attack
            point |= {f"clean_{key}": v for key, v in _interval(step["clean_acc"], attacked[0].get("n")).items()}
        if by_step["transfer"]:
            point["transfer"] = [_attack_point(r) for r in by_step["transfer"].get(k, [])]
        for cost in by_step["efficiency"].get(k, []):
            point["efficiency"] = {
                c: cost[c]
                for c in EFFICIENCY_COLUMNS + EFFECTIVE_COLUMNS + SHRUNK_COLUMNS + LATENCY_COLUMNS + ONNX_COLUMNS
                if cost[c] is not None
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
    extra = ("mrs", "mrs_reach", "ratio", "ratio_mrs", "effective_nonzero")
    return point | {key: row[key] for key in extra if row.get(key) is not None}


def _attack_point(row: dict[str, Any]) -> dict[str, Any]:
    point = {"attack": row["attack"], "norm": row["norm"], "eps": row["eps"], "acc": row["acc"]}
    return point | _interval(row["acc"], row.get("n"))


def _interval(acc: float, n: int | None) -> dict[str, Any]:
    """n and the 95 % Wilson bounds of an accuracy, when n was kept."""
    if n is None:
        return {}
    low, high = wilson(round(acc * n), n)
    return {"n": n, "ci_low": low, "ci_high": high}


def replicate_family(spec: dict[str, Any], keys: tuple[str, ...] | None = None) -> str:
    """The id shared by runs whose specs agree on everything but the seed (replicates of one setup), or
    only on the sections `keys` (e.g. the base's: dataset, model, train)."""
    kept = {k: v for k, v in spec.items() if k != "seed" and (keys is None or k in keys)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def runs_frame(store: Store | None = None) -> pd.DataFrame:
    """One row per run: id, status, steps done of total, model, dataset, method, schedule, seed, and
    its replicate family (runs differing only in their seed share it)."""
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
                "seed": spec["seed"],
                "parent_id": r.get("parent_id"),
                "family": replicate_family(spec),
                "base_family": replicate_family(spec, ("dataset", "model", "train")),
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
        "seed",
        "parent_id",
        "family",
        "base_family",
        "label",
        "created_at",
        "error",
    ]
    return pd.DataFrame(rows, columns=columns)


ROBUST_COLUMNS = [
    "run_id",
    "step",
    "sparsity",
    "clean_acc",
    "attack",
    "norm",
    "eps",
    "acc",
    "params",
    "n",
    "n_own",
    "ci_low",
    "ci_high",
    "clean_low",
    "clean_high",
    "abstained",
]


def robust_frame(
    run_ids: list[str], store: Store | None = None, source: str = "robust", flags: bool = False
) -> pd.DataFrame:
    """Tidy results: run_id, step, sparsity, clean_acc, attack, norm, eps, acc, params, and the
    n evaluation images behind each accuracy (n_own of them the run's own, the rest added to decide a
    comparison: engine/store/extended.py) with 95 % Wilson bounds of the robust (ci_low, ci_high)
    and clean (clean_low, clean_high, on the run's own images) accuracy; the bounds are missing where n was not kept; a
    certificate's `abstained` images (missing for attacks).

    `source` is "robust" (white-box attacks on each checkpoint) or "transfer" (crafted on the base);
    with `flags`, a last column `correct` holds each row's packed per-example bits (None if not kept).
    """
    columns = ROBUST_COLUMNS + (["correct"] if flags else [])
    rows = (store or open_store()).robust(list(run_ids), source, flags) if run_ids else []
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    frame["ci_low"], frame["ci_high"] = intervals(frame["acc"], frame["n"])
    frame["clean_low"], frame["clean_high"] = intervals(frame["clean_acc"], frame["n_own"])
    return frame.reindex(columns=columns)  # transfer rows have no `abstained`


def efficiency_frame(run_ids: list[str], store: Store | None = None) -> pd.DataFrame:
    """Per run × step: parameters, compression, FLOPs, theoretical speed-up, sparse size, CPU latency,
    the effective size (weights on an input → output path), and for filter pruning the physically
    smaller model's parameters, FLOPs and latency."""
    columns = [
        "run_id",
        "step",
        "sparsity",
        *EFFICIENCY_COLUMNS,
        *EFFECTIVE_COLUMNS,
        *SHRUNK_COLUMNS,
        *LATENCY_COLUMNS,
        *ONNX_COLUMNS,
    ]
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
        frame = robust_frame(run_ids, store, source, flags=True)
        if frame.empty:
            continue
        unbounded = tuple(sorted({r.attack for r in frame.itertuples() if '"unbounded": true' in (r.params or "")}))
        found += [vars(w) | {"source": source} for w in hygiene(frame, unbounded)]
    return found


def layers_frame(run_id: str, store: Store | None = None) -> pd.DataFrame:
    """Tidy per-layer table: step, layer, kind, numel, nonzero, sparsity, prunable, mrs, ratio, and at each
    pruning step the uniform share and MRPF's rule's ratio (engine.report.ratios.with_mrpf_rule)."""
    store = store or open_store()
    frame = pd.DataFrame(store.layers(run_id))
    if frame.empty:
        return frame
    steps = pd.DataFrame(store.steps(run_id))[["step", "sparsity"]].rename(columns={"sparsity": "step_sparsity"})
    return with_mrpf_rule(frame.merge(steps, on="step", how="left"))


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


SQLITE_MAGIC = b"SQLite format 3\x00"


def export_target(out: Path, store: Store, force: bool = False) -> Path:
    """Where an export may be written: a new file, or with `force` an existing regular file that is not a
    SQLite database (any store's), in an existing, writable folder outside the store's own files;
    SpecError in one line otherwise (loops and over-long names included)."""
    text = str(out)
    if not text.strip():
        raise SpecError(["--out: give a file name"])
    shown = excerpt(text, 200)
    try:
        return _checked_target(Path(out).expanduser().resolve(), store, force, shown)
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long for the file system
        reason = getattr(exc, "strerror", None) or str(exc)[:80] or type(exc).__name__
        raise SpecError([f"--out: cannot use {shown} ({reason})"]) from None


def _checked_target(out: Path, store: Store, force: bool, shown: str) -> Path:
    if out.is_relative_to(store.root) and (out.name.startswith("aer.sqlite") or out.parent != store.root):
        raise SpecError([f"--out: {shown} is one of the store's own files; write the export elsewhere"])
    if out.exists() and not out.is_file():
        raise SpecError([f"--out: {shown} is not a regular file (a folder or a device)"])
    if not out.parent.is_dir():
        raise SpecError([f"--out: the folder of {shown} does not exist"])
    if out.exists():
        with out.open("rb") as handle:
            if handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC:
                raise SpecError(
                    [f"--out: {shown} is a SQLite database (perhaps another cache's); exports never replace one"]
                )
        if not force:
            raise SpecError([f"--out: {shown} already exists; pass --force to replace it"])
    if not os.access(out.parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise SpecError([f"--out: {shown} is not writable"])
    return out


def export(run_id: str, fmt: str, out: Path, store: Store | None = None, force: bool = False) -> Path:
    """Write a run's results as JSON (the document) or CSV (the tidy robust table), through a temporary
    file in the target's folder renamed into place, so a failed export leaves no half-written file; an
    existing file is replaced only with `force` (export_target)."""
    store = store or open_store()
    if fmt not in ("csv", "json"):
        raise SpecError([f"format: unknown format {fmt[:20]!r}; choose from ['csv', 'json']"])
    out = export_target(Path(out), store, force)
    text = (
        json.dumps(document(run_id, store), indent=2)
        if fmt == "json"
        else robust_frame([run_id], store).to_csv(index=False)
    )
    return write_export(out, text.encode("utf-8"))


def write_export(out: Path, data: bytes) -> Path:
    """Write an export through a temporary file in the target's folder renamed into place (a failed
    write leaves no half-written file); SpecError in one line on a full disk or a read-only folder."""
    handle = tempfile.NamedTemporaryFile("wb", dir=out.parent, prefix=f".{out.name}.", delete=False)
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, out)
    except OSError as exc:
        Path(handle.name).unlink(missing_ok=True)
        reason = exc.strerror or exc.__class__.__name__  # a full disk, a folder made read-only meanwhile
        raise SpecError([f"--out: cannot write {excerpt(str(out))} ({reason})"]) from None
    return out


def _result(store: Store, run_id: str, step: int, attack: str, eps: float, source: str) -> dict[str, Any]:
    for row in store.robust([run_id], source, flags=True):
        if row["step"] == step and row["attack"] == attack and row["eps"] == eps:
            return row
    raise SpecError([f"{source}: run {run_id[:12]} has no {attack} result at step {step}, ε = {eps:g}"])


def _eval_images(spec_json: str) -> tuple[str, str | None, str | None, float | None, int, int]:
    """What fixes a run's evaluation images: dataset (a user's by its file's SHA-256 and held-out share),
    subset size and seed (engine.pipeline.eval_split)."""
    spec = json.loads(spec_json)
    data = spec["dataset"]
    return (
        data["name"],
        data.get("sha256"),
        data.get("path"),
        data.get("test_share"),
        spec["eval"]["n_samples"],
        spec["seed"],
    )


def same_images(first_run: str, second_run: str, store: Store | None = None) -> bool:
    """Were the two runs scored on the same evaluation images (same dataset, subset size and seed)?"""
    store = store or open_store()
    return _eval_images(store.run(first_run)["spec_json"]) == _eval_images(store.run(second_run)["spec_json"])


def compare(
    first: tuple[str, int],
    second: tuple[str, int],
    attack: str,
    eps: float,
    store: Store | None = None,
    source: str = "robust",
) -> Difference:
    """Accuracy of checkpoint `first` (run id, step) minus `second` under one attack at one ε, with its
    95 % interval and p-value: per example (Tango's interval, exact McNemar p) when both were scored on
    the same images and kept their flags — an anytime-valid interval once further images were added to
    decide it (engine/report/sequential.py) —, otherwise as two independent accuracies (Newcombe
    interval, Fisher's exact test)."""
    store = store or open_store()
    a, b = (_result(store, run, step, attack, eps, source) for run, step in (first, second))
    if a["n"] is None or b["n"] is None:
        raise SpecError([f"{source}: these results predate per-example records; run them again to compare"])
    if a["correct"] is not None and b["correct"] is not None and same_images(first[0], second[0], store):
        return paired_grown(unpack_flags(a["correct"], a["n"]), unpack_flags(b["correct"], b["n"]), a["n_own"])
    return unpaired(successes(a["acc"], a["n"]), a["n"], successes(b["acc"], b["n"]), b["n"])
