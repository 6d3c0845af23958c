"""Claim checks (registered): does a seed paper's qualitative claim hold in this store, and how sure is that?

Each check reads a paper preset's results (engine.papers.results.PaperResults: robust, transfer and
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

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

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
from engine.science.pruning.methods import METHODS

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
    status: str
    numbers: str
    to_decide: str = ""
    estimate: Estimate | None = field(default=None, compare=False)
    margin: float = 0.0
    parts: tuple[Part, ...] = field(default=(), compare=False)
    rule: str = ""  # "some" or "every" where the finding is decided part by part

    @property
    def holds(self) -> bool:
        """Did this part hold (beyond its interval)?"""
        return self.status == "holds"


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict: `holds`, `fails`, `inconclusive` (the data cannot decide) or `incomplete`
    (runs missing)."""

    status: str
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


Check = Callable[..., Verdict]
CHECKS: Registry[Check] = Registry("claim check")


def verdict(findings: list[Finding], table: pd.DataFrame) -> Verdict:
    """Fails when any part fails; else inconclusive when any part cannot be decided; else holds. A
    failing verdict says how many parts were tested (each at 95 %: more parts, more chances that one
    fails by chance)."""
    failed = [f for f in findings if f.status == "fails"]
    open_ = [f for f in findings if f.status == "inconclusive"]
    if failed:
        text = "; ".join(f"{f.claim} — {f.numbers}" for f in failed)
        tested = f"{len(failed)} of {len(findings)} parts tested fail" if len(findings) > 1 else "its one part fails"
        return Verdict("fails", f"Does not hold here ({tested}): {text}", findings, table)
    if open_:
        text = "; ".join(f"{f.claim} — {f.numbers}; {f.to_decide}" for f in open_)
        return Verdict("inconclusive", f"Cannot be decided from these runs: {text}", findings, table)
    return Verdict("holds", "Holds here: " + "; ".join(f.numbers for f in findings), findings, table)


def incomplete(results: PaperResults) -> Verdict:
    """The verdict while some variants have not finished: which, and their state."""
    missing = results.missing()
    states = ", ".join(f"{label} ({results.status[label]})" for label in missing)
    return Verdict("incomplete", f"{len(missing)} of {len(results.status)} runs not finished: {states}")


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


def _row(results: PaperResults, attack: str, cell: Cell) -> pd.Series:
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
    rows = [_row(results, attack, cell) for cell in cells]
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
    a, b = (_row(results, attack, cell) for cell in (first, second))
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
    status = decide(est.low, est.high, margin) if est.n else "inconclusive"
    interval = f"[{signed_pt(est.low)}, {signed_pt(est.high)}]" if est.n else "(no interval: n not kept)"
    bar = f", margin {100 * margin:.0f} pt" if margin else ""
    numbers = f"{numbers}; statistic {signed_pt(est.value)} {interval}{bar}"
    if status != "inconclusive":
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
    decided = lambda e: decide(e.low, e.high, margin) if e.n else "inconclusive"
    return [decided(p.plain) for p in parts], [decided(p.strict) for p in parts]


def some_part(claim: str, parts: list[Part], numbers: str, margin: float = 0.0) -> Finding:
    """ "At least one of these comparisons clears −margin": holds when one part does at the corrected
    level (the best of k, picked after looking, is corrected for the k looks); fails when every part
    fails at 95 % (all of them, so no correction); otherwise open, naming the most promising part."""
    plain, strict = _statuses(parts, margin)
    best = max(range(len(parts)), key=lambda i: parts[i].strict.value)
    if "holds" in strict:
        status, chosen = "holds", strict.index("holds")
    elif all(s == "fails" for s in plain):
        status, chosen = "fails", best
    else:
        status, chosen = "inconclusive", best
    return _composite(claim, status, parts, chosen, numbers, margin, "some")


def every_part(claim: str, parts: list[Part], numbers: str, margin: float = 0.0) -> Finding:
    """ "Every one of these comparisons clears −margin": holds when each part does at 95 % (all of them,
    so no correction); fails when one part fails at the corrected level (the worst of k, picked after
    looking); otherwise open, naming the part that holds it back."""
    plain, strict = _statuses(parts, margin)
    worst = min(range(len(parts)), key=lambda i: parts[i].plain.value)
    if "fails" in strict:
        status, chosen = "fails", strict.index("fails")
    elif all(s == "holds" for s in plain):
        status, chosen = "holds", worst
    else:
        status, chosen = "inconclusive", next(i for i, s in enumerate(plain) if s != "holds")
    return _composite(claim, status, parts, chosen, numbers, margin, "every")


def _composite(
    claim: str, status: str, parts: list[Part], chosen: int, numbers: str, margin: float, rule: str
) -> Finding:
    """A finding decided part by part: every part's statistic and interval in its numbers."""
    k = len(parts)
    strict = rule == "some" and status != "fails" or rule == "every" and status == "fails"
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
    to_decide = "" if status != "inconclusive" else f"{parts[chosen].label}: " + _to_decide(est, margin)
    return Finding(claim, status, text, to_decide, est, margin, tuple(parts), rule)


def across_seeds(verdicts: dict[int, Verdict], overlap: float = 0.0) -> Verdict:
    """One verdict from a preset judged once per seed: each finding's statistic averaged over the seeds
    with an interval counting both the images' and the seeds' noise (engine.report.stats.across_seeds),
    decided as one finding; a part without a statistic holds or fails only when every seed agrees.
    `overlap` is the share of evaluation images two seeds have in common (1 when every seed scores the
    whole test split): their image noise is then shared, not independent."""
    if any(v.status == "incomplete" for v in verdicts.values()):
        text = "; ".join(f"seed {seed}: {v.headline}" for seed, v in verdicts.items() if v.status == "incomplete")
        return Verdict("incomplete", text)
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
        status = statuses.pop() if len(statuses) == 1 else "inconclusive"
        numbers = "; ".join(f"seed {seed}: {f.status} ({f.numbers})" for seed, f in zip(seeds, findings))
        return Finding(head.claim, status, numbers, "" if status != "inconclusive" else "the seeds disagree")
    values = ", ".join(f"seed {seed} {signed_pt(e.value)}" for seed, e in zip(seeds, estimates))
    combined = combine_estimates(estimates, overlap=overlap)
    return finding(head.claim, combined, f"{len(seeds)} seeds ({values})", head.margin)


def _spread(values: np.ndarray) -> float:
    return float(values.max() - values.min()) if len(values) else float("nan")


# ---- the checks ----------------------------------------------------------------------------------


def _final_step(results: PaperResults, label: str, attack: str) -> int:
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


def _area_weights(eps: list[float]) -> np.ndarray:
    """Trapezoid weights over an ε grid, summing to 1: the area under accuracy vs ε divided by the width."""
    if len(eps) == 1:
        return np.ones(1)
    widths = np.diff(eps)
    weights = np.zeros(len(eps))
    weights[:-1] += widths / 2
    weights[1:] += widths / 2
    return weights / weights.sum()


@CHECKS.register("bap")
def bap(results: PaperResults, attack: str, area_from: float, ap: list[str], bap: str, natural: str) -> Verdict:
    """Blind Adversarial Pruning, across pruning processes as in BAP's code: one gradual run per final
    sparsity (the preset's grid), each read at its last checkpoint. A larger AP budget trades clean
    accuracy for robustness, and BAP's robustness (the area under accuracy vs ε from `area_from` to the
    largest ε, per unit of ε: trapezoids, so the wide large-ε intervals weigh most) varies less across
    final sparsities than every AP budget's.

    `ap` lists the AP variants by increasing training budget; `natural` is reported, not judged.
    """
    runs = {variant: list(results.grid(variant).values()) for variant in [natural, *ap, bap]}  # once, not per resample
    first_run = runs[bap][0]
    strong_eps = sorted({float(e) for e in results.variant(first_run, attack)["eps"] if e >= area_from - 1e-9})
    weights = _area_weights(strong_eps)
    cells, rows = Cells(), []
    for variant in [natural, *ap, bap]:
        for level, label in results.grid(variant).items():
            step = _final_step(results, label, attack)
            for e in [0.0, *strong_eps]:
                cells.add((label, e), (label, step, e, "robust"))
            frame = results.variant(label, attack)
            final = _row(results, attack, (label, step, 0.0, "robust"))
            rows.append(
                {
                    "variant": variant,
                    "final_sparsity": level,
                    "sparsity": float(final["sparsity"]),
                    "clean": float(final["acc"]),
                    "strong_area": float(sum(w * by_step(frame, e)[step] for w, e in zip(weights, strong_eps))),
                    "n": final.get("n"),
                }
            )
    table = pd.DataFrame(rows)

    def area(acc: np.ndarray, label: str) -> float:
        return float(sum(w * cells(acc, (label, e)) for w, e in zip(weights, strong_eps)))

    def mean_over_levels(acc: np.ndarray, variant: str, value: Callable[[np.ndarray, str], float]) -> float:
        return float(np.mean([value(acc, label) for label in runs[variant]]))

    def spread(acc: np.ndarray, variant: str) -> float:
        return _spread(np.array([area(acc, label) for label in runs[variant]]))

    def clean(acc: np.ndarray, label: str) -> float:
        return cells(acc, (label, 0.0))

    small, large = ap[0], ap[-1]
    strength = f"ε ≥ {area_from:g} (area per unit ε)"

    def clean_gap(acc: np.ndarray) -> float:  # clean accuracy the larger budget gives up
        return mean_over_levels(acc, small, clean) - mean_over_levels(acc, large, clean)

    def robust_gain(acc: np.ndarray) -> float:  # robustness the larger budget buys
        return mean_over_levels(acc, large, area) - mean_over_levels(acc, small, area)

    means = table.groupby("variant", sort=False)[["clean", "strong_area"]].mean()
    trade = every_part(
        f"AP with the larger budget ({large}) has lower clean and higher robust accuracy than {small}",
        [
            part(name, partial(estimate, results, attack, cells.cells, statistic), 2)
            for name, statistic in (("clean given up", clean_gap), ("robustness gained", robust_gain))
        ],
        f"mean over the final sparsities: clean {pt(means.loc[large, 'clean'])} vs {pt(means.loc[small, 'clean'])}, "
        f"robust at {strength} {pt(means.loc[large, 'strong_area'])} vs {pt(means.loc[small, 'strong_area'])}",
    )
    spreads = table.groupby("variant", sort=False)["strong_area"].agg(lambda v: float(v.max() - v.min()))

    def stability(variant: str) -> Callable[[np.ndarray], float]:  # an AP spread minus BAP's: ≥ 0 when BAP's is less
        return lambda acc: spread(acc, variant) - spread(acc, bap)

    levels = ", ".join(f"{value:.0%}" for value in results.grid(bap))
    stable = every_part(
        "BAP's robustness varies less across final sparsities than every AP budget's",
        [
            part(
                f"{variant} − BAP",
                partial(estimate, results, attack, cells.cells, stability(variant)),
                len(ap),
            )
            for variant in ap
        ],
        f"spread (max − min) over the runs pruned to {levels} of the mean accuracy at {strength}: "
        f"BAP {100 * spreads[bap]:.1f} pt vs " + ", ".join(f"{label} {100 * spreads[label]:.1f} pt" for label in ap),
    )
    return verdict([trade, stable], table)


def _paired_gap(results: PaperResults, first: str, second: str, attack: str, eps: float) -> pd.DataFrame:
    """Per step: the two variants' robust accuracy at ε and the gap first − second."""
    a = at_eps(results.variant(first, attack), eps).set_index("step")
    b = at_eps(results.variant(second, attack), eps).set_index("step")
    table = pd.DataFrame(
        {"sparsity": a["sparsity"], "target": a["target_sparsity"], first: a["acc"], second: b["acc"]}
    ).dropna()
    return table.assign(gap=table[first] - table[second])


@CHECKS.register("hydra")
def hydra(
    results: PaperResults,
    attack: str,
    eps: float,
    hydra: str,
    lwm: str,
    margin: float = 0.02,
    measure: str = "PGD accuracy",
    chance: float = 0.1,
) -> Verdict:
    """HYDRA: robust accuracy at the smallest k is at least LWM's (non-inferiority within `margin`), and
    HYDRA's lead at the smallest k exceeds its lead at the largest k. `measure` names
    the accuracy in the evidence ("certified accuracy" for the smoothing variant). Where both models'
    clean accuracy at the smallest k is within `margin` of `chance` (1 / classes), they collapsed, and
    neither part can be decided there: both are inconclusive, saying so."""
    table = _paired_gap(results, hydra, lwm, attack, eps)
    table = table[table["target"] > 0].sort_values("target")
    first, last = table.iloc[0], table.iloc[-1]
    k_first, k_last = 1 - first["target"], 1 - last["target"]
    s_first, s_last = int(table.index[0]), int(table.index[-1])
    ahead = finding(
        f"{hydra} ≥ {lwm} at k = {k_last:.2g}",
        difference(results, attack, (hydra, s_last, eps, "robust"), (lwm, s_last, eps, "robust")),
        f"{measure} at ε={eps_text(eps)}, k={k_last:.2g}: {pt(last[hydra])} vs {pt(last[lwm])}",
        margin,
    )
    cells = [(label, s, eps, "robust") for s in (s_first, s_last) for label in (hydra, lwm)]
    grows = finding(
        f"the gap grows with compression (k = {k_first:.2g} → {k_last:.2g})",
        estimate(results, attack, cells, lambda acc: (acc[2] - acc[3]) - (acc[0] - acc[1])),
        f"gap {signed_pt(first['gap'])} at k={k_first:.2g} → {signed_pt(last['gap'])} at k={k_last:.2g}",
    )
    clean = [_clean_at(results, label, s_last, attack) for label in (hydra, lwm)]
    if max(clean) <= chance + margin:
        why = (
            f"both models collapsed at k = {k_last:.2g} (clean {pt(clean[0])} and {pt(clean[1])}, chance "
            f"{pt(chance)}): a comparison at chance says nothing; prune less or fine-tune longer"
        )
        ahead, grows = (replace(f, status="inconclusive", to_decide=why) for f in (ahead, grows))
    return verdict([ahead, grows], table.reset_index())


def _clean_at(results: PaperResults, label: str, step: int, attack: str) -> float:
    """A variant's clean accuracy (of the base model) at one step."""
    rows = results.variant(label, attack)
    return float(rows.loc[rows["step"] == step, "clean_acc"].iloc[0])


def _first_collapse(clean: pd.Series, cr: pd.Series, drop: float) -> float:
    """The smallest compression rate whose clean accuracy fell more than `drop` below dense (inf if none)."""
    dense = clean.loc[0]
    fallen = cr[(clean < dense - drop) & (cr > 1)]
    return float(fallen.min()) if len(fallen) else float("inf")


def _pfa_table(results: PaperResults, attack: str, eps: float) -> pd.DataFrame:
    rows = []
    for label in results.run_ids:
        at = at_eps(results.variant(label, attack), eps).set_index("step")
        cr = 1 / (1 - at["target_sparsity"])
        rows += [
            {
                "variant": label,
                "step": int(s),
                "compression": round(float(cr[s]), 2),
                "clean_acc": float(at.loc[s, "clean_acc"]),
                "robust_acc": float(at.loc[s, "acc"]),
            }
            for s in at.index
        ]
    return pd.DataFrame(rows)


@CHECKS.register("pfa")
def pfa(
    results: PaperResults,
    attack: str,
    eps: float,
    unstructured: str,
    filter: str,
    rank_cr: float = 16,
    drop: float = 0.05,
    margin: float = 0.02,
) -> Verdict:
    """Pruning in the Face of Adversaries: a sweet spot (2–4× unstructured global pruning is as robust as
    dense, within `margin`), global filter pruning collapses at a lower compression than unstructured
    (at the compression where filter pruning's clean accuracy first falls `drop` below dense,
    unstructured keeps more), and unstructured global magnitude beats every structured (filter or kernel)
    method at `rank_cr`. The paper's own result files have unstructured *local* ahead of global on
    ResNet-8 CIFAR-10 at 16× and 32× ("depending on the situation, different strategies are optimal"),
    so global vs local is reported beside the verdict, not judged."""
    table = _pfa_table(results, attack, eps)

    def of(label: str) -> pd.DataFrame:
        return table[table["variant"] == label].set_index("step")

    u, f = of(unstructured), of(filter)
    sweet = [int(s) for s in u.index[u["compression"].isin([2.0, 4.0])]]
    if sweet:
        dense = (unstructured, 0, eps, "robust")
        spot = some_part(
            "a sweet spot: 2–4× unstructured global pruning is as robust as the dense model",
            [
                part(
                    f"{u.loc[s, 'compression']:g}× − dense",
                    partial(difference, results, attack, (unstructured, s, eps, "robust"), dense),
                    len(sweet),
                )
                for s in sweet
            ],
            f"robust accuracy at ε={eps_text(eps)}: dense {pt(u.loc[0, 'robust_acc'])}, "
            + ", ".join(f"{u.loc[s, 'compression']:g}× {pt(u.loc[s, 'robust_acc'])}" for s in sweet),
            margin,
        )
    else:
        spot = Finding(
            "a sweet spot: 2–4× unstructured global pruning is as robust as the dense model",
            "fails",
            "no 2× or 4× checkpoint in the unstructured run",
        )
    collapse = {
        label: _first_collapse(of(label)["clean_acc"], of(label)["compression"], drop)
        for label in (filter, unstructured)
    }
    claim = f"{filter} collapses at a lower compression than {unstructured}"
    where = ", ".join(f"{label} {c:g}×" if np.isfinite(c) else f"{label} never" for label, c in collapse.items())
    numbers = f"clean accuracy first more than {100 * drop:.0f} pt below dense at {where}"
    if not np.isfinite(collapse[filter]):
        first = Finding(claim, "inconclusive", numbers, "prune further: filter pruning never collapsed here")
    else:
        step_f = int(f.index[f["compression"] == collapse[filter]][0])
        step_u = u.index[np.isclose(u["compression"], collapse[filter])]
        if len(step_u) == 0:
            first = Finding(claim, "inconclusive", numbers, "no unstructured checkpoint at the same compression")
        else:
            first = finding(
                claim,
                difference(
                    results, attack, (unstructured, int(step_u[0]), 0.0, "robust"), (filter, step_f, 0.0, "robust")
                ),
                f"{numbers}; clean accuracy there: {unstructured} {pt(u.loc[int(step_u[0]), 'clean_acc'])} "
                f"vs {filter} {pt(f.loc[step_f, 'clean_acc'])}",
            )
    ranked = table[np.isclose(table["compression"], rank_cr)]
    structured = {label for label, method in results.methods.items() if METHODS.get(method).granularity != "weight"}
    rivals = [(row.variant, int(row.step)) for row in ranked.itertuples() if row.variant in structured]
    mine = ranked[ranked["variant"] == unstructured]
    claim = f"{unstructured} beats every structured method at {rank_cr:g}×"
    if mine.empty or not rivals:
        most = Finding(claim, "inconclusive", f"no {rank_cr:g}× checkpoint to compare", "add that compression")
    else:
        mine_cell = (unstructured, int(mine["step"].iloc[0]), eps, "robust")
        best = ranked[ranked["variant"].isin(structured)].sort_values("robust_acc").iloc[-1]
        others = ranked[~ranked["variant"].isin(structured | {unstructured})]
        reported = "; not judged: " + ", ".join(f"{r.variant} {pt(r.robust_acc)}" for r in others.itertuples())
        most = every_part(
            claim,
            [
                part(
                    f"− {v}",
                    partial(difference, results, attack, mine_cell, (v, s, eps, "robust")),
                    len(rivals),
                )
                for v, s in rivals
            ],
            f"at {rank_cr:g}×: {unstructured} {pt(float(mine['robust_acc'].iloc[0]))}, best structured "
            f"{best['variant']} {pt(float(best['robust_acc']))}" + (reported if len(others) else ""),
        )
    return verdict([spot, first, most], table)


@CHECKS.register("transfer")
def transfer(results: PaperResults, attack: str, eps: float, clean_drop: float = 0.03, margin: float = 0.02) -> Verdict:
    """Transfer benchmark (Vora et al. 2023): on examples crafted against the base, pruned models stay
    about as accurate as the base itself was, within `margin` (while clean accuracy holds). Two sanity
    checks of our own, not the paper's claim: transfer accuracy ≥ white-box accuracy, and the two are
    equal at the dense step (its transfer examples are its own white-box ones)."""
    rows = []
    for label in results.run_ids:
        white = at_eps(results.variant(label, attack), eps).set_index("step")
        moved = at_eps(results.variant(label, attack, "transfer"), eps).set_index("step")
        rows += [
            {
                "variant": label,
                "step": int(s),
                "sparsity": float(white.loc[s, "sparsity"]),
                "clean_acc": float(white.loc[s, "clean_acc"]),
                "white_box": float(white.loc[s, "acc"]),
                "transfer": float(moved.loc[s, "acc"]),
            }
            for s in white.index
            if s in moved.index
        ]
    table = pd.DataFrame(rows)
    dense = table[table["step"] == 0]
    pruned = table[table["step"] > 0].merge(
        dense[["variant", "clean_acc", "transfer"]], on="variant", suffixes=("", "_dense")
    )
    held = pruned[pruned["clean_acc"] >= pruned["clean_acc_dense"] - clean_drop]
    claim = "robustness to the base's examples stays comparable to the base's own"
    if held.empty:
        comparable = Finding(
            claim, "inconclusive", "no pruned checkpoint kept its clean accuracy", "prune less, or fine-tune longer"
        )
    else:
        comparable = every_part(
            claim,
            [
                part(
                    f"{row.variant} step {row.step}",
                    partial(
                        difference,
                        results,
                        attack,
                        (row.variant, row.step, eps, "transfer"),
                        (row.variant, 0, eps, "transfer"),
                    ),
                    len(held),
                )
                for row in held.itertuples()
            ],
            f"change of transfer accuracy at ε={eps_text(eps)} at {len(held)} pruned checkpoints whose clean accuracy "
            f"held, worst {signed_pt(float((held['transfer'] - held['transfer_dense']).min()))} "
            f"(base: {pt(float(dense['transfer'].mean()))})",
            margin,
        )
    above = every_part(
        "sanity check (ours): transfer accuracy ≥ white-box accuracy at every pruned checkpoint",
        [
            part(
                f"{row.variant} step {row.step}",
                partial(
                    difference,
                    results,
                    attack,
                    (row.variant, row.step, eps, "transfer"),
                    (row.variant, row.step, eps, "robust"),
                ),
                len(pruned),
            )
            for row in pruned.itertuples()
        ],
        f"smallest transfer − white-box margin {signed_pt(float((pruned['transfer'] - pruned['white_box']).min()))}",
        margin,
    )
    anchored = float((dense["transfer"] - dense["white_box"]).abs().max()) if len(dense) else float("nan")
    same = Finding(
        "sanity check (ours): at sparsity 0 transfer equals white-box accuracy",
        "holds" if anchored == 0 else "fails",
        f"largest difference at the dense step {100 * anchored:.1f} pt (the same examples: must be exactly 0)",
    )
    return verdict([comparable, above, same], table)


def _sizes(results: PaperResults, label: str) -> pd.Series:
    """A run's size per step: parameters of the physically smaller model where filters came out, else the
    effective parameters (weights on an input → output path)."""
    frame = results.efficiency
    frame = frame[frame["variant"] == label].drop_duplicates("step").set_index("step").sort_index()
    shrunk = frame["shrunk_params"] if "shrunk_params" in frame else pd.Series(np.nan, index=frame.index)
    return shrunk.fillna(frame["effective_params"]).astype(float)


def _bracket(sizes: pd.Series, size: float) -> tuple[int, int, float] | None:
    """Two steps whose sizes bracket `size` and the weight w of the second: linear interpolation in size
    gives (1 − w)·first + w·second; None when no two steps bracket it."""
    ordered = sizes.sort_values()
    for (low_step, low), (high_step, high) in zip(ordered.items(), list(ordered.items())[1:]):
        if low <= size <= high:
            w = 0.0 if high == low else (size - low) / (high - low)
            return int(low_step), int(high_step), float(w)
    exact = ordered[ordered == size]
    return (int(exact.index[0]), int(exact.index[0]), 0.0) if len(exact) else None


def _layer_columns(results: PaperResults, label: str, step: int) -> dict[str, float]:
    """Each layer's MRS (the one that set its ratio, else the checkpoint's) and the share of its filters
    the run removed at `step` (for the verdict table)."""
    layers = results.layers
    if layers.empty:
        return {}
    rows = layers[(layers["variant"] == label) & (layers["step"] == step)]
    columns = {}
    for row in rows.itertuples():
        mrs: Any = getattr(row, "ratio_mrs", None)
        mrs = mrs if pd.notna(mrs) else getattr(row, "mrs", None)
        if pd.notna(mrs):
            columns[f"MRS {row.layer}"] = float(mrs)
        if pd.notna(getattr(row, "ratio", None)):
            columns[f"pruned {row.layer}"] = float(row.ratio)
    return columns


@CHECKS.register("mrpf")
def mrpf(
    results: PaperResults,
    attack: str,
    eps: float,
    mrpf: str,
    uniform: str,
    random: str,
    untuned: str,
    margin: float = 0.02,
) -> Verdict:
    """MRPF (Bai et al. 2024): at equal *effective* size (parameters of the physically smaller model) the
    MRS-adaptive ratios are at least as robust as uniform ones (within `margin`), and fine-tuning moves
    robust accuracy more than the pruning criterion (L1 vs random filters).

    Uniform ratios run at more targets than MRPF; uniform's accuracy at MRPF's size is interpolated
    linearly in parameters between the two uniform checkpoints that bracket it (a fixed linear
    combination of two measured accuracies, so the paired bootstrap carries it)."""
    mrpf_acc = by_step(results.variant(mrpf, attack), eps)
    mrpf_size, uniform_size = _sizes(results, mrpf), _sizes(results, uniform)
    uniform_acc = by_step(results.variant(uniform, attack), eps)
    cells, rows, compared = Cells(), [], []
    for step in [int(s) for s in mrpf_acc.index if s > 0]:
        size = float(mrpf_size.get(step, np.nan))
        bracket = _bracket(uniform_size, size) if np.isfinite(size) else None
        row = {"step": step, "target": _target(results, mrpf, attack, step), "params": size, mrpf: mrpf_acc[step]}
        if bracket is not None:
            low, high, w = bracket
            row[f"{uniform} at equal size"] = (1 - w) * uniform_acc[low] + w * uniform_acc[high]
            for key, label, s in (("m", mrpf, step), ("lo", uniform, low), ("hi", uniform, high)):
                cells.add((key, step), (label, s, eps, "robust"))
            compared.append((step, w))
        rows.append(row | _layer_columns(results, mrpf, step))
    table = pd.DataFrame(rows)
    ahead = _equal_size_finding(results, attack, cells, compared, table, mrpf, uniform, eps, margin)
    matters = _tuning_finding(results, attack, eps, uniform, untuned, random)
    return verdict([ahead, matters], table)


def _target(results: PaperResults, label: str, attack: str, step: int) -> float:
    rows = results.variant(label, attack)
    return float(rows[rows["step"] == step]["target_sparsity"].iloc[0])


def _equal_size_finding(
    results: PaperResults,
    attack: str,
    cells: Cells,
    compared: list[tuple[int, float]],
    table: pd.DataFrame,
    mrpf: str,
    uniform: str,
    eps: float,
    margin: float,
) -> Finding:
    claim = f"{mrpf} ≥ {uniform} at equal effective size"
    if not compared:
        sizes = ", ".join(f"{p:,.0f}" for p in table["params"]) if "params" in table else "unknown"
        return Finding(
            claim,
            "inconclusive",
            f"no {uniform} checkpoints bracket {mrpf}'s sizes ({sizes} parameters)",
            f"add {uniform} targets around those sizes",
        )

    def lead(step: int, w: float) -> Callable[[np.ndarray], float]:  # MRPF − uniform interpolated to its size
        return lambda acc: cells(acc, ("m", step)) - ((1 - w) * cells(acc, ("lo", step)) + w * cells(acc, ("hi", step)))

    at_size = table.dropna(subset=[f"{uniform} at equal size"])
    numbers = f"PGD accuracy at ε={eps_text(eps)}: " + ", ".join(
        f"{r['params']:,.0f} parameters ({r['target']:.0%} target) {pt(r[mrpf])} vs {pt(r[f'{uniform} at equal size'])}"
        for _, r in at_size.iterrows()
    )
    parts = [
        part(
            f"step {step}",
            partial(estimate, results, attack, cells.cells, lead(step, w)),
            len(compared),
        )
        for step, w in compared
    ]
    return every_part(claim, parts, numbers, margin)


def _tuning_finding(results: PaperResults, attack: str, eps: float, uniform: str, untuned: str, random: str) -> Finding:
    """Fine-tuning vs criterion on the targets the three uniform variants share."""
    steps = {label: at_eps(results.variant(label, attack), eps) for label in (uniform, untuned, random)}
    shared = sorted(set.intersection(*(set(frame["target_sparsity"][frame["step"] > 0]) for frame in steps.values())))
    cells = Cells()
    for target in shared:
        for label, frame in steps.items():
            step = int(frame[np.isclose(frame["target_sparsity"], target)]["step"].iloc[0])
            cells.add((label, target), (label, step, eps, "robust"))

    def diffs(acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tuned = np.array([cells(acc, (uniform, t)) for t in shared])
        raw = np.array([cells(acc, (untuned, t)) for t in shared])
        rand = np.array([cells(acc, (random, t)) for t in shared])
        return tuned - raw, np.abs(tuned - rand)

    def tuning_minus_criterion(acc: np.ndarray) -> float:
        tuning, criterion = diffs(acc)
        return float(tuning.mean() - criterion.mean())

    point = np.array([_row(results, attack, cell)["acc"] for cell in cells.cells])
    tuning, criterion = diffs(point)
    return finding(
        "fine-tuning matters more than the criterion",
        estimate(results, attack, cells.cells, tuning_minus_criterion),
        f"at {', '.join(f'{t:.0%}' for t in shared)}: fine-tuning adds {signed_pt(tuning.mean())} on average; "
        f"L1 vs random filters differ by {100 * criterion.mean():.1f} pt",
    )
