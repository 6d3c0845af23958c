"""What every claim check shares: does a seed paper's qualitative claim hold in this store, and how sure is that?

The checks themselves live one per paper in engine/papers/checks/, each registered with its figures
(`register_check`). Each check reads a paper preset's results (engine.papers.results.PaperResults: robust, transfer and
budget rows tagged by variant, with the per-example flags of every accuracy) and returns a Verdict:
one finding per part of the claim. A finding turns the claim into a statistic of accuracies (a gap,
a spread, a lead) and decides it from that statistic's 95 % interval, never from a point estimate
and a fixed tolerance: `holds` when the interval clears the bar, `fails` when it lies on the wrong
side, `inconclusive` when it straddles it, with roughly how many evaluation images would decide.
Variants of one preset are scored on the same images, so intervals are paired (Tango's score interval for a
single difference, a bootstrap over images for anything else); results without per-example flags
fall back to independent binomial intervals. A `margin` (in accuracy, 0.02 = 2 points) turns "at
least as good as" into a non-inferiority claim; it is stated in every finding that uses it.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from engine.papers.results import PaperResults
from engine.registry import Registry
from engine.report.stats import (
    LEVEL,
    Estimate,
    bootstrap,
    decide,
    paired,
    parametric_bootstrap,
    successes,
    unpack_flags,
    unpaired,
)
from engine.report.stats import across_seeds as combine_estimates
from engine.status import Decision

if TYPE_CHECKING:
    import plotly.graph_objects as go

_LEVEL: ContextVar[float] = ContextVar("claim_level", default=LEVEL)


def claim_level() -> float:
    """The level of a claim's intervals: 95 %, or a grown evaluation's plan level (engine.report.sequential)."""
    return _LEVEL.get()


@contextmanager
def judged_at(level: float) -> Iterator[None]:
    """Judge the claims inside at `level` (a grown evaluation's looks: Bonferroni over the planned looks)."""
    token = _LEVEL.set(level)
    try:
        yield
    finally:
        _LEVEL.reset(token)


@dataclass(frozen=True)
class Part:
    """One comparison of a claim made of several (a level, a checkpoint, a rival): its statistic with
    the plain 95 % interval and with the Bonferroni-corrected one (`strict`, 1 − 0.05 / parts)."""

    label: str
    plain: Estimate
    strict: Estimate


@dataclass(frozen=True)
class Finding:
    """One part of a claim: what it says, its status, the numbers (with interval) and what would decide it."""

    claim: str
    status: Decision
    numbers: str
    to_decide: str = ""
    estimate: Estimate | None = field(default=None, compare=False)
    margin: float = 0.0
    parts: tuple[Part, ...] = field(default=(), compare=False)
    rule: str = ""  # "some" or "every" where the finding is decided part by part

    @property
    def holds(self) -> bool:
        """Did this part hold (beyond its interval)?"""
        return self.status == Decision.HOLDS


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict: `holds`, `fails`, `inconclusive` (the data cannot decide) or `incomplete`
    (runs missing)."""

    status: Decision
    headline: str
    findings: list[Finding] = field(default_factory=list)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(
        default_factory=list
    )  # reported beside the verdict, not judged (engine/papers/reference.py)
    reference: pd.DataFrame = field(
        default_factory=pd.DataFrame
    )  # the judging attack against AutoAttack, per checkpoint

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the tables as records, NaN as null)."""
        return {
            "status": self.status,
            "headline": self.headline,
            "findings": [
                {"claim": f.claim, "status": f.status, "holds": f.holds, "numbers": f.numbers, "to_decide": f.to_decide}
                for f in self.findings
            ],
            "table": json.loads(self.table.to_json(orient="records")) if not self.table.empty else [],
            "notes": self.notes,
            "reference": json.loads(self.reference.to_json(orient="records")) if not self.reference.empty else [],
        }


Judge = Callable[..., Verdict]
Figures = Callable[[PaperResults, dict[str, Any]], list["go.Figure"]]


@dataclass(frozen=True)
class PaperCheck:
    """A seed paper's claim check, registered with the figures the Papers page draws beside its verdict:
    `judge(results, **options)` returns the Verdict, `figures(results, options)` the plotly figures."""

    judge: Judge
    figures: Figures

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]  # Registry.help shows the judge's docstring
        return self.judge.__doc__

    def option_problems(self, options: dict[str, Any]) -> list[str]:
        """What is wrong with a preset's `options` for this check, one line per problem naming the option
        (unknown, or required and missing); empty when `judge(results, **options)` can be called."""
        parameters = list(inspect.signature(self.judge).parameters.values())[1:]  # after `results`
        accepted = {p.name for p in parameters}
        required = [p.name for p in parameters if p.default is inspect.Parameter.empty]
        unknown = [
            f"options.{key}: unknown option for the {self.judge.__name__} check; choose from {sorted(accepted)}"
            for key in options
            if key not in accepted
        ]
        return unknown + [
            f"options.{key}: required by the {self.judge.__name__} check" for key in required if key not in options
        ]


CHECKS: Registry[PaperCheck] = Registry("claim check")


def register_check(name: str, figures: Figures) -> Callable[[Judge], Judge]:
    """File a claim check under `name` together with its figures (one module per paper in
    engine/papers/checks/, discovered on import)."""

    def decorate(judge: Judge) -> Judge:
        CHECKS.register(name)(PaperCheck(judge, figures))
        return judge

    return decorate


def verdict(findings: list[Finding], table: pd.DataFrame) -> Verdict:
    """Fails when any part fails; else inconclusive when any part cannot be decided; else holds. A
    failing verdict says how many parts were tested (each at 95 %: more parts, more chances that one
    fails by chance)."""
    failed = [f for f in findings if f.status == Decision.FAILS]
    open_ = [f for f in findings if f.status == Decision.INCONCLUSIVE]
    if failed:
        text = "; ".join(f"{f.claim} — {f.numbers}" for f in failed)
        tested = f"{len(failed)} of {len(findings)} parts tested fail" if len(findings) > 1 else "its one part fails"
        return Verdict(Decision.FAILS, f"Does not hold here ({tested}): {text}", findings, table)
    if open_:
        text = "; ".join(f"{f.claim} — {f.numbers}; {f.to_decide}" for f in open_)
        return Verdict(Decision.INCONCLUSIVE, f"Cannot be decided from these runs: {text}", findings, table)
    return Verdict(Decision.HOLDS, "Holds here: " + "; ".join(f.numbers for f in findings), findings, table)


def incomplete(results: PaperResults) -> Verdict:
    """The verdict while some variants have not finished: which, and their state."""
    missing = results.missing()
    states = ", ".join(f"{label} ({results.status[label]})" for label in missing)
    return Verdict(Decision.INCOMPLETE, f"{len(missing)} of {len(results.status)} runs not finished: {states}")


def pt(value: float) -> str:
    """An accuracy fraction as a percentage."""
    return f"{100 * value:.1f} %"


def signed_pt(value: float) -> str:
    """A difference of accuracy fractions in points, with its sign."""
    return f"{100 * value:+.1f} pt"


def eps_text(eps: float) -> str:
    """ε as people write it: 8/255 when it is a whole number of 255ths, else the number."""
    k = eps * 255
    return f"{round(k)}/255" if eps > 0 and abs(k - round(k)) < 1e-6 else f"{eps:g}"


def at_eps(frame: pd.DataFrame, eps: float) -> pd.DataFrame:
    """Rows at strength ε (matched to 1e-9), one per step, sorted by step."""
    rows = frame[np.isclose(frame["eps"], eps, atol=1e-9)]
    return rows.drop_duplicates("step").sort_values("step")


def by_step(frame: pd.DataFrame, eps: float, column: str = "acc") -> pd.Series:
    """A column at strength ε, indexed by step."""
    return at_eps(frame, eps).set_index("step")[column]


# ---- statistics of several accuracies, with intervals ------------------------------------------

Cell = tuple[str, int, float, str]
"""(variant, step, ε, source): one accuracy of a preset; ε = 0 is clean accuracy."""


def cell_row(results: PaperResults, attack: str, cell: Cell) -> pd.Series:
    """The stored row of one cell (variant, step, ε, source) of a preset; KeyError naming what is missing."""
    label, step, eps, source = cell
    rows = at_eps(results.variant(label, attack, source), eps)
    rows = rows[rows["step"] == step]
    if rows.empty:
        raise KeyError(f"{label}: no {attack} result at step {step}, ε = {eps:g} ({source})")
    return rows.iloc[0]


def estimate(
    results: PaperResults,
    attack: str,
    cells: list[Cell],
    statistic: Callable[[np.ndarray], float],
    level: float | None = None,
) -> Estimate:
    """`statistic` of the cells' accuracies with its interval at `level` (None: the claim's level): a
    paired bootstrap over the shared evaluation images when every cell kept its flags, else independent
    binomial redraws."""
    level = claim_level() if level is None else level
    rows = [cell_row(results, attack, cell) for cell in cells]
    n = [r.get("n") for r in rows]
    if any(m is None or pd.isna(m) for m in n):
        value = float(statistic(np.array([r["acc"] for r in rows])))
        return Estimate(value, -np.inf, np.inf, 0, False)
    flags = [r.get("correct") for r in rows]
    if all(isinstance(f, bytes) for f in flags) and len(set(n)) == 1:
        return bootstrap(np.column_stack([unpack_flags(f, int(m)) for f, m in zip(flags, n)]), statistic, level)
    return parametric_bootstrap(np.array([r["acc"] for r in rows]), np.array(n, dtype=int), statistic, level)


def difference(results: PaperResults, attack: str, first: Cell, second: Cell, level: float | None = None) -> Estimate:
    """first − second with its interval at `level` (None: the claim's level): Tango's paired interval where
    both kept their flags on the same images (exact where a bootstrap of two cells is not), else Newcombe's
    for independent ones."""
    level = claim_level() if level is None else level
    a, b = (cell_row(results, attack, cell) for cell in (first, second))
    n_a, n_b = a.get("n"), b.get("n")
    if any(m is None or pd.isna(m) for m in (n_a, n_b)):
        return Estimate(float(a["acc"] - b["acc"]), -np.inf, np.inf, 0, False)
    n_a, n_b = int(n_a), int(n_b)
    if isinstance(a.get("correct"), bytes) and isinstance(b.get("correct"), bytes) and n_a == n_b:
        gap = paired(unpack_flags(a["correct"], n_a), unpack_flags(b["correct"], n_b), level)
    else:
        gap = unpaired(successes(a["acc"], n_a), n_a, successes(b["acc"], n_b), n_b, level)
    return Estimate(gap.diff, gap.low, gap.high, gap.n, gap.paired)


def strict_level(parts: int, level: float | None = None) -> float:
    """Bonferroni: the level each of `parts` intervals needs so that a claim decided by whichever part
    turns out best (or worst) keeps `level` (None: the claim's level) overall."""
    level = claim_level() if level is None else level
    return 1 - (1 - level) / max(parts, 1)


def part(label: str, measure: Callable[[float], Estimate], parts: int) -> Part:
    """One comparison of a claim of `parts` comparisons, measured at the claim's level and at the corrected one."""
    return Part(label, measure(claim_level()), measure(strict_level(parts)))


def finding(claim: str, est: Estimate, numbers: str, margin: float = 0.0) -> Finding:
    """A part of a claim decided by "statistic ≥ −margin" on its interval, saying what would decide it."""
    status = decide(est.low, est.high, margin) if est.n else Decision.INCONCLUSIVE
    interval = f"[{signed_pt(est.low)}, {signed_pt(est.high)}]" if est.n else "(no interval: n not kept)"
    bar = f", margin {100 * margin:.0f} pt" if margin else ""
    numbers = f"{numbers}; statistic {signed_pt(est.value)} {interval}{bar}"
    if status != Decision.INCONCLUSIVE:
        return Finding(claim, status, numbers, estimate=est, margin=margin)
    return Finding(claim, status, numbers, _to_decide(est, margin), est, margin)


def _to_decide(est: Estimate, margin: float) -> str:
    if not est.n:
        return "re-run: these results predate per-example records"
    needed = est.images_to_decide(margin)
    return (
        f"≈{needed:,} evaluation images (now {est.n:,}) would decide it at this gap, or more seeds"
        if needed
        else "the observed gap is at the bar itself: more images alone will not decide it"
    )


def _statuses(parts: list[Part], margin: float) -> tuple[list[str], list[str]]:
    """Each part's verdict on its 95 % interval and on its corrected one (no n: inconclusive)."""
    decided = lambda e: decide(e.low, e.high, margin) if e.n else Decision.INCONCLUSIVE
    return [decided(p.plain) for p in parts], [decided(p.strict) for p in parts]


def some_part(claim: str, parts: list[Part], numbers: str, margin: float = 0.0) -> Finding:
    """ "At least one of these comparisons clears −margin": holds when one part does at the corrected
    level (the best of k, picked after looking, is corrected for the k looks); fails when every part
    fails at 95 % (all of them, so no correction); otherwise open, naming the most promising part."""
    plain, strict = _statuses(parts, margin)
    best = max(range(len(parts)), key=lambda i: parts[i].strict.value)
    if Decision.HOLDS in strict:
        status, chosen = Decision.HOLDS, strict.index(Decision.HOLDS)
    elif all(s == Decision.FAILS for s in plain):
        status, chosen = Decision.FAILS, best
    else:
        status, chosen = Decision.INCONCLUSIVE, best
    return _composite(claim, status, parts, chosen, numbers, margin, "some")


def every_part(claim: str, parts: list[Part], numbers: str, margin: float = 0.0) -> Finding:
    """ "Every one of these comparisons clears −margin": holds when each part does at 95 % (all of them,
    so no correction); fails when one part fails at the corrected level (the worst of k, picked after
    looking); otherwise open, naming the part that holds it back."""
    plain, strict = _statuses(parts, margin)
    worst = min(range(len(parts)), key=lambda i: parts[i].plain.value)
    if Decision.FAILS in strict:
        status, chosen = Decision.FAILS, strict.index(Decision.FAILS)
    elif all(s == Decision.HOLDS for s in plain):
        status, chosen = Decision.HOLDS, worst
    else:
        status, chosen = Decision.INCONCLUSIVE, next(i for i, s in enumerate(plain) if s != Decision.HOLDS)
    return _composite(claim, status, parts, chosen, numbers, margin, "every")


def _composite(
    claim: str, status: Decision, parts: list[Part], chosen: int, numbers: str, margin: float, rule: str
) -> Finding:
    """A finding decided part by part: every part's statistic and interval in its numbers."""
    k = len(parts)
    strict = rule == "some" and status != Decision.FAILS or rule == "every" and status == Decision.FAILS
    level = strict_level(k) if strict else claim_level()
    shown = [(p.label, p.strict if strict else p.plain) for p in parts]
    listed = "; ".join(
        f"{label} {signed_pt(e.value)} [{signed_pt(e.low)}, {signed_pt(e.high)}]" if e.n else f"{label} (no n)"
        for label, e in shown
    )
    bar = f", margin {100 * margin:.0f} pt" if margin else ""
    tested = (
        f"{k} comparisons, {'one' if rule == 'some' else 'each'} must clear the bar; intervals at {100 * level:.4g} %"
    )
    text = f"{numbers}; {listed}{bar} ({tested})"
    est = shown[chosen][1]
    to_decide = "" if status != Decision.INCONCLUSIVE else f"{parts[chosen].label}: " + _to_decide(est, margin)
    return Finding(claim, status, text, to_decide, est, margin, tuple(parts), rule)


def across_seeds(verdicts: dict[int, Verdict], overlap: float = 0.0) -> Verdict:
    """One verdict from a preset judged once per seed: each finding's statistic averaged over the seeds
    with an interval counting both the images' and the seeds' noise (engine.report.stats.across_seeds),
    decided as one finding; a part without a statistic holds or fails only when every seed agrees.
    `overlap` is the share of evaluation images two seeds have in common (1 when every seed scores the
    whole test split): their image noise is then shared, not independent."""
    if any(v.status == Decision.INCOMPLETE for v in verdicts.values()):
        text = "; ".join(
            f"seed {seed}: {v.headline}" for seed, v in verdicts.items() if v.status == Decision.INCOMPLETE
        )
        return Verdict(Decision.INCOMPLETE, text)
    first = next(iter(verdicts.values()))
    findings = [
        _combined([v.findings[i] for v in verdicts.values()], list(verdicts), overlap)
        for i in range(len(first.findings))
    ]
    table = pd.concat(
        [v.table.assign(seed=seed) for seed, v in verdicts.items() if not v.table.empty], ignore_index=True
    )
    return verdict(findings, table)


def _combined(findings: list[Finding], seeds: list[int], overlap: float = 0.0) -> Finding:
    """One part of a claim over several seeds (a claim of several comparisons: each comparison combined
    over the seeds at its own level, then decided by the same rule)."""
    head = findings[0]
    if head.rule and all(len(f.parts) == len(head.parts) for f in findings):
        parts = [
            Part(
                p.label,
                combine_estimates([f.parts[i].plain for f in findings], overlap=overlap),
                combine_estimates(
                    [f.parts[i].strict for f in findings], strict_level(len(head.parts)), overlap=overlap
                ),
            )
            for i, p in enumerate(head.parts)
        ]
        decided = some_part if head.rule == "some" else every_part
        return decided(head.claim, parts, f"{len(seeds)} seeds", head.margin)
    estimates = [f.estimate for f in findings if f.estimate is not None and f.estimate.n]
    if len(estimates) < len(findings):
        statuses = {f.status for f in findings}
        status = statuses.pop() if len(statuses) == 1 else Decision.INCONCLUSIVE
        numbers = "; ".join(f"seed {seed}: {f.status} ({f.numbers})" for seed, f in zip(seeds, findings))
        return Finding(head.claim, status, numbers, "" if status != Decision.INCONCLUSIVE else "the seeds disagree")
    values = ", ".join(f"seed {seed} {signed_pt(e.value)}" for seed, e in zip(seeds, estimates))
    combined = combine_estimates(estimates, overlap=overlap)
    return finding(head.claim, combined, f"{len(seeds)} seeds ({values})", head.margin)


def range_of(values: np.ndarray) -> float:
    """The range (largest minus smallest) of some values; NaN when there are none."""
    return float(values.max() - values.min()) if len(values) else float("nan")


# ---- what the checks share (engine/papers/checks/) -----------------------------------------------


def final_step(results: PaperResults, label: str, attack: str) -> int:
    """The last checkpoint of a run (its final sparsity)."""
    return int(results.variant(label, attack)["step"].max())


class Cells:
    """Accuracies of a preset laid out for one statistic: `add` a cell, then read its value by key."""

    def __init__(self) -> None:
        self.cells: list[Cell] = []
        self.index: dict[tuple, int] = {}

    def add(self, key: tuple, cell: Cell) -> None:
        """Register `cell` under `key` (once)."""
        if key not in self.index:
            self.index[key] = len(self.cells)
            self.cells.append(cell)

    def __call__(self, acc: np.ndarray, key: tuple) -> float:
        """The accuracy of the cell registered under `key` in one (re)sample."""
        return float(acc[self.index[key]])


def area_weights(eps: list[float]) -> np.ndarray:
    """Trapezoid weights over an ε grid, summing to 1: the area under accuracy vs ε divided by the width."""
    if len(eps) == 1:
        return np.ones(1)
    widths = np.diff(eps)
    weights = np.zeros(len(eps))
    weights[:-1] += widths / 2
    weights[1:] += widths / 2
    return weights / weights.sum()


def clean_at(results: PaperResults, label: str, step: int, attack: str) -> float:
    """A variant's clean accuracy (of the base model) at one step."""
    rows = results.variant(label, attack)
    return float(rows.loc[rows["step"] == step, "clean_acc"].iloc[0])
