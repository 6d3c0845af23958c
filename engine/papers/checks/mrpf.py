"""MRPF: filter ratios from the layers' robustness sensitivity (MRS) against uniform ratios at equal size."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.papers.claims import (
    Cells,
    Finding,
    Verdict,
    at_eps,
    by_step,
    cell_row,
    eps_text,
    estimate,
    every_part,
    finding,
    part,
    pt,
    register_check,
    signed_pt,
    verdict,
)
from engine.papers.results import PaperResults
from engine.report.paper_figures import one_attack, size_lines, variant_bars
from engine.status import Decision


def figures(results: PaperResults, options: dict[str, Any]) -> list[go.Figure]:
    """Accuracy per variant, and accuracy against the shrunk model's real size."""
    robust = one_attack(results.robust, options["attack"])
    return [variant_bars(robust, options["eps"]), size_lines(robust, results.efficiency, options["eps"])]


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


@register_check("mrpf", figures)
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
            Decision.INCONCLUSIVE,
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

    point = np.array([cell_row(results, attack, cell)["acc"] for cell in cells.cells])
    tuning, criterion = diffs(point)
    return finding(
        "fine-tuning matters more than the criterion",
        estimate(results, attack, cells.cells, tuning_minus_criterion),
        f"at {', '.join(f'{t:.0%}' for t in shared)}: fine-tuning adds {signed_pt(tuning.mean())} on average; "
        f"L1 vs random filters differ by {100 * criterion.mean():.1f} pt",
    )
