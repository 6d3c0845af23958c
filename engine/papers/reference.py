"""The reference attack beside a claim judged on PGD: AutoAttack's robust accuracy at the claim's ε.

A PGD-10 number is an upper bound on robustness, and a loose one where gradients are masked; the
community's reference is Croce & Hein's AutoAttack (engine/science/attacks/autoattack.py runs their
own code). A paper preset judged on a PGD attack also scores its checkpoints with `autoattack` at the
claim's ε, and this module reports, checkpoint by checkpoint on the same images, how far PGD's accuracy
lies above AutoAttack's. It reports; it does not judge: the claim stays the paper's, on the paper's
attack, and the report says whether that attack over-reported robustness here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.papers.claims import at_eps, eps_text, pt, signed_pt, strict_level
from engine.papers.results import PaperResults
from engine.report.flags import unpack_flags
from engine.report.stats import LEVEL, paired

REFERENCE_ATTACK = "autoattack"
"""The attack that checks a PGD verdict: AutoAttack's standard ensemble in L∞."""


def judged_on_pgd(attack: str) -> bool:
    """Is a claim judged by this attack one that AutoAttack should check (a PGD attack in L∞)?"""
    return attack.startswith("pgd_linf")


def reference_table(results: PaperResults, attack: str, eps: float) -> pd.DataFrame:
    """Per checkpoint scored by both attacks at ε: the judging attack's accuracy, AutoAttack's, and the
    paired difference (judging − AutoAttack) with its interval at the Bonferroni level over the
    checkpoints (the largest gap is picked after looking); empty where AutoAttack did not run."""
    pairs = _pairs(results, attack, eps)
    level = strict_level(len(pairs), LEVEL)
    rows = []
    for (label, step), (judging, reference) in pairs.items():
        n = min(len(judging), len(reference))  # a grown PGD row: its first n images are AutoAttack's
        gap = paired(judging[:n], reference[:n], level)
        rows.append(
            {
                "variant": label,
                "step": step,
                "sparsity": _sparsity(results, label, step, attack),
                attack: float(judging[:n].mean()),
                REFERENCE_ATTACK: float(reference[:n].mean()),
                "above": gap.diff,
                "above_low": gap.low,
                "above_high": gap.high,
                "n": n,
            }
        )
    return pd.DataFrame(rows)


def reference_line(table: pd.DataFrame, attack: str, eps: float) -> str:
    """The report in one sentence: on how many checkpoints the judging attack's accuracy lies
    significantly above AutoAttack's (at the corrected level), and the largest gap with its interval."""
    if table.empty:
        return ""
    worst = table.loc[table["above"].idxmax()]
    above = int((table["above_low"] > 0).sum())
    where = f"{worst['variant']} at {100 * worst['sparsity']:.0f} % sparsity"
    head = (
        f"AutoAttack (Croce & Hein's standard ensemble) at ε = {eps_text(eps)} on {len(table)} checkpoints, "
        f"the same {int(table['n'].min()):,} images: {attack} "
    )
    gap = (
        f"largest gap {signed_pt(worst['above'])} [{signed_pt(worst['above_low'])}, {signed_pt(worst['above_high'])}] "
        f"({where}: {pt(worst[attack])} vs {pt(worst[REFERENCE_ATTACK])})"
    )
    if above == 0:
        return f"{head}is never significantly above it (intervals Bonferroni-corrected over the checkpoints); {gap}"
    return (
        f"{head}over-reports robustness on {above} of them (significant at the corrected level); {gap}: "
        "read the verdict's accuracies as upper bounds"
    )


def _pairs(results: PaperResults, attack: str, eps: float) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
    """(run label, step) → per-image flags of the judging attack and of AutoAttack at ε, where both kept them."""
    if results.robust.empty:
        return {}
    pairs = {}
    for label in results.status:
        judging = _flags_by_step(at_eps(results.variant(label, attack), eps))
        reference = _flags_by_step(at_eps(results.variant(label, REFERENCE_ATTACK), eps))
        for step in sorted(judging.keys() & reference.keys()):
            pairs[label, step] = (judging[step], reference[step])
    return pairs


def _flags_by_step(rows: pd.DataFrame) -> dict[int, np.ndarray]:
    return {
        int(row["step"]): unpack_flags(row["correct"], int(row["n"]))
        for _, row in rows.iterrows()
        if isinstance(row.get("correct"), bytes) and not pd.isna(row.get("n"))
    }


def _sparsity(results: PaperResults, label: str, step: int, attack: str) -> float:
    rows = results.variant(label, attack)
    return float(rows[rows["step"] == step]["sparsity"].iloc[0])
