"""Blind Adversarial Pruning (Li et al. 2020): AP's budgets against BAP's, one run per final sparsity."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.papers.claims import (
    Cells,
    Verdict,
    area_weights,
    by_step,
    cell_row,
    estimate,
    every_part,
    final_step,
    part,
    pt,
    range_of,
    register_check,
    verdict,
)
from engine.papers.results import PaperResults
from engine.report.figures import budget_trajectory
from engine.report.paper_figures import strength_curves


def figures(results: PaperResults, options: dict[str, Any]) -> list[go.Figure]:
    """Accuracy over attack strength per final sparsity, and the adversarial budget's trajectory."""
    labels = {r: label for label, r in results.run_ids.items()}
    return [
        strength_curves(results.finals(options["attack"]), "Accuracy over attack strength, one run per final sparsity"),
        budget_trajectory(results.budget, labels),
    ]


@register_check("bap", figures)
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
    weights = area_weights(strong_eps)
    cells, rows = Cells(), []
    for variant in [natural, *ap, bap]:
        for level, label in results.grid(variant).items():
            step = final_step(results, label, attack)
            for e in [0.0, *strong_eps]:
                cells.add((label, e), (label, step, e, "robust"))
            frame = results.variant(label, attack)
            final = cell_row(results, attack, (label, step, 0.0, "robust"))
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
        return range_of(np.array([area(acc, label) for label in runs[variant]]))

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
