"""MRPF's rule from sensitivities to per-layer pruning ratios, torch-free so a page can apply it to any
run that measured MRS: what MRPF would have pruned, beside what the run's own method did.

MRPF (Bai et al. 2024) maps each layer's Module Robustness Sensitivity to a ratio p_l = clip(λ / MRS_l,
p_min, p_max_l), λ chosen so that the size-weighted mean of the ratios hits the step's target sparsity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RULE_CAP = 0.95
"""The cap of a layer's ratio when the rule is applied to a run's weights: MRPF's default p_max, so that
no layer is emptied (an MRPF run also keeps a floor of filters, engine.science.pruning.sensitivity).
Above 95 % sparsity the capped rule cannot reach the step's target: every layer then sits at its cap."""


def ratios_from_sensitivity(
    mrs: dict[str, float],
    sizes: dict[str, int],
    target: float,
    p_min: float = 0.0,
    p_max: float | dict[str, float] = 0.95,
) -> dict[str, float]:
    """Per-layer pruning ratios p_l = clip(λ / MRS_l, p_min, p_max_l) with Σ n_l p_l = target · N.

    Monotone: a layer with higher MRS gets a lower or equal ratio (among layers with the same cap).
    λ is found by bisection, so the weighted mean hits the target to 1e-9 whenever the caps allow it.
    """
    names = list(mrs)
    inverse = np.array([1.0 / max(mrs[n], 1e-12) for n in names], dtype=np.float64)
    n = np.array([float(sizes[name]) for name in names], dtype=np.float64)
    caps = p_max if isinstance(p_max, dict) else dict.fromkeys(names, p_max)
    cap = np.array([caps[name] for name in names], dtype=np.float64)
    goal = min(target, float((cap * n).sum() / n.sum())) * float(n.sum())

    def pruned(lam: float) -> np.ndarray:
        return np.minimum(np.maximum(lam * inverse, p_min), cap)

    low, high = 0.0, 1.0
    while float((pruned(high) * n).sum()) < goal and high < 1e300:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if float((pruned(mid) * n).sum()) < goal else (low, mid)
    return {name: float(r) for name, r in zip(names, pruned(high))}


def with_mrpf_rule(frame: pd.DataFrame) -> pd.DataFrame:
    """A layers frame (engine.store.frames.layers_frame) with two columns added at every pruning step:
    `uniform`, the step's sparsity (every layer pruned alike), and `mrpf_rule`, the ratio MRPF's rule gives
    each prunable layer from the MRS measured on the checkpoint before the step, at the step's sparsity
    (weights, capped at RULE_CAP, so below the target where the caps bind). NaN where the previous
    checkpoint has no MRS."""
    frame = frame.copy()
    frame["uniform"] = np.where(frame["step"] > 0, frame.get("step_sparsity", np.nan), np.nan)
    frame["mrpf_rule"] = np.nan
    if frame.empty or "mrs" not in frame:
        return frame
    prunable = frame[frame["prunable"].astype(bool)] if "prunable" in frame else frame
    for step, rows in prunable[prunable["step"] > 0].groupby("step"):
        before = prunable[(prunable["step"] == step - 1) & prunable["mrs"].notna()]
        if before.empty or set(before["layer"]) != set(rows["layer"]):
            continue
        mrs = dict(zip(before["layer"], before["mrs"].astype(float)))
        sizes = dict(zip(before["layer"], before["numel"].astype(int)))
        ratios = ratios_from_sensitivity(mrs, sizes, float(rows["step_sparsity"].iloc[0]), p_max=RULE_CAP)
        at_step = frame.index[(frame["step"] == step) & frame["layer"].isin(ratios)]
        frame.loc[at_step, "mrpf_rule"] = frame.loc[at_step, "layer"].map(ratios)
    return frame


def sensitivity_sentence(frame: pd.DataFrame, step: int) -> str | None:
    """The Layers lesson at one step, in a line: the layer most sensitive before the step, the share
    MRPF (or its rule) gives it against the uniform share, and what this run pruned of it. None
    without the numbers (no MRS on the checkpoint before the step)."""
    ratio = "ratio" if "ratio" in frame and frame["ratio"].notna().any() else "mrpf_rule"
    part = frame[(frame["step"] == step)]
    if ratio not in part or part[ratio].isna().all():
        return None
    before = frame[(frame["step"] == step - 1) & frame["layer"].isin(part["layer"])]
    mrs = before.set_index("layer")["mrs"] if "mrs" in before else pd.Series(dtype=float)
    if ratio == "ratio" and "ratio_mrs" in part and part["ratio_mrs"].notna().any():
        mrs = part.set_index("layer")["ratio_mrs"]
    mrs = pd.to_numeric(mrs, errors="coerce").dropna()
    if mrs.empty:
        return None
    layer = str(mrs.idxmax())
    row = part.set_index("layer").loc[layer]
    source = "MRPF" if ratio == "ratio" else "MRPF's rule"
    target = float(row["step_sparsity"])
    reached = float((part[ratio] * part["numel"]).sum() / part["numel"].sum()) if "numel" in part else target
    capped = (
        f" (its {100 * RULE_CAP:.0f} % cap per layer binds: it cannot prune that far)"
        if reached < target - 1e-3
        else ""
    )
    return (
        f"Before step {step}, the most sensitive layer was **{layer}** (MRS {mrs[layer]:.3g}): {source} prunes "
        f"{100 * float(row[ratio]):.1f} % of it{capped}, against {100 * target:.1f} % if every layer were pruned "
        f"alike; this run pruned {100 * float(row['sparsity']):.1f} %."
    )
