"""Sweeps: a grid over spec fields, run through the local job queue or as Ray tasks.

A sweep file names a base spec (a preset or an inline spec) and a grid of dotted field paths:

    preset: smoke
    grid:
      schedule.final_sparsity: [0.5, 0.9]
      prune.method: [global_magnitude, random]

Every combination is one spec. Runs already done in the store are not computed again.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from tqdm import tqdm

from engine.errors import SpecError, optional_import
from engine.jobs import queue
from engine.jobs.worker import Worker
from engine.pipeline import run as run_pipeline
from engine.science.catalog import validate
from engine.spec.reading import excerpt, load_tree, parse_text, read_spec_text, set_path
from engine.spec.runspec import MAX_PROBLEMS, Frozen, RunSpec, check_total_work, check_work, format_errors
from engine.status import LIVE_JOBS, RunStatus
from engine.store.bundle import export_base, export_run, import_base, import_run
from engine.store.db import Store

log = logging.getLogger(__name__)


class SweepSpec(Frozen):
    """A base spec (preset name or inline spec) and the grid of field values to cross."""

    preset: str | None = None
    spec: dict[str, Any] | None = None
    grid: dict[str, list[Any]] = Field(min_length=1, max_length=16)


MAX_SWEEP_RUNS = 256
"""The most runs one sweep file may expand to."""


def load_sweep(path: Path) -> SweepSpec:
    """Read and validate a sweep file (the spec reader's bounds, and at most MAX_SWEEP_RUNS runs)."""
    try:
        sweep = SweepSpec.model_validate(parse_text(read_spec_text(path), str(path)[:200]))
    except ValidationError as exc:
        raise SpecError(format_errors(exc)) from None
    if (sweep.preset is None) == (sweep.spec is None):
        raise SpecError(["sweep: give either `preset` or `spec` as the base"])
    if math.prod(len(values) for values in sweep.grid.values()) > MAX_SWEEP_RUNS:
        raise SpecError([f"grid: more than {MAX_SWEEP_RUNS} combinations; split the sweep"])
    return sweep


def expand(sweep: SweepSpec, allow_long: bool = False) -> list[tuple[str, RunSpec]]:
    """Every combination of the grid applied to the base: (label, validated spec) pairs; a run above
    the work bound is refused unless `allow_long` (engine.spec.runspec.check_work)."""
    base = load_tree(preset=sweep.preset) if sweep.preset else (sweep.spec or {})
    keys = list(sweep.grid)
    specs, problems = [], []
    for values in itertools.product(*(sweep.grid[k] for k in keys)):
        tree = copy.deepcopy(base)
        for key, value in zip(keys, values):
            set_path(tree, key, value)
        label = ", ".join(f"{excerpt(str(k))}={excerpt(str(v))}" for k, v in zip(keys, values))  # user text: short
        try:
            spec = validate(tree)
            check_work(spec, allow_long)
            specs.append((label, spec))
        except SpecError as exc:
            problems += [f"[{label}] {line}" for line in exc.problems]
    if problems:
        more = len(problems) - MAX_PROBLEMS
        raise SpecError(problems[:MAX_PROBLEMS] + ([f"(sweep): … and {more} more problems"] if more > 0 else []))
    check_total_work([spec for _, spec in specs], allow_long)
    return specs


def _is_done(store: Store, run_id: str) -> bool:
    return store.has_run(run_id) and store.run(run_id)["status"] == RunStatus.DONE


def run_local(specs: list[tuple[str, RunSpec]], store: Store) -> None:
    """Queue every spec and work the queue in this process until the sweep's jobs have ended."""
    job_ids = [queue.submit_spec(store, spec).job_id for _, spec in specs]
    worker = Worker(store)
    while any(queue.get(store, j).status in LIVE_JOBS for j in job_ids):
        if worker.serve(exit_when_idle=True, max_jobs=1) == 0:
            worker.stopping.wait(0.5)  # others' workers hold the remaining jobs; wait for them


TASK_CPUS = 1
"""Cores each Ray task asks for, and the torch threads it runs at: tasks × threads never exceed a node's
cores (two tasks of two threads each on two cores slow a step several-fold)."""


def task_resources(cluster: dict[str, float]) -> dict[str, float]:
    """What one sweep task asks Ray for: TASK_CPUS cores, and one GPU where the cluster declares GPUs (so a
    paper preset's variants spread over them, one per GPU; the engine uses CUDA where it is present)."""
    return {"num_cpus": TASK_CPUS, "num_gpus": 1 if cluster.get("GPU", 0) >= 1 else 0}


def compute_bundle(spec_json: str, base_bundle: dict[str, Any] | None, threads: int = TASK_CPUS) -> dict[str, Any]:
    """Ray task body: run one spec in a private store on this node, at `threads` torch threads (its share
    of the cores), and return its bundle."""
    spec = validate(json.loads(spec_json))
    with tempfile.TemporaryDirectory(prefix="aer-ray-") as root:
        store = Store(Path(root))
        if base_bundle:
            import_base(store, base_bundle)
        run_pipeline(spec, store, threads=threads)
        bundle = export_run(store, spec.run_id())
        store.close()
        return bundle


def run_ray(specs: list[tuple[str, RunSpec]], store: Store, address: str | None = None) -> None:
    """Run the specs not yet done as Ray tasks; this process writes their bundles into the store."""
    ray = optional_import("ray", "a Ray sweep", "pip install 'aer-lab[ray]' (or ray==2.60.0)")  # heavy: on use

    todo = [spec for _, spec in specs if not _is_done(store, spec.run_id())]
    if not todo:
        return
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address,
            num_cpus=None if address else os.cpu_count(),  # a local cluster of this machine's cores
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        task = ray.remote(**task_resources(ray.cluster_resources()))(compute_bundle)
        pending = [task.remote(s.canonical_json(), export_base(store, s.base_id())) for s in todo]
        with tqdm(total=len(pending), unit="run", desc="ray sweep") as bar:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                import_run(store, ray.get(ready[0]))
                bar.update(1)
    finally:
        if started_here:
            ray.shutdown()


def run_sweep(
    path: Path, store: Store, executor: str = "local", address: str | None = None, allow_long: bool = False
) -> list[dict[str, Any]]:
    """Expand a sweep file and run it; one result row per spec (label, run_id, status)."""
    specs = expand(load_sweep(path), allow_long)
    if executor == "ray":
        run_ray(specs, store, address)
    else:
        run_local(specs, store)
    return [
        {
            "label": label,
            "run_id": spec.run_id(),
            "status": store.run(spec.run_id())["status"] if store.has_run(spec.run_id()) else RunStatus.MISSING,
        }
        for label, spec in specs
    ]
