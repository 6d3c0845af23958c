"""Claim checks (registered): does a seed paper's qualitative claim hold in this run, and by how much?

Each check reads a paper preset's results (engine.papers.results.PaperResults: robust, transfer, budget
and layer rows tagged by variant) and returns a Verdict: one finding per part of the claim, each
with the numbers behind it, and a table of those numbers. A claim that does not hold is reported
as such, with the same care as one that does: at small scale that is a finding, not a failure.
Accuracies are fractions; tolerances are in the same unit (0.01 = one point).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine.papers.results import PaperResults
from engine.registry import Registry


@dataclass(frozen=True)
class Finding:
    """One part of a claim: what it says, whether it held, and the numbers that decide it."""

    claim: str
    holds: bool
    numbers: str


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict: `holds`, `fails` (some part does not hold here) or `incomplete` (runs missing)."""

    status: str
    headline: str
    findings: list[Finding] = field(default_factory=list)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the table as records, NaN as null)."""
        return {
            "status": self.status,
            "headline": self.headline,
            "findings": [{"claim": f.claim, "holds": bool(f.holds), "numbers": f.numbers} for f in self.findings],
            "table": json.loads(self.table.to_json(orient="records")) if not self.table.empty else [],
        }


Check = Callable[..., Verdict]
CHECKS: Registry[Check] = Registry("claim check")


def verdict(findings: list[Finding], table: pd.DataFrame) -> Verdict:
    """Holds when every finding holds; the headline says which do not, with their numbers."""
    failed = [f for f in findings if not f.holds]
    if not failed:
        return Verdict("holds", "Holds here: " + "; ".join(f.numbers for f in findings), findings, table)
    return Verdict(
        "fails", "Does not hold here: " + "; ".join(f"{f.claim} — {f.numbers}" for f in failed), findings, table
    )


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


def clean_by_step(frame: pd.DataFrame) -> pd.Series:
    """Clean accuracy indexed by step."""
    return frame.drop_duplicates("step").set_index("step")["clean_acc"].sort_index()


def _spread(series: pd.Series) -> float:
    return float(series.max() - series.min()) if len(series) else float("nan")


@CHECKS.register("bap")
def bap(
    results: PaperResults, attack: str, eps: float, ap: list[str], bap: str, natural: str, tolerance: float = 0.0
) -> Verdict:
    """Blind Adversarial Pruning: a larger AP budget trades clean accuracy for robustness, and BAP's
    robustness at attack strength ε varies less across sparsity levels than AP's (RESEARCH check 17).

    `ap` lists the AP variants by increasing training budget; statistics over the pruned steps.
    """
    rows = []
    for label in [natural, *ap, bap]:
        frame = results.variant(label, attack)
        pruned = frame[frame["step"] > 0]
        robust = by_step(pruned, eps)
        rows.append(
            {
                "variant": label,
                "clean_mean": float(clean_by_step(pruned).mean()),
                "robust_mean": float(robust.mean()),
                "robust_min": float(robust.min()),
                "robust_max": float(robust.max()),
                "spread": _spread(robust),
            }
        )
    table = pd.DataFrame(rows).set_index("variant")
    small, large = table.loc[ap[0]], table.loc[ap[-1]]
    trade = Finding(
        f"AP with the larger budget ({ap[-1]}) has lower clean and higher robust accuracy than {ap[0]}",
        bool(large.clean_mean <= small.clean_mean and large.robust_mean >= small.robust_mean),
        f"clean {pt(large.clean_mean)} vs {pt(small.clean_mean)}, robust at ε={eps_text(eps)} "
        f"{pt(large.robust_mean)} vs {pt(small.robust_mean)}",
    )
    ap_spreads = {label: table.loc[label, "spread"] for label in ap}
    stable = Finding(
        "BAP's robustness varies less across sparsity than every AP budget's",
        bool(table.loc[bap, "spread"] <= min(ap_spreads.values()) + tolerance),
        f"spread of robust accuracy at ε={eps_text(eps)} over the pruned steps: BAP "
        f"{100 * table.loc[bap, 'spread']:.1f} pt vs "
        + ", ".join(f"{label} {100 * s:.1f} pt" for label, s in ap_spreads.items()),
    )
    return verdict([trade, stable], table.reset_index())


def _paired_gap(results: PaperResults, first: str, second: str, attack: str, eps: float) -> pd.DataFrame:
    """Per step: the two variants' robust accuracy at ε and the gap first − second."""
    a = at_eps(results.variant(first, attack), eps).set_index("step")
    b = at_eps(results.variant(second, attack), eps).set_index("step")
    table = pd.DataFrame(
        {"sparsity": a["sparsity"], "target": a["target_sparsity"], first: a["acc"], second: b["acc"]}
    ).dropna()
    return table.assign(gap=table[first] - table[second])


@CHECKS.register("hydra")
def hydra(results: PaperResults, attack: str, eps: float, hydra: str, lwm: str, tolerance: float = 0.01) -> Verdict:
    """HYDRA: robust accuracy at the smallest k is at least LWM's (within `tolerance`), and HYDRA's lead
    at the smallest k is at least its lead at the largest k (RESEARCH check 16)."""
    table = _paired_gap(results, hydra, lwm, attack, eps)
    table = table[table["target"] > 0].sort_values("target")
    first, last = table.iloc[0], table.iloc[-1]
    k_first, k_last = 1 - first["target"], 1 - last["target"]
    ahead = Finding(
        f"{hydra} ≥ {lwm} at k = {k_last:.2g}",
        bool(last["gap"] >= -tolerance),
        f"PGD accuracy at ε={eps_text(eps)}, k={k_last:.2g}: {pt(last[hydra])} vs {pt(last[lwm])} "
        f"({signed_pt(last['gap'])})",
    )
    grows = Finding(
        f"the gap grows with compression (k = {k_first:.2g} → {k_last:.2g})",
        bool(last["gap"] >= first["gap"] - tolerance),
        f"gap {signed_pt(first['gap'])} at k={k_first:.2g} → {signed_pt(last['gap'])} at k={k_last:.2g}",
    )
    return verdict([ahead, grows], table.reset_index())


def _first_collapse(clean: pd.Series, cr: pd.Series, drop: float) -> float:
    """The smallest compression rate whose clean accuracy fell more than `drop` below dense (inf if none)."""
    dense = clean.loc[0]
    fallen = cr[(clean < dense - drop) & (cr > 1)]
    return float(fallen.min()) if len(fallen) else float("inf")


@CHECKS.register("pfa")
def pfa(
    results: PaperResults,
    attack: str,
    eps: float,
    unstructured: str,
    filter: str,
    rank_cr: float = 16,
    tolerance: float = 0.01,
    drop: float = 0.05,
) -> Verdict:
    """Pruning in the Face of Adversaries: a sweet spot (2–4× unstructured global pruning is as robust
    as dense), global filter pruning collapses at a lower compression than unstructured, and global
    magnitude (unstructured) is the most robust method at high compression."""
    rows = []
    for label in results.run_ids:
        frame = results.variant(label, attack)
        at = at_eps(frame, eps).set_index("step")
        cr = 1 / (1 - at["target_sparsity"])
        rows += [
            {
                "variant": label,
                "step": s,
                "compression": round(float(cr[s]), 2),
                "clean_acc": float(at.loc[s, "clean_acc"]),
                "robust_acc": float(at.loc[s, "acc"]),
            }
            for s in at.index
        ]
    table = pd.DataFrame(rows)

    def series(label: str, column: str) -> pd.Series:
        part = table[table["variant"] == label].set_index("step")
        return part[column]

    dense = float(series(unstructured, "robust_acc").loc[0])
    u = table[table["variant"] == unstructured]
    sweet = u[u["compression"].isin([2.0, 4.0])]
    best = sweet.loc[sweet["robust_acc"].idxmax()] if len(sweet) else None
    spot = Finding(
        "a sweet spot: 2–4× unstructured global pruning is as robust as the dense model",
        best is not None and best["robust_acc"] >= dense - tolerance,
        f"robust accuracy at ε={eps_text(eps)}: dense {pt(dense)}, best of 2–4× "
        + (f"{pt(best['robust_acc'])} at {best['compression']:g}×" if best is not None else "missing"),
    )
    collapse = {
        label: _first_collapse(series(label, "clean_acc"), series(label, "compression"), drop)
        for label in (filter, unstructured)
    }
    first = Finding(
        f"{filter} collapses at a lower compression than {unstructured}",
        collapse[filter] < collapse[unstructured],
        f"clean accuracy first more than {100 * drop:.0f} pt below dense at "
        + ", ".join(f"{label} {c:g}×" if np.isfinite(c) else f"{label} never" for label, c in collapse.items()),
    )
    at_rank = table[np.isclose(table["compression"], rank_cr)].set_index("variant")["robust_acc"]
    leader = at_rank.idxmax() if len(at_rank) else "none"
    most = Finding(
        f"{unstructured} is the most robust method at {rank_cr:g}×",
        unstructured in at_rank.index and at_rank[unstructured] >= at_rank.max() - tolerance,
        f"at {rank_cr:g}×: {unstructured} {pt(at_rank.get(unstructured, float('nan')))}, best {leader} "
        f"{pt(at_rank.max()) if len(at_rank) else 'missing'}",
    )
    return verdict([spot, first, most], table)


@CHECKS.register("transfer")
def transfer(
    results: PaperResults, attack: str, eps: float, tolerance: float = 0.02, clean_drop: float = 0.03
) -> Verdict:
    """Transfer benchmark (Vora et al. 2023): on examples crafted against the base, pruned models stay
    about as accurate as the base itself was (while clean accuracy holds), and transfer accuracy is at
    least white-box accuracy (RESEARCH check 8)."""
    rows = []
    for label in results.run_ids:
        white = at_eps(results.variant(label, attack), eps).set_index("step")
        moved = at_eps(results.variant(label, attack, "transfer"), eps).set_index("step")
        rows += [
            {
                "variant": label,
                "step": s,
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
    comparable_gap = float((held["transfer"] - held["transfer_dense"]).min()) if len(held) else float("nan")
    comparable = Finding(
        "robustness to the base's examples stays comparable to the base's own",
        bool(len(held)) and comparable_gap >= -tolerance,
        f"worst change of transfer accuracy at ε={eps_text(eps)} over {len(held)} pruned checkpoints "
        f"whose clean accuracy held: "
        f"{signed_pt(comparable_gap) if len(held) else 'none held'} (base: {pt(float(dense['transfer'].mean()))})",
    )
    margin = float((pruned["transfer"] - pruned["white_box"]).min()) if len(pruned) else float("nan")
    above = Finding(
        "transfer accuracy ≥ white-box accuracy at every pruned checkpoint",
        bool(len(pruned)) and margin >= -tolerance,
        f"smallest transfer − white-box margin {signed_pt(margin)}",
    )
    anchored = float((dense["transfer"] - dense["white_box"]).abs().max()) if len(dense) else float("nan")
    same = Finding(
        "at sparsity 0 transfer equals white-box accuracy",
        anchored <= 0.005,
        f"largest difference at the dense step {100 * anchored:.1f} pt",
    )
    return verdict([comparable, above, same], table)


@CHECKS.register("mrpf")
def mrpf(
    results: PaperResults,
    attack: str,
    eps: float,
    mrpf: str,
    uniform: str,
    random: str,
    untuned: str,
    tolerance: float = 0.01,
) -> Verdict:
    """MRPF (Bai et al. 2024): at equal sparsity MRS-adaptive ratios are at least as robust as uniform
    ones, and fine-tuning moves robust accuracy more than the pruning criterion (L1 vs random filters)."""
    labels = [mrpf, uniform, random, untuned]
    series = {label: by_step(results.variant(label, attack), eps) for label in labels}
    first = at_eps(results.variant(uniform, attack), eps).set_index("step")
    table = pd.DataFrame({"target": first["target_sparsity"], **series}).dropna()
    table = table[table["target"] > 0].sort_values("target")
    gap = table[mrpf] - table[uniform]
    ahead = Finding(
        f"{mrpf} ≥ {uniform} at every sparsity",
        bool(len(gap)) and float(gap.min()) >= -tolerance,
        f"PGD accuracy at ε={eps_text(eps)}: "
        + ", ".join(f"{t:.0%} {pt(m)} vs {pt(u)}" for t, m, u in zip(table["target"], table[mrpf], table[uniform])),
    )
    tuning = float((table[uniform] - table[untuned]).mean())
    criterion = float((table[uniform] - table[random]).abs().mean())
    matters = Finding(
        "fine-tuning matters more than the criterion",
        tuning > criterion,
        f"fine-tuning adds {signed_pt(tuning)} on average; L1 vs random filters differ by {100 * criterion:.1f} pt",
    )
    return verdict([ahead, matters], table.reset_index())
