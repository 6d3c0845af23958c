"""The engine's Python API, used by the CLI, the pages and notebooks: one facade over specs,
runs, the store's frames, jobs and paper presets.

Importing it is cheap (no torch, pandas or scipy): validating, computing and loading checkpoints
import the science on first use, each such import marked as keeping torch out of the fast CLI paths,
and the store's frames (pandas, scipy) load on first use through the module's `__getattr__`, so the
CLI refuses a bad spec in a fraction of a second.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import DataUnavailableError, EngineError, NotFoundError, SpecError, StoreError
from engine.jobs import queue
from engine.jobs.queue import Job
from engine.jobs.turns import PLAYGROUND, LineTimeout, Superseded
from engine.paths import REPO_ROOT, cache_dir
from engine.spec.form import SAME_AS_BASE, FormChoices, FormField, parse_eps, schedule_fields, schedule_start
from engine.spec.form import changes as _changes
from engine.spec.form import form_tree as _form_tree
from engine.spec.form import number as parse_number
from engine.spec.form import schedule_walk as _schedule_walk
from engine.spec.reading import (
    MAX_SPEC_BYTES,
    apply_overrides,
    bounded,
    load_tree,
    parse_text,
    preset_path,
    presets,
    raw_key,
    seed_trees,
)
from engine.spec.runspec import MAX_WORK, TEST_SPLIT_SIZES, RunSpec, check_total_work, check_work
from engine.spec.runspec import describe as describe_spec
from engine.spec.runspec import validate as validate_structure
from engine.spec.user_files import MAX_UPLOAD_BYTES, check_upload, pinned
from engine.status import ENDED_JOBS, LIVE_JOBS, Decision, JobStatus, RunStatus
from engine.store.db import Store, forget_stores, open_store
from engine.store.estimate import Estimate, duration, guess_basis, shares_dense_point
from engine.store.estimate import estimate as _estimate
from engine.store.uploads import store_upload

FRAMES = (
    "budget_frame",
    "compare",
    "document",
    "efficiency_frame",
    "export",
    "layers_frame",
    "robust_frame",
    "runs_frame",
    "runs_having",
    "same_images",
    "warnings_list",
)
"""The store's frames, re-exported here and loaded on first use (engine.store.frames: pandas, scipy)."""

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from engine.jobs.fillers import Filler, Tour  # types only: building one loads torch
    from engine.papers.claims import Verdict  # types only: importing these loads torch
    from engine.papers.presets import PaperPreset  # types only: importing these loads torch
    from engine.papers.results import PaperResults  # types only: importing these loads torch
    from engine.pipeline import ProgressFn  # types only: importing these loads torch
    from engine.science.data import Dataset  # types only: importing these loads torch
    from engine.science.playground import Example  # types only: importing these loads torch
    from engine.store.frames import (
        budget_frame,
        compare,
        document,
        efficiency_frame,
        export,
        layers_frame,
        robust_frame,
        runs_frame,
        runs_having,
        same_images,
        warnings_list,
    )


def __getattr__(name: str) -> Any:
    """The frames on first use (PEP 562): `api.robust_frame` imports pandas then, not `import engine.api`."""
    if name in FRAMES:
        return getattr(importlib.import_module("engine.store.frames"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _frames() -> Any:
    return importlib.import_module("engine.store.frames")


def parse_numbers(text: str) -> list[float] | str:
    """Comma-separated numbers as floats; the text itself when it does not parse (validation names it)."""
    return parse_eps(text)


def spec_text(tree: dict[str, Any]) -> str:
    """A raw spec tree as YAML text, sections in their written order (for an editor)."""
    import yaml  # noqa: PLC0415  yaml: only for the Runs page's editor

    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)


def spec_tree(run_id: str, store: Store | None = None) -> dict[str, Any]:
    """A stored run's full spec as a raw tree (every default filled in): what a fork starts from."""
    return json.loads((store or open_store()).run(run_id)["spec_json"])


def fork_changes(parent_id: str, spec: RunSpec, store: Store | None = None) -> list[str]:
    """What a child spec changes from its parent run, one 'field: before → after' line each."""
    return _changes(spec_tree(parent_id, store), json.loads(spec.canonical_json()))


def fork_reuse(parent_id: str, spec: RunSpec, store: Store | None = None) -> str:
    """What a what-if child reuses of its parent, in a sentence: the trained base, and the dense point
    (step 0) when it also evaluates alike; or that it trains its own base."""
    store = store or open_store()
    if spec.base_id() != store.run(parent_id)["base_id"]:
        return "The change reaches the base model (dataset, model, training or seed): the child trains its own base."
    if shares_dense_point(spec, store):
        return (
            "Parent and child share the trained base and its measured dense point: only pruning and the pruned "
            "checkpoints' attacks are computed."
        )
    return "Parent and child share the trained base: only pruning and evaluation are computed."


def schedule_walk(tree: dict[str, Any]) -> pd.DataFrame:
    """The sparsity the run trains at, point by point, with its checkpoints (engine.spec.form.schedule_walk);
    SpecError naming the field when the schedule is invalid."""
    import pandas as pd  # noqa: PLC0415  on first use: a refused spec never waits for pandas

    return pd.DataFrame(_schedule_walk(tree), columns=["batch", "sparsity", "checkpoint"])


def form_tree(preset: str, choices: FormChoices) -> dict[str, Any]:
    """The raw spec tree the Runs form describes: the preset's tree with the form's choices laid over it."""
    return _form_tree(load_tree(preset=preset), choices)


def store_version(store: Store | None = None) -> int:
    """Changes whenever anything is committed to the store: the key of cached page reads."""
    return (store or open_store()).last_change()


def checkpoints(run_id: str, store: Store | None = None) -> dict[int, float]:
    """A run's finished steps and the sparsity each reached, in step order."""
    return {row["step"]: row["sparsity"] for row in (store or open_store()).steps(run_id)}


def validate_tree(tree: dict[str, Any]) -> RunSpec:
    """Validate a raw spec tree (SpecError, one line per problem): types, ranges and finiteness first, then
    the registered names, which need the registries (torch), so a malformed spec is refused without them."""
    validate_structure(tree)
    from engine.science.catalog import validate  # noqa: PLC0415  the registries load torch: not on the cache-hit path

    return pinned(validate(tree))


def validate_trees(tree: dict[str, Any]) -> list[RunSpec]:
    """Validate a raw tree whose `seed` may be a list (one run per seed); problems of all seeds at once."""
    specs, problems = [], []
    for one in seed_trees(tree):
        try:
            specs.append(validate_tree(one))
        except SpecError as exc:
            problems += [line for line in exc.problems if line not in problems]
    if problems:
        raise SpecError(problems)
    return specs


def run_trees(
    tree: dict[str, Any], store: Store | None = None, on_progress: "ProgressFn | None" = None, allow_long: bool = False
) -> list[dict[str, Any]]:
    """Run a raw tree, one run per seed when `seed` is a list; their result documents in seed order. The
    seeds together are held to the work bound before the first runs (engine.spec.runspec.check_total_work)."""
    trees = seed_trees(tree)
    if len(trees) > 1:
        check_total_work(validate_trees(tree), allow_long)
    return [run_tree(one, store, on_progress, allow_long) for one in trees]


def run_tree(
    tree: dict[str, Any],
    store: Store | None = None,
    on_progress: "ProgressFn | None" = None,
    allow_long: bool = False,
) -> dict[str, Any]:
    """Validate and run a raw spec tree; a tree seen before and finished returns without torch. A run
    above the work bound is refused unless `allow_long` (engine.spec.runspec.check_work)."""
    store = store or open_store()
    key = raw_key(tree)
    known = store.alias(key)
    if known and store.run(known)["status"] == RunStatus.DONE:
        return _frames().document(known, store, cached=True)
    spec = validate_tree(tree)
    check_work(spec, allow_long)
    doc = run(spec, store, on_progress)
    store.put_alias(key, spec.run_id())
    return doc


def load_spec(
    source: str | Path | None = None, *, preset: str | None = None, overrides: list[str] | None = None
) -> RunSpec:
    """Validate a spec from a YAML/JSON file or a preset name, with `a.b=value` overrides."""
    return validate_tree(load_tree(source, preset=preset, overrides=overrides))


def load_specs(
    source: str | Path | None = None, *, preset: str | None = None, overrides: list[str] | None = None
) -> list[RunSpec]:
    """Like `load_spec`, one spec per seed when the spec's `seed` is a list."""
    return validate_trees(load_tree(source, preset=preset, overrides=overrides))


def specs_from_text(text: str, overrides: list[str] | None = None) -> list[RunSpec]:
    """Like `spec_from_text`, one spec per seed when the text's `seed` is a list."""
    return validate_trees(apply_overrides(parse_text(text), overrides or []))


def spec_from_text(text: str, overrides: list[str] | None = None) -> RunSpec:
    """Validate a spec from YAML or JSON text (an editor or an upload), by content."""
    return validate_tree(apply_overrides(parse_text(text), overrides or []))


def run(spec: RunSpec, store: Store | None = None, on_progress: "ProgressFn | None" = None) -> dict[str, Any]:
    """Run a spec to completion (using the cache) and return its result document."""
    from engine.pipeline import run as run_pipeline  # noqa: PLC0415  torch: only when something is computed

    store = store or open_store()
    cached = run_pipeline(spec, store, on_progress)
    return _frames().document(spec.run_id(), store, cached=cached)


def load_checkpoint(run_id: str, step: int, store: Store | None = None) -> "torch.nn.Module":
    """The model of a finished step, weights checked against their SHA-256, in eval mode."""
    # torch loads here, not when the API is imported
    from engine.science.data import data_of  # noqa: PLC0415  torch: only when a checkpoint is loaded
    from engine.science.device import prepare_model  # noqa: PLC0415  torch: only when a checkpoint is loaded
    from engine.science.models import build_model  # noqa: PLC0415  torch: only when a checkpoint is loaded
    from engine.store.checkpoints import load_in  # noqa: PLC0415  torch: only when a checkpoint is loaded

    store = store or open_store()
    spec = validate_tree(json.loads(store.run(run_id)["spec_json"]))
    row = store.step(run_id, step)
    model = build_model(spec.model.name, data_of(spec.dataset).info, spec.model.width)
    model.load_state_dict(load_in(store.root, row["checkpoint"], row["sha256"]))
    return prepare_model(model).eval()


def model_file(run_id: str, step: int, fmt: str, store: Store | None = None, shrunk: bool = False) -> bytes:
    """Checkpoint `step` of a run as a file's bytes: "safetensors" (weights and pruning masks, described
    in the metadata) or "onnx" (the model taking [0, 1] images); `shrunk`: the physically smaller model of
    filter pruning (its weights only: nothing in it is masked)."""
    from engine.science.model_export import MODEL_FORMATS, model_bytes  # noqa: PLC0415  torch loads here
    from engine.store.checkpoints import load_in  # noqa: PLC0415  torch: only when a checkpoint is read

    store = store or open_store()
    if fmt not in MODEL_FORMATS:
        raise SpecError([f"format: unknown model format {fmt[:20]!r}; choose from {list(MODEL_FORMATS)}"])
    steps = {row["step"]: row for row in store.steps(run_id)}
    if step not in steps:
        raise SpecError([f"--step: run {run_id[:12]} has no checkpoint {step}; it has {sorted(steps)}"])
    row, spec = steps[step], json.loads(store.run(run_id)["spec_json"])
    about = {
        "run_id": run_id,
        "step": str(step),
        "sparsity": f"{row['sparsity']:.6f}",
        "model": spec["model"]["name"],
        "dataset": spec["dataset"]["name"],
    }
    masks = load_in(store.root, row["mask_checkpoint"], row["mask_sha256"])
    example = eval_subset(run_id, store)[0][:2]
    model = load_checkpoint(run_id, step, store)
    if shrunk:
        model, masks = _shrunk(model, masks, example, spec["prune"]["method"]), {}
        about["shrunk"] = "pruned filters removed"
    return model_bytes(fmt, model, masks, example, about)


def _shrunk(model: "torch.nn.Module", masks: dict, example: "torch.Tensor", method: str) -> "torch.nn.Module":
    """The physically smaller model; SpecError when the checkpoint has no whole filter to remove."""
    from engine.science.efficiency import shrunk_model  # noqa: PLC0415  torch: only when a checkpoint is shrunk
    from engine.science.pruning.methods import METHODS  # noqa: PLC0415  torch: only when a checkpoint is shrunk

    filters = METHODS.get(method).granularity == "filter"
    small = shrunk_model(model, {name: mask.float() for name, mask in masks.items()}, example) if filters else None
    if small is None:
        raise SpecError(
            [
                "--shrunk: this checkpoint has no filter that can be removed (weight pruning zeroes single "
                "weights; grouped convolutions are not shrunk); export the masked model without --shrunk"
            ]
        )
    return small


def export_model(
    run_id: str, step: int, fmt: str, out: Path, store: Store | None = None, force: bool = False, shrunk: bool = False
) -> Path:
    """Write `model_file(run_id, step, fmt, shrunk=shrunk)` to `out`, under the same rules as `export`
    (never over a file without `force`, never over a database, through a temporary file)."""
    store = store or open_store()
    target = _frames().export_target(Path(out), store, force)
    return _frames().write_export(target, model_file(run_id, step, fmt, store, shrunk))


def eval_subset(run_id: str, store: Store | None = None) -> tuple["torch.Tensor", "torch.Tensor"]:
    """The run's fixed evaluation tensors: x in [0, 1] of shape (N, C, H, W), and labels y."""
    from engine.pipeline import eval_split  # noqa: PLC0415  torch loads here, not when the API is imported
    from engine.science.data import data_of  # noqa: PLC0415  torch: only when evaluation tensors are read

    spec = validate_tree(json.loads((store or open_store()).run(run_id)["spec_json"]))
    return eval_split(data_of(spec.dataset), spec)


def submit(
    spec: RunSpec,
    store: Store | None = None,
    max_attempts: int = 3,
    allow_long: bool = False,
    parent: str | None = None,
) -> Job:
    """Queue a spec for the workers; returns its job (an existing live one for the same run id). A run
    above the work bound is refused unless `allow_long` (engine.spec.runspec.check_work); `parent`
    records the run it was forked from."""
    check_work(spec, allow_long)
    store = store or open_store()
    if parent:
        store.put_parent(spec.run_id(), store.resolve(parent))
    job = queue.submit_spec(store, spec, max_attempts)
    if job.status == JobStatus.QUEUED:
        store.note_estimate(job.job_id, estimate(spec, store).seconds)
    return job


def decision(
    first: tuple[str, int],
    second: tuple[str, int],
    attack: str,
    eps: float,
    margin: float = 0.0,
    store: Store | None = None,
) -> dict[str, Any]:
    """Where the question "first ≥ second − margin?" stands on the images so far (margin 0: "do they
    differ?"): its difference and verdict, whether it can grow (the test split has images left), what
    growing may cost, and the live job growing it, if any. SpecError when the pair cannot be grown."""
    from engine.jobs import decide  # noqa: PLC0415  pandas and scipy: on first use

    store = store or open_store()
    question = decide.Question((store.resolve(first[0]), first[1]), (store.resolve(second[0]), second[1]), attack,
                               float(eps), float(margin))  # fmt: skip
    decide.check_question(store, question)
    outcome = decide.standing(store, question)
    dataset = json.loads(store.run(question.first[0])["spec_json"])["dataset"]["name"]
    cost = decide.cost(store, question, TEST_SPLIT_SIZES.get(dataset, outcome.difference.n))
    live = store.db.execute(
        "SELECT job_id FROM jobs WHERE run_id = ? AND status IN ('queued', 'running')", (question.job_key(),)
    ).fetchone()
    return {
        "question": question,
        "difference": outcome.difference,
        "verdict": outcome.verdict,
        "can_grow": cost.images_left > 0,
        "cost": cost,
        "job_id": live["job_id"] if live else None,
    }


def submit_decision(
    first: tuple[str, int],
    second: tuple[str, int],
    attack: str,
    eps: float,
    margin: float = 0.0,
    store: Store | None = None,
) -> Job:
    """Queue "evaluate until decided" for a question the workers grow chunk by chunk (engine/jobs/decide.py);
    returns its job (the live one when the same question is already queued)."""
    store = store or open_store()
    question = decision(first, second, attack, eps, margin, store)["question"]
    return queue.submit(store, question.job_key(), question.as_json())


def grow_decision(
    first: tuple[str, int],
    second: tuple[str, int],
    attack: str,
    eps: float,
    margin: float = 0.0,
    store: Store | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate until decided, here and now (the CLI's `decide`): grow the question chunk by chunk until its
    interval decides it or the test split is spent; with `progress`, a tqdm bar over the chunks. Returns
    what `decision` returns afterwards."""
    from tqdm import tqdm  # noqa: PLC0415  tqdm: only for the CLI's bar

    from engine.jobs import decide  # noqa: PLC0415  torch loads when the first chunk is evaluated

    store = store or open_store()
    question = decision(first, second, attack, eps, margin, store)["question"]
    bar = tqdm(desc="deciding", unit="chunk", disable=not progress)

    def on_chunk(chunk: int, index: int, possible: int) -> None:
        bar.total = possible
        bar.n = chunk - 1
        bar.set_postfix_str(f"chunk {chunk}, checkpoint {index + 1}/2")

    try:
        decide.grow(store, question, on_chunk=on_chunk)
    finally:
        bar.close()
    return decision(question.first, question.second, attack, eps, margin, store)


def submit_all(
    specs: list[RunSpec], store: Store | None = None, allow_long: bool = False, parent: str | None = None
) -> list[Job]:
    """Queue several specs (a spec's seeds, a view's fillers) all or none: every one is checked against
    the work bound before the first is queued; `parent` records the run they fork; returns their jobs."""
    check_total_work(specs, allow_long)
    return [submit(spec, store, allow_long=allow_long, parent=parent) for spec in specs]


def filler(view: str, parent: str | None = None, store: Store | None = None) -> "Filler":
    """The runs that fill an empty Explore view ("layers", "budget", "transfer", "compare"), forked from
    run `parent` (None: the newest finished run, else the teaching preset), with their cost
    (engine.jobs.fillers)."""
    from engine.jobs.fillers import filler as build  # noqa: PLC0415  builds specs: loads the registries, hence torch

    return build(view, store or open_store(), parent)


def fill(view: str, parent: str | None = None, store: Store | None = None) -> list[Job]:
    """Queue the runs that fill `view` (all or none), each recording its parent; returns their jobs."""
    store = store or open_store()
    runs = filler(view, parent, store)
    return submit_all(runs.specs, store, parent=runs.parent)


def tour(store: Store | None = None) -> "Tour":
    """The one-click tour's runs (the teaching surface first, then what fills Layers, Transfer, Compare
    and Budget on its base) and their cost (engine.jobs.fillers.tour)."""
    from engine.jobs.fillers import tour as build  # noqa: PLC0415  builds specs: loads the registries, hence torch

    return build(store or open_store())


def start_tour(store: Store | None = None) -> list[dict[str, Any]]:
    """Queue the tour (all or none), in its order; returns (view, job) for each run."""
    store = store or open_store()
    runs = tour(store)
    jobs = submit_all(runs.specs, store)
    return [{"view": view, **job.as_dict()} for view, job in zip(runs.views, jobs)]


def estimate(spec: RunSpec, store: Store | None = None) -> Estimate:
    """How long the run will take here, per phase, from earlier runs' timings; without any, the stated
    rough guess scaled by how much slower a training step of this model is than one of the model the guess
    was measured on, both probed once on this machine (engine.jobs.probe); `.line()` says it in a sentence."""
    store = store or open_store()
    found = _estimate(spec, store)
    if found.history or (spec.model.name, spec.dataset.name) == guess_basis(spec.model.name):
        return found
    from engine.jobs.probe import cost_ratio  # noqa: PLC0415  torch: times the model once per machine

    return found.scaled(
        cost_ratio(
            store.root,
            spec.model.name,
            spec.dataset.name,
            spec.model.width,
            spec.dataset.path,
            spec.train.batch_size,
        )
    )


def estimate_errors(store: Store | None = None) -> pd.DataFrame:
    """Every finished job's estimate, actual seconds and relative error (actual − estimate) / actual."""
    import pandas as pd  # noqa: PLC0415  on first use: a refused spec never waits for pandas

    frame = pd.DataFrame(
        (store or open_store()).estimates(), columns=["job_id", "run_id", "estimate_seconds", "actual_seconds"]
    )
    return frame.assign(relative_error=(frame["actual_seconds"] - frame["estimate_seconds"]) / frame["actual_seconds"])


def resume(run_id: str, store: Store | None = None) -> Job:
    """Queue an unfinished run again from its stored spec; it resumes from its last finished step."""
    store = store or open_store()
    return submit(validate_tree(json.loads(store.run(run_id)["spec_json"])), store, allow_long=True)


def job(job_id: int, store: Store | None = None) -> Job:
    """A job's status, attempts, progress (step, n_steps, phase, fraction, ETA) and error."""
    return queue.get(store or open_store(), int(job_id))


def describe_job(job: Job) -> str:
    """One line for people: 'step 3 of 5 · pruning to 80.0% · about 40 s left', or the status."""
    return queue.describe(job)


def latest_job(run_id: str, store: Store | None = None) -> Job | None:
    """The newest job of a run, or None."""
    found = queue.latest_for_run(store or open_store(), run_id)
    return found


def cancel(job_id: int, store: Store | None = None) -> Job:
    """Cancel a queued job, or ask a running one to stop between batches."""
    return queue.cancel(store or open_store(), int(job_id))


def retry(job_id: int, store: Store | None = None) -> Job:
    """Queue a failed or cancelled job's spec again (it resumes from its last finished step)."""
    return queue.resubmit(store or open_store(), int(job_id))


def jobs(store: Store | None = None, limit: int = 200) -> list[Job]:
    """The newest jobs first (engine.jobs.Job; `as_dict()` for JSON)."""
    return queue.jobs(store or open_store(), limit)


def jobs_frame(store: Store | None = None, limit: int = 200) -> pd.DataFrame:
    """The queue, newest first: job_id, run_id, status, attempts, step, n_steps, phase, fraction, ETA, error."""
    columns = [
        "job_id",
        "run_id",
        "status",
        "attempts",
        "step",
        "n_steps",
        "phase",
        "fraction",
        "eta_seconds",
        "error",
        "created_at",
        "updated_at",
    ]
    import pandas as pd  # noqa: PLC0415  on first use: a refused spec never waits for pandas

    rows = [job.as_dict() for job in jobs(store, limit)]
    return pd.DataFrame(rows, columns=columns) if not rows else pd.DataFrame(rows)[columns]


def ensure_workers(root: Path | None = None, procs: int = 1) -> subprocess.Popen | None:
    """Start a local worker pool for this cache unless one is alive (or AER_WORKERS=0).

    The pool watches this process and stops when it exits; it is also terminated at exit.
    """
    store = open_store(root)
    if os.environ.get("AER_WORKERS") == "0" or store.read_only or queue.live_workers(store):
        return None
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "--cache-dir",
            str(store.root),
            "worker",
            "--procs",
            str(procs),
            "--parent-pid",
            str(os.getpid()),
        ],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    atexit.register(process.terminate)
    return process


@lru_cache(maxsize=32)
def paper_specs(name: str, reduced: bool = False) -> dict[str, RunSpec]:
    """Every run of a paper preset as a validated spec (label → spec; with several seeds, one label per
    run and seed), computed once per process."""
    from engine.papers import presets as papers  # noqa: PLC0415  validation loads the registries, hence torch

    return papers.expand_all(papers.load_paper(name), reduced)


def paper_presets() -> dict[str, "PaperPreset"]:
    """Paper preset name → its validated PaperPreset (title, paper, claim, cold_seconds, ...)."""
    from engine.papers import presets as papers  # noqa: PLC0415  validation loads the registries, hence torch

    return {name: papers.load_paper(name) for name in papers.paper_names()}


def paper_scale(name: str, store: Store | None = None) -> dict[str, Any]:
    """A paper preset's paper-scale setting (the paper's data, architecture, attack strength and sparsity
    levels): its runs, their work in example-passes, the estimated seconds on this machine and its note."""
    from engine.papers import presets as papers  # noqa: PLC0415  validation loads the registries, hence torch

    preset, store = papers.load_paper(name), store or open_store()
    specs = papers.expand_all(preset, paper=True)
    return {
        "runs": len(specs),
        "passes": sum(spec.work() for spec in specs.values()),
        "seconds": papers.paper_scale_seconds(preset, store),
        "note": preset.paper_scale.note if preset.paper_scale else "",
    }


def paper_judged_by(name: str, paper: bool = False) -> str:
    """Which attacks judge a paper preset's claim, on how many images, and which are reported beside them
    (AutoAttack checking a PGD verdict), in one sentence."""
    from engine.papers import presets as papers  # noqa: PLC0415  validation loads the registries, hence torch

    return papers.judged_by(papers.load_paper(name), paper)


def paper_results(name: str, store: Store | None = None, reduced: bool = False) -> "PaperResults":
    """What the store holds for a paper preset's runs of its first seed (engine.papers.results.PaperResults)."""
    from engine.papers import presets as papers  # noqa: PLC0415  validation loads the registries, hence torch

    return papers.collect(papers.load_paper(name), store or open_store(), reduced)


def paper_figures(name: str, results: "PaperResults") -> list[Any]:
    """A paper preset's figures (plotly) from its gathered results, drawn by its paper's check module."""
    from engine.papers import presets as papers  # noqa: PLC0415  validation loads the registries, hence torch

    return papers.figures(papers.load_paper(name), results)


def paper_verdict(
    name: str,
    results: "PaperResults | None" = None,
    store: Store | None = None,
    reduced: bool = False,
    paper: bool = False,
) -> "Verdict":
    """Does the paper's claim hold in this store? (engine.papers.claims.Verdict, with the numbers).

    `results` (one seed's, as the figures read them) saves a read when the preset has one seed; a preset
    with several seeds is judged from the store, every seed on its own, the findings combined."""
    from engine.papers import presets as papers  # noqa: PLC0415  validation loads the registries, hence torch

    preset = papers.load_paper(name)
    if len(preset.seeds) > 1 or results is None:
        return papers.check(name, store or open_store(), reduced, paper)
    return papers.judge(preset, results, paper)


def claim_decision(name: str, store: Store | None = None, reduced: bool = False) -> dict[str, Any]:
    """Where deciding a preset's claim stands: its growth plan (engine.papers.deciding.ClaimGrowth), or why it
    cannot grow (`refused`), and the live job growing it, if any."""
    from engine.papers import deciding  # noqa: PLC0415  pandas and torch: on first use

    store = store or open_store()
    try:
        plan = deciding.claim_growth(name, store, reduced)
    except SpecError as exc:
        return {"plan": None, "refused": exc.problems[0], "job_id": None}
    return {"plan": plan, "refused": None, "job_id": claim_job(name, store)}


def claim_job(name: str, store: Store | None = None) -> int | None:
    """The live job growing a preset's claim to its next look, if any."""
    store = store or open_store()
    for row in store.db.execute(
        "SELECT job_id, spec_json FROM jobs WHERE status IN ('queued', 'running') AND run_id LIKE 'grow:%'"
    ):
        if json.loads(row["spec_json"])["grow"].get("label", "").startswith(f"{name}: "):
            return int(row["job_id"])
    return None


def submit_claim_look(name: str, store: Store | None = None, reduced: bool = False) -> Job:
    """Queue the growth of a preset's claim to its next planned look (the Papers page's "Decide this");
    returns its job. SpecError when the claim cannot grow or the split is spent."""
    from engine.papers import deciding  # noqa: PLC0415  pandas and torch: on first use

    store = store or open_store()
    plan = deciding.claim_growth(name, store, reduced)
    if plan.growth is None:
        raise SpecError([f"{name}: the test split is spent; the claim cannot grow further"])
    return queue.submit(store, plan.growth.job_key(), plan.growth.as_json())


def decide_paper(name: str, store: Store | None = None, reduced: bool = False, progress: bool = False) -> "Verdict":
    """Grow a preset's claim look by look, here and now, until decided or the split is spent (the CLI's
    `check-preset NAME --decide`); with `progress`, a line per look and a tqdm bar over its chunks."""
    from tqdm import tqdm  # noqa: PLC0415  tqdm: only for the CLI's bar

    from engine.papers import deciding  # noqa: PLC0415  torch loads when the first chunk is evaluated

    bar = tqdm(desc="deciding", unit="chunk", disable=not progress)

    def on_look(plan: Any) -> None:
        if progress:
            tqdm.write(f"{name}: {plan.line()}")
        bar.reset(total=plan.growth.chunks if plan.growth else 0)

    def on_chunk(chunk: int, index: int, possible: int) -> None:
        bar.n = chunk - 1
        bar.set_postfix_str(f"chunk {chunk}, checkpoint {index + 1}")
        bar.refresh()

    try:
        return deciding.decide_claim(name, store or open_store(), reduced, on_look, on_chunk)
    finally:
        bar.close()


def run_paper(
    name: str,
    store: Store | None = None,
    reduced: bool = False,
    executor: str = "local",
    progress: bool = True,
    paper: bool = False,
) -> float:
    """Run every variant of a paper preset to completion (done runs are skipped); wall seconds."""
    from engine.papers import presets as papers  # noqa: PLC0415  torch: runs are computed here

    return papers.run(name, store or open_store(), reduced, executor, progress, paper)


def run_sweep(
    path: Path,
    executor: str = "local",
    address: str | None = None,
    store: Store | None = None,
    allow_long: bool = False,
) -> list[dict[str, Any]]:
    """Expand a sweep file and run it locally or on Ray; one row per spec (label, run_id, status)."""
    from engine.jobs import sweep  # noqa: PLC0415  torch: runs are computed here

    return sweep.run_sweep(path, store or open_store(), executor, address, allow_long)


def doctor(root: str | Path | None = None) -> list[str]:
    """Check the cache, move a damaged database aside, forget damaged checkpoints; the report's lines."""
    from engine.store.doctor import doctor as examine  # noqa: PLC0415  torch: it checks checkpoints

    forget_stores()  # this process's open stores may point at the file being moved aside
    return examine(Path(root).resolve() if root else cache_dir()).lines()


def load_data(name: str) -> "Dataset":
    """A registered dataset, loaded (and prepared on first use); SpecError-style message if unknown."""
    from engine.science.data import DATASETS, load_dataset  # noqa: PLC0415  torch loads here

    DATASETS.get(name)
    return load_dataset(name)


def upload_weights(name: str, data: bytes) -> str:
    """Store an uploaded weights file (safetensors or a plain state dict) in `<cache>/weights` by its
    SHA-256, after reading it as weights only; returns the path `base.weights` names it by. A file that is
    not plain weights (a pickle needing code, no tensors) is refused in one line and nothing is written."""
    from engine.science.weights import read_state  # noqa: PLC0415  torch: only when an upload is read

    check_upload("weights", name, len(data))
    read_state(data, name, "upload")
    return store_upload("weights", name, data)


def upload_data(name: str, data: bytes) -> str:
    """Store an uploaded .npz data set in the data folder by its SHA-256, after reading and checking it
    (shapes, labels, values); returns the path `dataset.path` names it by. A refused file writes nothing."""

    from engine.science.user_data import load_arrays  # noqa: PLC0415  torch: only when an upload is read

    check_upload("data", name, len(data))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "upload.npz"
        path.write_bytes(data)
        try:
            load_arrays(path)
        except DataUnavailableError as exc:
            raise SpecError([str(exc).replace("dataset.path: upload.npz", f"upload: {name[:60]}")]) from None
    return store_upload("data", name, data)


def class_names(run_id: str, store: Store | None = None) -> tuple[str, ...]:
    """The class names of a run's dataset, in label order."""
    from engine.science.data import data_of  # noqa: PLC0415  torch loads here

    spec = validate_tree(json.loads((store or open_store()).run(run_id)["spec_json"]))
    return data_of(spec.dataset).info.classes


def attack_examples(
    pruned: "torch.nn.Module",
    dense: "torch.nn.Module",
    x: "torch.Tensor",
    y: "torch.Tensor",
    attack: str,
    eps: float,
    indices: list[int],
) -> list["Example"]:
    """Attack a few images of a pruned checkpoint live; each with both models' top-3 guesses, at as many
    torch threads as the cores the workers and other processes leave free, shared among the attacks the
    Playground's line lets run at once (`playground_turn`)."""
    from engine.science.device import fitted_threads  # noqa: PLC0415  torch loads here
    from engine.science.playground import attack_examples as craft  # noqa: PLC0415  torch loads here

    with fitted_threads(max(1, (os.cpu_count() or 1) // PLAYGROUND.slots)):
        return craft(pruned, dense, x, y, attack, eps, indices)


def playground_attacks() -> dict[str, tuple[float, str]]:
    """The attacks the Playground offers, L∞ first: name → (default ε, norm), from each attack's class."""
    from engine.science.playground import playground_attacks as offered  # noqa: PLC0415  the registry: torch loads here

    return offered()


def playground_turn(session: str, on_wait: Callable[[int], None] | None = None) -> AbstractContextManager[None]:
    """A turn in the server's one line for Playground attacks (engine.jobs.turns): one attack per core at
    a time, first come first served, one place per browser `session`; `on_wait(place)` while waiting.
    Raises Superseded when the same session asks again meanwhile, LineTimeout after five minutes."""
    return PLAYGROUND.turn(session, on_wait)


def submit_paper(name: str, store: Store | None = None, reduced: bool = False) -> list[Job]:
    """Queue every variant of a paper preset for the workers; their jobs (existing live ones reused)."""
    store = store or open_store()
    return [submit(spec, store) for spec in paper_specs(name, reduced).values()]


def catalog() -> dict[str, dict[str, str]]:
    """Every registry's entries with their help text: what a spec may name."""
    from engine.science import catalog as registries  # noqa: PLC0415  the registries load torch

    return registries.catalog()


__all__ = [
    "fill",
    "filler",
    "parse_text",
    "start_tour",
    "tour",
    "MAX_UPLOAD_BYTES",
    "decision",
    "grow_decision",
    "paper_scale",
    "paper_judged_by",
    "paper_figures",
    "claim_decision",
    "claim_job",
    "submit_claim_look",
    "decide_paper",
    "submit_decision",
    "parse_number",
    "upload_data",
    "upload_weights",
    "seed_trees",
    "attack_examples",
    "export_model",
    "model_file",
    "playground_attacks",
    "playground_turn",
    "LineTimeout",
    "Superseded",
    "budget_frame",
    "cancel",
    "catalog",
    "checkpoints",
    "class_names",
    "compare",
    "describe_job",
    "describe_spec",
    "document",
    "efficiency_frame",
    "ENDED_JOBS",
    "ensure_workers",
    "eval_subset",
    "export",
    "forget_stores",
    "form_tree",
    "estimate",
    "duration",
    "estimate_errors",
    "SAME_AS_BASE",
    "parse_numbers",
    "spec_text",
    "spec_tree",
    "fork_changes",
    "fork_reuse",
    "schedule_walk",
    "schedule_fields",
    "schedule_start",
    "FormField",
    "FormChoices",
    "job",
    "jobs",
    "jobs_frame",
    "JobStatus",
    "latest_job",
    "layers_frame",
    "LIVE_JOBS",
    "load_checkpoint",
    "load_data",
    "load_spec",
    "load_specs",
    "load_tree",
    "resume",
    "doctor",
    "MAX_SPEC_BYTES",
    "bounded",
    "MAX_WORK",
    "check_work",
    "check_total_work",
    "submit_all",
    "NotFoundError",
    "open_store",
    "paper_presets",
    "paper_results",
    "paper_specs",
    "paper_verdict",
    "preset_path",
    "presets",
    "raw_key",
    "retry",
    "robust_frame",
    "run",
    "run_paper",
    "run_sweep",
    "run_tree",
    "run_trees",
    "runs_frame",
    "runs_having",
    "RunSpec",
    "RunStatus",
    "Job",
    "Decision",
    "same_images",
    "spec_from_text",
    "SpecError",
    "StoreError",
    "EngineError",
    "specs_from_text",
    "Store",
    "store_version",
    "submit",
    "submit_paper",
    "validate_tree",
    "validate_trees",
    "warnings_list",
]
