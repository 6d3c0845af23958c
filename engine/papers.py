"""Paper presets: one click per seed paper, its experiment shrunk to a laptop CPU, its claim checked.

A paper preset (`presets/papers/<name>.yaml`) is a sweep of named variants sharing one base spec:

    title: HYDRA vs magnitude pruning
    paper: Sehwag et al., NeurIPS 2020 (arXiv:2002.10509)
    claim: HYDRA's PGD accuracy at k = 0.01 is at least LWM's, and its lead grows as k shrinks.
    check: hydra                      # a registered claim check (engine.claims)
    options: {eps: 0.1}               # the check's parameters
    base: {dataset: ..., model: ..., schedule: ...}
    variants:
      LWM: {prune.method: lwm}        # dotted overrides of the base
      HYDRA: {prune.method: hydra}
    reduced: {dataset.name: synthetic, ...}   # overrides for the tiny version the tests run
    cold_seconds: 312                 # measured from an empty cache on 2 cores

Variants are named so the check can say which curve is which; runs sharing the base spec share
one trained base model, and runs already in the store are never computed again.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pydantic import Field, ValidationError

from engine.errors import SpecError
from engine.paths import REPO_ROOT
from engine.spec import Frozen, RunSpec, format_errors, parse_text, set_path, validate
from engine.store import Store

PAPERS_DIR = REPO_ROOT / "presets" / "papers"


class PaperPreset(Frozen):
    """A paper's experiment: a base spec, named variants of it, the claim and the check that tests it."""

    title: str = Field(min_length=1, max_length=120)
    paper: str = Field(min_length=1, description="citation")
    claim: str = Field(min_length=1, description="the expected qualitative outcome, in one sentence")
    check: str = Field(description="registered claim check (engine.claims)")
    options: dict[str, Any] = Field(default_factory=dict, description="the check's parameters")
    figure_note: str = Field("", description="how to read the paper's figure")
    base: dict[str, Any]
    variants: dict[str, dict[str, Any]] = Field(min_length=1)
    reduced: dict[str, Any] = Field(default_factory=dict, description="overrides of the tiny version")
    cold_seconds: float | None = Field(None, ge=0, description="measured cold run time on 2 CPU cores")


def paper_names() -> list[str]:
    """The names of the paper presets, sorted."""
    return sorted(path.stem for path in PAPERS_DIR.glob("*.yaml"))


def load_paper(name: str) -> PaperPreset:
    """Read and validate a paper preset by name; SpecError naming the field or the choices."""
    if name not in paper_names():
        raise SpecError([f"paper: unknown paper preset {name[:80]!r}; choose from {paper_names()}"])
    path = PAPERS_DIR / f"{name}.yaml"
    try:
        preset = PaperPreset.model_validate(parse_text(path.read_text(encoding="utf-8"), str(path)))
    except ValidationError as exc:
        raise SpecError([f"{name}: {line}" for line in format_errors(exc)]) from None
    from engine.claims import CHECKS

    if preset.check not in CHECKS:
        raise SpecError([f"{name}: check: unknown claim check {preset.check!r}; choose from {CHECKS.names()}"])
    return preset


def expand(preset: PaperPreset, reduced: bool = False) -> dict[str, RunSpec]:
    """Variant label → validated spec; `reduced` applies the tiny-version overrides to the base first."""
    base = copy.deepcopy(preset.base)
    for key, value in (preset.reduced if reduced else {}).items():
        set_path(base, key, copy.deepcopy(value))
    specs, problems = {}, []
    for label, overrides in preset.variants.items():
        tree = copy.deepcopy(base)
        for key, value in overrides.items():
            set_path(tree, key, copy.deepcopy(value))
        try:
            specs[label] = validate(tree)
        except SpecError as exc:
            problems += [f"[{label}] {line}" for line in exc.problems]
    ids = [spec.run_id() for spec in specs.values()]
    if len(set(ids)) < len(ids):
        problems.append("variants: two variants give the same spec; each must change something")
    if problems:
        raise SpecError(problems)
    return specs


@dataclass
class PaperResults:
    """What the store holds for a paper preset's runs (robust, transfer and budget rows), tagged by variant."""

    run_ids: dict[str, str]
    status: dict[str, str]
    robust: pd.DataFrame
    transfer: pd.DataFrame
    budget: pd.DataFrame

    def missing(self) -> list[str]:
        """Variants whose run has not finished."""
        return [label for label, status in self.status.items() if status != "done"]

    def variant(self, label: str, attack: str | None = None, source: str = "robust") -> pd.DataFrame:
        """One variant's rows (optionally one attack) from the robust or transfer table."""
        frame = getattr(self, source)
        frame = frame[frame["variant"] == label]
        return frame[frame["attack"] == attack] if attack else frame


def _tagged(frame: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """Rows tagged with their variant label, in the preset's order of variants (then by step)."""
    if frame.empty:
        return frame.assign(variant=[])
    order = {run_id: i for i, run_id in enumerate(labels)}
    frame = frame.assign(variant=frame["run_id"].map(labels), _order=frame["run_id"].map(order))
    by = ["_order", "step"] if "step" in frame else ["_order"]
    return frame.sort_values(by, kind="stable").drop(columns="_order").reset_index(drop=True)


def _with_targets(frame: pd.DataFrame, store: Store) -> pd.DataFrame:
    """Add each step's target sparsity (structured methods leave dense layers, so achieved differs)."""
    steps = [{"run_id": r, "step": s["step"], "target_sparsity": s["target_sparsity"]}
             for r in frame["run_id"].unique() for s in store.steps(r)]
    targets = pd.DataFrame(steps, columns=["run_id", "step", "target_sparsity"])
    return frame.merge(targets, on=["run_id", "step"], how="left")


def gather(specs: dict[str, RunSpec], store: Store) -> PaperResults:
    """The store's rows for every variant's run (absent runs count as missing)."""
    from engine import api

    run_ids = {label: spec.run_id() for label, spec in specs.items()}
    labels = {run_id: label for label, run_id in run_ids.items()}
    status = {label: store.run(r)["status"] if store.has_run(r) else "missing" for label, r in run_ids.items()}
    present = [run_ids[label] for label, state in status.items() if state != "missing"]
    return PaperResults(
        run_ids=run_ids, status=status,
        robust=_tagged(_with_targets(api.robust_frame(present, store), store), labels),
        transfer=_tagged(_with_targets(api.robust_frame(present, store, "transfer"), store), labels),
        budget=_tagged(api.budget_frame(present, store), labels),
    )


def judge(preset: PaperPreset, results: PaperResults):
    """The verdict of a preset's claim on gathered results (incomplete while runs are missing)."""
    from engine.claims import CHECKS, incomplete

    if results.missing():
        return incomplete(results)
    return CHECKS.get(preset.check)(results, **preset.options)


def check(name: str, store: Store, reduced: bool = False):
    """The verdict of a paper preset's claim on what the store holds (see engine.claims.Verdict)."""
    preset = load_paper(name)
    return judge(preset, gather(expand(preset, reduced), store))


def run(name: str, store: Store, reduced: bool = False, executor: str = "local", progress: bool = True) -> float:
    """Run every variant of a paper preset to completion (finished runs are skipped); wall seconds.

    Locally the variants run one after another in this process, with a tqdm bar over them; with
    `executor="ray"` they run as Ray tasks (engine.sweep.run_ray).
    """
    from tqdm import tqdm

    from engine import api, sweep

    specs = expand(load_paper(name), reduced)
    started = time.perf_counter()
    if executor == "ray":
        sweep.run_ray(list(specs.items()), store)
        return time.perf_counter() - started
    with tqdm(total=len(specs), unit="run", desc=name, disable=not progress, file=sys.stderr) as bar:
        for label, spec in specs.items():
            bar.set_postfix_str(label)
            api.run(spec, store)
            bar.update(1)
    return time.perf_counter() - started
