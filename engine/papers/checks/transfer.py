"""Transfer attacks between a base and its pruned models: crafted on the base, replayed on each."""

from __future__ import annotations

from functools import partial
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from engine.papers.claims import (
    Finding,
    Verdict,
    at_eps,
    difference,
    eps_text,
    every_part,
    part,
    pt,
    register_check,
    signed_pt,
    verdict,
)
from engine.papers.results import PaperResults
from engine.report.figures import transfer_vs_white_box
from engine.report.paper_figures import no_results, one_attack, variants
from engine.status import Decision


def figures(results: PaperResults, options: dict[str, Any]) -> list[go.Figure]:
    """Transferred against white-box accuracy, one panel per variant."""
    white, moved = one_attack(results.robust, options["attack"]), one_attack(results.transfer, options["attack"])
    if white.empty:
        return [no_results()]
    return [
        transfer_vs_white_box(white[white["variant"] == v], moved[moved["variant"] == v], options["eps"], v)
        for v in variants(white)
    ]


@register_check("transfer", figures)
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
            claim,
            Decision.INCONCLUSIVE,
            "no pruned checkpoint kept its clean accuracy",
            "prune less, or fine-tune longer",
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
        Decision.HOLDS if anchored == 0 else Decision.FAILS,
        f"largest difference at the dense step {100 * anchored:.1f} pt (the same examples: must be exactly 0)",
    )
    return verdict([comparable, above, same], table)
