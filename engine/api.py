"""The engine's Python API, used by the CLI, the pages and notebooks.

Importing it is cheap: torch loads only in the functions that compute or load checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from engine.errors import NotFoundError, SpecError
from engine.paths import REPO_ROOT, cache_dir
from engine.store import BUDGET_COLUMNS, EFFECTIVE_COLUMNS, EFFICIENCY_COLUMNS, SHRUNK_COLUMNS, Store
from engine.spec import describe

if TYPE_CHECKING:
    import torch

    from engine.pipeline import ProgressFn
    from engine.spec import RunSpec

PRESETS_DIR = REPO_ROOT / "presets"


@lru_cache(maxsize=8)
def _store_at(root: str) -> Store:
    return Store(Path(root))


def open_store(root: str | Path | None = None) -> Store:
    """The store of a cache folder (default: `AER_CACHE_DIR` or `cache/`), one per process."""
    return _store_at(str(Path(root).resolve() if root else cache_dir()))


def presets() -> dict[str, str]:
    """Preset name → its one-line description (the first comment line of its YAML)."""
    out = {}
    for path in sorted(PRESETS_DIR.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        out[path.stem] = first.lstrip("# ").strip()
    return out


def preset_path(name: str) -> Path:
    """The YAML file of a named preset; SpecError naming the choices if there is none."""
    if name not in presets():
        raise SpecError([f"preset: unknown preset {name[:80]!r}; choose from {sorted(presets())}"])
    return PRESETS_DIR / f"{name}.yaml"


def load_tree(source: str | Path | None = None, *, preset: str | None = None,
              overrides: list[str] | None = None) -> dict[str, Any]:
    """The raw spec tree of a YAML/JSON file or a preset, with overrides applied (not validated)."""
    from engine.spec import apply_overrides, parse_text

    if (source is None) == (preset is None):
        raise SpecError(["spec: give a spec file or a preset, not both or neither"])
    path = preset_path(preset) if preset else Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([f"{path}: cannot read ({exc.__class__.__name__})"]) from None
    return apply_overrides(parse_text(text, str(path)), overrides or [])


def raw_key(tree: dict[str, Any]) -> str:
    """Hash of a raw spec tree and the engine version: the key of the cache-hit fast path."""
    from engine import ENGINE_VERSION

    payload = f"{ENGINE_VERSION}\n{json.dumps(tree, sort_keys=True, default=str)}".encode()
    return hashlib.sha256(payload).hexdigest()


def run_tree(tree: dict[str, Any], store: Store | None = None, on_progress: "ProgressFn | None" = None) -> dict[str, Any]:
    """Validate and run a raw spec tree; a tree seen before and finished returns without torch."""
    from engine.spec import validate

    store = store or open_store()
    key = raw_key(tree)
    known = store.alias(key)
    if known and store.run(known)["status"] == "done":
        return document(known, store, cached=True)
    spec = validate(tree)
    doc = run(spec, store, on_progress)
    store.put_alias(key, spec.run_id())
    return doc


def load_spec(source: str | Path | None = None, *, preset: str | None = None, overrides: list[str] | None = None) -> "RunSpec":
    """Validate a spec from a YAML/JSON file or a preset name, with `a.b=value` overrides."""
    from engine.spec import validate

    return validate(load_tree(source, preset=preset, overrides=overrides))


def validate_tree(tree: dict[str, Any]) -> "RunSpec":
    """Validate a raw spec tree (SpecError with one line per problem)."""
    from engine.spec import validate

    return validate(tree)


def spec_from_text(text: str, overrides: list[str] | None = None) -> "RunSpec":
    """Validate a spec from YAML or JSON text (an editor or an upload), by content."""
    from engine.spec import apply_overrides, parse_text, validate

    return validate(apply_overrides(parse_text(text), overrides or []))


def run(spec: "RunSpec", store: Store | None = None, on_progress: "ProgressFn | None" = None) -> dict[str, Any]:
    """Run a spec to completion (using the cache) and return its result document."""
    from engine.pipeline import run as run_pipeline

    store = store or open_store()
    cached = run_pipeline(spec, store, on_progress)
    return document(spec.run_id(), store, cached=cached)


def document(run_id: str, store: Store | None = None, cached: bool = True) -> dict[str, Any]:
    """The JSON result document of a run (the CLI contract of ARCHITECTURE.md)."""
    store = store or open_store()
    row = store.run(run_id)
    by_step = {name: _group_by_step(rows) for name, rows in (
        ("robust", store.robust([run_id])), ("transfer", store.robust([run_id], "transfer")),
        ("layers", store.layers(run_id)), ("efficiency", store.efficiency([run_id])),
        ("budget", store.budgets([run_id])))}
    points = []
    for step in store.steps(run_id):
        k = step["step"]
        point = {
            "step": k, "sparsity": step["sparsity"], "target_sparsity": step["target_sparsity"],
            "clean_acc": step["clean_acc"], "checkpoint": step["checkpoint"], "sha256": step["sha256"],
            "robust": [_attack_point(r) for r in by_step["robust"].get(k, [])],
            "layers": [_layer_point(r) for r in by_step["layers"].get(k, [])],
        }
        if by_step["transfer"]:
            point["transfer"] = [_attack_point(r) for r in by_step["transfer"].get(k, [])]
        for cost in by_step["efficiency"].get(k, []):
            point["efficiency"] = {c: cost[c] for c in EFFICIENCY_COLUMNS + EFFECTIVE_COLUMNS + SHRUNK_COLUMNS
                                   if cost[c] is not None}
        for budget in by_step["budget"].get(k, []):
            point["budget"] = {c: budget[c] for c in BUDGET_COLUMNS if budget[c] is not None}
        points.append(point)
    return {"run_id": run_id, "cached": cached, "status": row["status"], "error": row["error"],
            "base_id": row["base_id"], "engine_version": row["engine_version"], "n_steps": row["n_steps"],
            "spec": json.loads(row["spec_json"]), "points": points,
            "warnings": [{k: w[k] for k in ("kind", "step", "attack", "message")} for w in warnings_list([run_id], store)]}


def _group_by_step(rows: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["step"], []).append(row)
    return grouped


def _layer_point(row: dict[str, Any]) -> dict[str, Any]:
    point = {key: row[key] for key in ("layer", "kind", "numel", "nonzero", "sparsity")} | {"prunable": bool(row["prunable"])}
    extra = ("mrs", "mrs_reach", "ratio", "effective_nonzero")
    return point | {key: row[key] for key in extra if row.get(key) is not None}


def _attack_point(row: dict[str, Any]) -> dict[str, Any]:
    return {"attack": row["attack"], "norm": row["norm"], "eps": row["eps"], "acc": row["acc"]}


def runs_frame(store: Store | None = None) -> pd.DataFrame:
    """One row per run: id, status, steps done of total, model, dataset, method, schedule."""
    rows = []
    for r in (store or open_store()).runs():
        spec = json.loads(r["spec_json"])
        rows.append({"run_id": r["run_id"], "status": r["status"], "steps_done": r["steps_done"],
                     "n_steps": r["n_steps"], "dataset": spec["dataset"]["name"], "model": spec["model"]["name"],
                     "method": spec["prune"]["method"], "schedule": spec["schedule"]["name"],
                     "base_mode": spec["train"].get("mode", "natural"),
                     "finetune_mode": spec["prune"].get("mode") or spec["train"].get("mode", "natural"),
                     "base_id": r["base_id"], "label": describe(spec),
                     "created_at": pd.to_datetime(r["created_at"], unit="s"), "error": r["error"]})
    columns = ["run_id", "status", "steps_done", "n_steps", "dataset", "model", "method", "schedule", "base_mode",
               "finetune_mode", "base_id", "label", "created_at", "error"]
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
    from engine.summaries import hygiene

    store = store or open_store()
    found = [{"kind": w["kind"], "run_id": w["run_id"], "step": w["step"], "attack": "", "message": w["message"]}
             for w in store.warnings(list(run_ids))]
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


def load_checkpoint(run_id: str, step: int, store: Store | None = None) -> "torch.nn.Module":
    """The model of a finished step, weights checked against their SHA-256, in eval mode."""
    from engine.checkpoints import load_verified
    from engine.datasets import load_dataset
    from engine.device import prepare_model
    from engine.models import build_model

    store = store or open_store()
    spec = json.loads(store.run(run_id)["spec_json"])
    row = store.step(run_id, step)
    model = build_model(spec["model"]["name"], load_dataset(spec["dataset"]["name"]).info)
    model.load_state_dict(load_verified(store.root / row["checkpoint"], row["sha256"]))
    return prepare_model(model).eval()


def eval_subset(run_id: str, store: Store | None = None) -> tuple["torch.Tensor", "torch.Tensor"]:
    """The run's fixed evaluation tensors: x in [0, 1] of shape (N, C, H, W), and labels y."""
    from engine.datasets import load_dataset
    from engine.pipeline import eval_split
    from engine.spec import validate

    spec = validate(json.loads((store or open_store()).run(run_id)["spec_json"]))
    return eval_split(load_dataset(spec.dataset.name), spec)


def submit(spec: "RunSpec", store: Store | None = None, max_attempts: int = 3) -> dict[str, Any]:
    """Queue a spec for the workers; returns its job (an existing live one for the same run id)."""
    from engine.jobs import queue

    store = store or open_store()
    run_id = spec.run_id()
    done = store.has_run(run_id) and store.run(run_id)["status"] == "done"
    return queue.submit(store, run_id, spec.canonical_json(), run_done=done, max_attempts=max_attempts).as_dict()


def job(job_id: int, store: Store | None = None) -> dict[str, Any]:
    """A job's status, attempts, progress (step, n_steps, phase, fraction, ETA) and error."""
    from engine.jobs import queue

    return queue.get(store or open_store(), int(job_id)).as_dict()


def latest_job(run_id: str, store: Store | None = None) -> dict[str, Any] | None:
    """The newest job of a run, or None."""
    from engine.jobs import queue

    found = queue.latest_for_run(store or open_store(), run_id)
    return found.as_dict() if found else None


def cancel(job_id: int, store: Store | None = None) -> dict[str, Any]:
    """Cancel a queued job, or ask a running one to stop between batches."""
    from engine.jobs import queue

    return queue.cancel(store or open_store(), int(job_id)).as_dict()


def retry(job_id: int, store: Store | None = None) -> dict[str, Any]:
    """Queue a failed or cancelled job's spec again (it resumes from its last finished step)."""
    from engine.jobs import queue

    store = store or open_store()
    old = queue.get(store, int(job_id))
    done = store.has_run(old.run_id) and store.run(old.run_id)["status"] == "done"
    return queue.submit(store, old.run_id, old.spec_json, run_done=done).as_dict()


def jobs(store: Store | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """The newest jobs first, as plain dicts (None where a field is unset)."""
    from engine.jobs import queue

    return [j.as_dict() for j in queue.jobs(store or open_store(), limit)]


def jobs_frame(store: Store | None = None, limit: int = 200) -> pd.DataFrame:
    """The queue, newest first: job_id, run_id, status, attempts, step, n_steps, phase, fraction, ETA, error."""
    columns = ["job_id", "run_id", "status", "attempts", "step", "n_steps", "phase", "fraction", "eta_seconds",
               "error", "created_at", "updated_at"]
    rows = jobs(store, limit)
    return pd.DataFrame(rows, columns=columns) if not rows else pd.DataFrame(rows)[columns]


def ensure_workers(root: Path | None = None, procs: int = 1) -> subprocess.Popen | None:
    """Start a local worker pool for this cache unless one is alive (or AER_WORKERS=0).

    The pool watches this process and stops when it exits; it is also terminated at exit.
    """
    import atexit

    from engine.jobs import queue

    store = open_store(root)
    if os.environ.get("AER_WORKERS") == "0" or queue.live_workers(store):
        return None
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "--cache-dir", str(store.root), "worker", "--procs", str(procs),
         "--parent-pid", str(os.getpid())],
        cwd=REPO_ROOT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    atexit.register(process.terminate)
    return process


@lru_cache(maxsize=32)
def paper_specs(name: str, reduced: bool = False) -> dict[str, "RunSpec"]:
    """A paper preset's variants as validated specs (label → spec), computed once per process."""
    from engine import papers

    return papers.expand(papers.load_paper(name), reduced)


def paper_presets() -> dict[str, Any]:
    """Paper preset name → its validated PaperPreset (title, paper, claim, cold_seconds, ...)."""
    from engine import papers

    return {name: papers.load_paper(name) for name in papers.paper_names()}


def paper_results(name: str, store: Store | None = None, reduced: bool = False) -> Any:
    """What the store holds for a paper preset's runs (engine.papers.PaperResults)."""
    from engine import papers

    return papers.gather(paper_specs(name, reduced), store or open_store())


def paper_verdict(name: str, results: Any = None, store: Store | None = None, reduced: bool = False) -> Any:
    """Does the paper's claim hold in this store? (engine.claims.Verdict, with the numbers)."""
    from engine import papers

    return papers.judge(papers.load_paper(name), results or paper_results(name, store, reduced))


def submit_paper(name: str, store: Store | None = None, reduced: bool = False) -> list[dict[str, Any]]:
    """Queue every variant of a paper preset for the workers; their jobs (existing live ones reused)."""
    store = store or open_store()
    return [submit(spec, store) for spec in paper_specs(name, reduced).values()]


def catalog() -> dict[str, dict[str, str]]:
    """Every registry's entries with their help text: what a spec may name."""
    from engine.attacks import ATTACKS
    from engine.datasets import DATASETS
    from engine.models import MODELS
    from engine.methods import METHODS
    from engine.schedules import SCHEDULES
    from engine.losses import LOSSES

    families = {"dataset": DATASETS, "model": MODELS, "training mode": LOSSES, "pruning method": METHODS,
                "schedule": SCHEDULES, "attack": ATTACKS}
    return {kind: {name: registry.help(name) for name in registry.names()} for kind, registry in families.items()}


__all__ = [
    "NotFoundError", "SpecError", "cancel", "catalog", "document", "efficiency_frame", "ensure_workers", "eval_subset", "export", "job",
    "jobs", "jobs_frame", "latest_job", "layers_frame", "load_checkpoint", "load_spec", "load_tree", "open_store",
    "paper_presets", "paper_results", "paper_specs", "paper_verdict", "presets", "submit_paper",
    "retry", "robust_frame", "warnings_list", "run", "run_tree", "runs_frame", "spec_from_text", "submit", "validate_tree",
]
