"""Pruning for adversarial robustness at every compression (the pfa preset): unstructured vs structured."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.papers.claims import (
    Finding,
    Verdict,
    at_eps,
    difference,
    eps_text,
    every_part,
    finding,
    part,
    pt,
    register_check,
    some_part,
    verdict,
)
from engine.papers.results import PaperResults
from engine.report.figures import adversarial_share_lines
from engine.report.paper_figures import compression_panels, no_results, one_attack
from engine.science.pruning.methods import METHODS
from engine.status import Decision


def figures(results: PaperResults, options: dict[str, Any]) -> list[go.Figure]:
    """Robust accuracy against compression per attack; the unstructured model under a share of adversarial inputs."""
    drawn = (
        [
            compression_panels(one_attack(results.robust, attack), f"{attack}: robust accuracy vs compression")
            for attack in dict.fromkeys(results.robust["attack"])
        ]
        if not results.robust.empty
        else [no_results()]
    )
    unstructured = one_attack(results.robust, options["attack"])
    unstructured = (
        unstructured[unstructured["variant"] == options["unstructured"]] if not unstructured.empty else unstructured
    )
    drawn.append(
        adversarial_share_lines(
            unstructured, options["eps"], f"{options['unstructured']}: accuracy when a share r of inputs is adversarial"
        )
    )
    return drawn


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


@register_check("pfa", figures)
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
            Decision.FAILS,
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
        first = Finding(claim, Decision.INCONCLUSIVE, numbers, "prune further: filter pruning never collapsed here")
    else:
        step_f = int(f.index[f["compression"] == collapse[filter]][0])
        step_u = u.index[np.isclose(u["compression"], collapse[filter])]
        if len(step_u) == 0:
            first = Finding(claim, Decision.INCONCLUSIVE, numbers, "no unstructured checkpoint at the same compression")
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
        most = Finding(claim, Decision.INCONCLUSIVE, f"no {rank_cr:g}× checkpoint to compare", "add that compression")
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
