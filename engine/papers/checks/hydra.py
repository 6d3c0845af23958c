"""HYDRA (Sehwag et al., NeurIPS 2020): HYDRA's scores against magnitude pruning (LWM) at shrinking k."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from engine.papers.claims import (
    Verdict,
    at_eps,
    clean_at,
    difference,
    eps_text,
    estimate,
    finding,
    pt,
    register_check,
    signed_pt,
    verdict,
)
from engine.papers.results import PaperResults
from engine.report.paper_figures import kept_fraction_lines, one_attack
from engine.status import Decision


def figures(results: PaperResults, options: dict[str, Any]) -> list[go.Figure]:
    """Accuracy against the kept fraction k for both methods (and, for smoothed models, attacked)."""
    measure = options.get("measure", "PGD accuracy").removesuffix(" accuracy")
    drawn = [kept_fraction_lines(one_attack(results.robust, options["attack"]), options["eps"], measure=measure)]
    attacks = set(results.robust["attack"]) - {options["attack"]}
    if measure == "certified" and "smooth_pgd_l2" in attacks:  # the same smoothed models, attacked
        attacked = one_attack(results.robust, "smooth_pgd_l2")
        drawn.append(kept_fraction_lines(attacked, options["eps"], measure="attacked (smooth_pgd_l2)"))
    return drawn


def _paired_gap(results: PaperResults, first: str, second: str, attack: str, eps: float) -> pd.DataFrame:
    """Per step: the two variants' robust accuracy at ε and the gap first − second."""
    a = at_eps(results.variant(first, attack), eps).set_index("step")
    b = at_eps(results.variant(second, attack), eps).set_index("step")
    table = pd.DataFrame(
        {"sparsity": a["sparsity"], "target": a["target_sparsity"], first: a["acc"], second: b["acc"]}
    ).dropna()
    return table.assign(gap=table[first] - table[second])


@register_check("hydra", figures)
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
    clean = [clean_at(results, label, s_last, attack) for label in (hydra, lwm)]
    if max(clean) <= chance + margin:
        why = (
            f"both models collapsed at k = {k_last:.2g} (clean {pt(clean[0])} and {pt(clean[1])}, chance "
            f"{pt(chance)}): a comparison at chance says nothing; prune less or fine-tune longer"
        )
        ahead, grows = (replace(f, status=Decision.INCONCLUSIVE, to_decide=why) for f in (ahead, grows))
    return verdict([ahead, grows], table.reset_index())
