"""Summaries and evaluation hygiene over tidy robust frames (pure pandas; no torch, no store).

Frames have one row per run × step × attack × ε with `sparsity`, `clean_acc`, `norm`, `eps` and
`acc` (fractions). Every function here reads a frame and returns numbers or rows; none writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.report.sequential import paired_grown
from engine.report.stats import Difference, decide, paired, successes, unpack_flags, unpaired
from engine.status import Decision

# Attacks ordered by strength within a norm: a weaker one should never beat a stronger one.
# (attack that should not win, attack it should not beat, warning kind, what it means)
SHOULD_NOT_BEAT = [
    ("fgsm", "pgd_linf", "weaker_beats_stronger", "{strong} is under-converged; raise its steps or restarts"),
    (
        "square",
        "pgd_linf",
        "gradient_masking",
        "a gradient-free attack beats a gradient one, so the gradients mislead (gradient masking); trust "
        "the lower number",
    ),
    (
        "square",
        "apgd_ce",
        "gradient_masking",
        "a gradient-free attack beats a gradient one, so the gradients mislead (gradient masking); trust "
        "the lower number",
    ),
]
HYGIENE_TOLERANCE = 0.01  # one point of accuracy: below this, differences are attack noise
# Minimal-distance attacks and the bounded PGD of the same norm: on a model at chance, the minimal
# attack has nothing to find, so a curve below PGD's is a broken attack (DeepFool's old 0/0), not strength.
MINIMAL_VS_PGD = [("deepfool", "pgd_l2"), ("cw_l2", "pgd_l2")]
# A certificate and an attack on the same (smoothed) classifier: certified accuracy is a lower bound
# on its robust accuracy and the attack's figure an upper one, so the certificate above the attack
# (by more than sampling explains) means the attack is weak or its gradients are masked.
CERTIFIED_VS_EMPIRICAL = [("smoothing", "smooth_pgd_l2")]


def normalised_auc(eps: np.ndarray, acc: np.ndarray) -> float:
    """Area under robust accuracy vs ε (trapezoid), divided by the ε range: 1 = clean at 100 % throughout."""
    order = np.argsort(eps)
    eps, acc = np.asarray(eps, float)[order], np.asarray(acc, float)[order]
    span = eps[-1] - eps[0]
    if len(eps) < 2 or span <= 0:
        return float(acc[0]) if len(acc) else float("nan")
    return float(np.trapezoid(acc, eps) / span)


def auc_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run × step × attack: sparsity, clean accuracy, normalised AUC and the ε range."""
    rows = []
    for (run_id, step, attack), curve in frame.groupby(["run_id", "step", "attack"], sort=True):
        rows.append(
            {
                "run_id": run_id,
                "step": step,
                "attack": attack,
                "norm": curve["norm"].iloc[0],
                "sparsity": curve["sparsity"].iloc[0],
                "clean_acc": curve["clean_acc"].iloc[0],
                "auc": normalised_auc(curve["eps"].to_numpy(), curve["acc"].to_numpy()),
                "eps_max": curve["eps"].max(),
            }
        )
    return pd.DataFrame(rows, columns=["run_id", "step", "attack", "norm", "sparsity", "clean_acc", "auc", "eps_max"])


SWEET_SPOT_MARGIN = 0.02
"""How far below the dense model a pruned checkpoint may lie and still be a sweet spot: the paper
claims' non-inferiority margin (engine.papers.claims), stated beside every verdict."""

SPOT_COLUMNS = [
    "run_id",
    "step",
    "sparsity",
    "attack",
    "eps",
    "acc",
    "dense_acc",
    "diff",
    "ci_low",
    "ci_high",
    "verdict",
]


def sweet_spots(frame: pd.DataFrame, margin: float = SWEET_SPOT_MARGIN) -> pd.DataFrame:
    """Pruned checkpoints as robust as the dense model (step 0) at an ε > 0, within `margin`, decided on
    the 95 % interval of pruned − dense: paired (Tango's score interval) where both rows kept per-image flags on
    the same images (a frame read with flags), else two independent accuracies from their n.

    Per run × attack × ε, the points whose verdict is "holds" (the interval lies above −margin: a sweet
    spot) or "inconclusive" (it straddles −margin: the images cannot tell); points that fail, and points
    without n, are left out. At ε = 0 this would be clean accuracy, so ε = 0 is never judged.
    """
    attacked = frame[frame["eps"] > 0]
    if "n" not in attacked or attacked.empty:
        return pd.DataFrame(columns=SPOT_COLUMNS)
    keep = [c for c in ("run_id", "attack", "eps", "acc", "n", "n_own", "correct") if c in attacked]
    dense = attacked[attacked["step"] == 0][keep]
    pruned = attacked[attacked["step"] > 0][[*keep, "step", "sparsity"]]
    merged = pruned.merge(dense, on=["run_id", "attack", "eps"], suffixes=("", "_dense"))
    merged = merged[(merged["n"].fillna(0) > 0) & (merged["n_dense"].fillna(0) > 0)]
    rows = []
    for _, row in merged.iterrows():
        gap = versus_dense(row)
        verdict = decide(gap.low, gap.high, margin)
        if verdict != Decision.FAILS:
            rows.append([*row[["run_id", "step", "sparsity", "attack", "eps", "acc", "acc_dense"]], gap.diff, gap.low,
                         gap.high, verdict])  # fmt: skip
    return pd.DataFrame(rows, columns=SPOT_COLUMNS)


@dataclass(frozen=True)
class Cliff:
    """Where robustness collapses along one run's sparsity at one ε: the sparsity the model reached for
    free (every checkpoint up to it a sweet spot, ★) and the drop of the sparsest checkpoint below the
    dense model, with its paired interval."""

    attack: str
    eps: float
    norm: str
    free_up_to: float | None
    sparsity: float
    dense_acc: float
    acc: float
    drop: Difference
    free_step: int | None = None  # the checkpoint sparsity was free up to (the sparsest ★ before the cliff)
    step: int | None = None  # the sparsest checkpoint, past the cliff

    def sentence(self) -> str:
        """The lesson in one line, numbers and interval included."""
        free = (
            f"sparsity was free up to {100 * self.free_up_to:.1f} % (★: within 2 pt of dense by the paired test)"
            if self.free_up_to is not None
            else "no pruned checkpoint stayed within 2 pt of dense"
        )
        eps = f"{self.eps:g}" if self.norm != "Linf" else f"{self.eps:g} (≈{255 * self.eps:.1f}/255)"
        return (
            f"At ε = {eps}, {free}; at {100 * self.sparsity:.1f} % robust accuracy fell from "
            f"{100 * self.dense_acc:.1f} % to {100 * self.acc:.1f} %, {100 * self.drop.diff:+.1f} pt "
            f"[{100 * self.drop.low:+.1f}, {100 * self.drop.high:+.1f}] on the same images: a real drop."
        )


def cliff(frame: pd.DataFrame, margin: float = SWEET_SPOT_MARGIN) -> Cliff | None:
    """One run × attack's cliff: at the ε > 0 where its sparsest checkpoint fell furthest below the dense
    one by a real difference (the paired 95 % interval wholly below zero), preferring an ε with a sweet
    spot before it, how sparse the model got for free first: the sparsest ★ (within `margin` of dense
    by the same non-inferiority test as `sweet_spots`) before the first checkpoint shown to lose more
    than the margin. None without a real drop, or without per-image counts."""
    keep = [c for c in ("run_id", "attack", "eps", "norm", "step", "sparsity", "acc", "n", "correct") if c in frame]
    attacked = frame[frame["eps"] > 0][keep]
    if "n" not in attacked or attacked.empty or attacked["n"].isna().any():
        return None
    found = []
    for (_, attack, eps), curve in attacked.groupby(["run_id", "attack", "eps"], sort=True):
        curve = curve.sort_values("step")
        dense = curve[curve["step"] == 0].add_suffix("_dense").iloc[:1]
        pruned = curve[curve["step"] > 0]
        if dense.empty or pruned.empty:
            continue
        rows = [pd.concat([row, dense.iloc[0]]) for _, row in pruned.iterrows()]
        drop = versus_dense(rows[-1])
        if drop.high >= 0:
            continue
        free, free_step = None, None
        for row in rows:  # the sparsest ★ before the first checkpoint that fell more than the margin
            gap = versus_dense(row)
            verdict = decide(gap.low, gap.high, margin)
            if verdict == Decision.FAILS:
                break
            if verdict == Decision.HOLDS:
                free, free_step = float(row["sparsity"]), int(row["step"])
        last = rows[-1]
        found.append(
            Cliff(
                attack,
                float(eps),
                str(last.get("norm", "")),
                free,
                float(last["sparsity"]),
                float(last["acc_dense"]),
                float(last["acc"]),
                drop,
                free_step,
                int(last["step"]),
            )  # fmt: skip
        )
    with_spot = [c for c in found if c.free_up_to is not None] or found  # the lesson needs its ★ region
    return min(with_spot, key=lambda c: c.drop.diff) if with_spot else None


def versus_dense(row: pd.Series) -> Difference:
    """A pruned point's accuracy − the dense point's: paired where both kept flags on the same images (an
    anytime-valid interval where images were added to decide it), else as independent accuracies."""
    n, n_dense = int(row["n"]), int(row["n_dense"])
    flags, dense_flags = row.get("correct"), row.get("correct_dense")
    own = row.get("n_own")
    own = int(own) if own is not None and pd.notna(own) else (n if n == n_dense else None)
    if isinstance(flags, bytes) and isinstance(dense_flags, bytes) and own is not None:
        # the same images as far as both go: the run's own, then any chunks added to decide (sequential.py)
        return paired_grown(unpack_flags(flags, n), unpack_flags(dense_flags, n_dense), own)
    return unpaired(successes(row["acc"], n), n, successes(row["acc_dense"], n_dense), n_dense)


def adversarial_share(clean_acc: float, robust_acc: float, share: np.ndarray) -> np.ndarray:
    """Accuracy when a share r of inputs is adversarial: (1 − r) · clean + r · robust (Merkle et al.)."""
    share = np.asarray(share, float)
    return (1 - share) * clean_acc + share * robust_acc


@dataclass(frozen=True)
class Warning:
    """One hygiene problem, said so that a reviewer knows what to distrust."""

    kind: str
    run_id: str
    step: int
    attack: str
    message: str


def hygiene(
    frame: pd.DataFrame, unbounded: tuple[str, ...] = (), near_zero: float = 0.05, chance: float = 0.1
) -> list[Warning]:
    """Warnings: a non-finite accuracy (an error), accuracy rising with ε, a weaker attack beating a stronger
    one, a gradient-free attack beating a gradient one (gradient masking), an unbounded attack not near 0 %,
    and a minimal-distance attack below PGD on a checkpoint at chance (`chance` = 1 / classes)."""
    found: list[Warning] = _non_finite(frame)
    frame = frame[np.isfinite(frame["acc"].astype(float))]
    for (run_id, step, attack), curve in frame.groupby(["run_id", "step", "attack"], sort=True):
        curve = curve.sort_values("eps")
        rises = np.diff(curve["acc"].to_numpy()) > 1e-9
        if rises.any():
            at = curve["eps"].to_numpy()[1:][rises][0]
            found.append(
                Warning(
                    "rises_with_eps",
                    run_id,
                    int(step),
                    attack,
                    f"{attack} robust accuracy rises with ε (at ε = {at:g}): gradient masking or a broken attack",
                )
            )
        if attack in unbounded and curve["acc"].iloc[-1] > near_zero:
            found.append(
                Warning(
                    "unbounded_not_zero",
                    run_id,
                    int(step),
                    attack,
                    f"{attack} is unbounded but leaves {curve['acc'].iloc[-1]:.1%} accuracy at its largest ε",
                )
            )
    found += _weaker_beats_stronger(frame)
    found += _minimal_below_pgd_at_chance(frame, chance)
    found += _certified_above_empirical(frame)
    return found


def certified_caption(frame: pd.DataFrame) -> str | None:
    """For one run's certificate curve (rows carrying `abstained`): what its axis and its ε = 0 point
    mean and how many images it abstained on at the last checkpoint; None for an attack's curve."""
    if "abstained" not in frame or frame["abstained"].isna().all():
        return None
    last = frame[frame["step"] == frame["step"].max()].iloc[0]
    return (
        "Certified accuracy: ε is the L2 radius; the ε = 0 point is the smoothed classifier's clean accuracy. "
        f"At the last checkpoint it abstained on {int(last['abstained'])} of {int(last['n'])} images (counted wrong)."
    )


def certified_gap(row: pd.Series) -> Difference:
    """Certified − empirical accuracy at one radius: paired (Tango's interval) where both rows kept their
    per-image flags, else two independent accuracies."""
    flags = [row.get(f"correct_{side}") for side in ("certified", "empirical")]
    n_cert, n_emp = (int(n) if pd.notna(n := row.get(f"n_{side}")) else 0 for side in ("certified", "empirical"))
    if all(f is not None for f in flags) and n_cert == n_emp > 0:
        return paired(unpack_flags(flags[0], n_cert), unpack_flags(flags[1], n_emp))
    n = max(n_cert, 1)
    return unpaired(
        successes(row["acc_certified"], n), n, successes(row["acc_empirical"], max(n_emp, 1)), max(n_emp, 1)
    )


def _certified_above_empirical(frame: pd.DataFrame) -> list[Warning]:
    found = []
    keep = [c for c in ("run_id", "step", "eps", "acc", "n", "correct") if c in frame]
    for certificate, attack in CERTIFIED_VS_EMPIRICAL:
        a, b = frame[frame["attack"] == certificate][keep], frame[frame["attack"] == attack][keep]
        if a.empty or b.empty:
            continue
        both = a.merge(b, on=["run_id", "step", "eps"], suffixes=("_certified", "_empirical"))
        for _, row in both.iterrows():
            gap = certified_gap(row)
            if gap.low > 0:
                found.append(
                    Warning(
                        "certified_above_empirical",
                        row["run_id"],
                        int(row["step"]),
                        certificate,
                        f"{certificate} certifies {row['acc_certified']:.1%} at L2 radius {row['eps']:g} but {attack} "
                        f"leaves only {row['acc_empirical']:.1%} (+{gap.diff:.1%}, 95 % interval {gap.low:+.1%} to "
                        f"{gap.high:+.1%}): a certificate is a lower bound, so {attack} is weak or masked here "
                        "— raise its steps or noise samples",
                    )
                )
    return found


def _non_finite(frame: pd.DataFrame) -> list[Warning]:
    bad = frame[~np.isfinite(frame["acc"].astype(float))]
    return [
        Warning(
            "non_finite",
            row.run_id,
            int(row.step),
            row.attack,
            f"error: {row.attack} accuracy at ε = {row.eps:g} is {row.acc}, not a number; re-run this checkpoint",
        )
        for row in bad.itertuples()
    ]


def _minimal_below_pgd_at_chance(frame: pd.DataFrame, chance: float, margin: float = 0.05) -> list[Warning]:
    found = []
    for minimal, pgd in MINIMAL_VS_PGD:
        a = frame[frame["attack"] == minimal][["run_id", "step", "eps", "acc", "clean_acc"]]
        b = frame[frame["attack"] == pgd][["run_id", "step", "eps", "acc"]]
        both = a.merge(b, on=["run_id", "step", "eps"], suffixes=("_minimal", "_pgd"))
        bad = both[(both["clean_acc"] <= chance + margin) & (both["acc_minimal"] < both["acc_pgd"] - HYGIENE_TOLERANCE)]
        for row in bad.itertuples():
            found.append(
                Warning(
                    "minimal_below_pgd_at_chance",
                    row.run_id,
                    int(row.step),
                    minimal,
                    f"{minimal} ({row.acc_minimal:.1%}) is below {pgd} ({row.acc_pgd:.1%}) at ε = {row.eps:g} "
                    f"on a checkpoint at chance (clean {row.clean_acc:.1%}): the minimal attack is broken "
                    "here (e.g. a zero gradient), not stronger",
                )
            )
    return found


def _weaker_beats_stronger(frame: pd.DataFrame) -> list[Warning]:
    found = []
    for weak, strong, kind, meaning in SHOULD_NOT_BEAT:
        a = frame[frame["attack"] == weak][["run_id", "step", "eps", "acc"]]
        b = frame[frame["attack"] == strong][["run_id", "step", "eps", "acc"]]
        both = a.merge(b, on=["run_id", "step", "eps"], suffixes=("_weak", "_strong"))
        bad = both[(both["eps"] > 0) & (both["acc_weak"] < both["acc_strong"] - HYGIENE_TOLERANCE)]
        for row in bad.itertuples():
            found.append(
                Warning(
                    kind,
                    row.run_id,
                    int(row.step),
                    weak,
                    f"{weak} ({row.acc_weak:.1%}) beats {strong} ({row.acc_strong:.1%}) at ε = {row.eps:g}: "
                    + meaning.format(strong=strong),
                )
            )
    return found


def input_range_warning(x_min: float, x_max: float) -> str | None:
    """A message when evaluation inputs leave [0, 1] (normalisation belongs inside the model)."""
    if x_min < -1e-6 or x_max > 1 + 1e-6:
        return f"evaluation inputs span [{x_min:.3g}, {x_max:.3g}], outside [0, 1]: ε would not mean what it says"
    return None


def difference_grid(first: pd.DataFrame, second: pd.DataFrame, points: int = 21) -> pd.DataFrame:
    """Robust accuracy of `second` minus `first` (fractions) over sparsity × ε, one attack each.

    Runs with different schedules checkpoint at different sparsities, so each run's accuracy at
    every ε is interpolated linearly over sparsity onto a common grid spanning only the range both
    runs cover; ε values are those both runs evaluated. Rows: sparsity; columns: ε.
    """
    shared = _shared_grid(first, second, points)
    if shared is None:
        return pd.DataFrame()
    grid, eps_values = shared
    diff = {eps: _along(second, grid, eps) - _along(first, grid, eps) for eps in eps_values}
    return pd.DataFrame(diff, index=pd.Index(grid, name="sparsity"))


def _shared_grid(first: pd.DataFrame, second: pd.DataFrame, points: int) -> tuple[np.ndarray, list[float]] | None:
    """The sparsity grid both runs cover and the ε values both evaluated (None when they share none)."""
    eps_values = sorted(set(first["eps"]) & set(second["eps"]))
    low = max(first["sparsity"].min(), second["sparsity"].min())
    high = min(first["sparsity"].max(), second["sparsity"].max())
    if not eps_values or high < low:
        return None
    return (np.linspace(low, high, points) if high > low else np.array([low])), eps_values


def _along(frame: pd.DataFrame, grid: np.ndarray, eps: float) -> np.ndarray:
    curve = frame[frame["eps"] == eps].groupby("sparsity")["acc"].mean().sort_index()
    return np.interp(grid, curve.index.to_numpy(), curve.to_numpy())


def difference_noise(first: pd.DataFrame, second: pd.DataFrame, points: int = 21) -> pd.DataFrame:
    """For each cell of `difference_grid`: True where the difference is not distinguishable from zero.

    Each run's interpolated accuracy is read as measured on its n evaluation images, and the two are
    compared as independent accuracies (Newcombe's 95 % interval): conservative where the runs share
    their images. Empty when either frame lacks n (results kept before n was stored).
    """
    shared = _shared_grid(first, second, points)
    if shared is None or "n" not in first or "n" not in second or first["n"].isna().any() or second["n"].isna().any():
        return pd.DataFrame()
    grid, eps_values = shared
    n1, n2 = int(first["n"].min()), int(second["n"].min())

    def noise(a: float, b: float) -> bool:
        interval = unpaired(successes(b, n2), n2, successes(a, n1), n1)
        return bool(interval.low <= 0 <= interval.high)

    cells = {
        eps: [noise(a, b) for a, b in zip(_along(first, grid, eps), _along(second, grid, eps))] for eps in eps_values
    }
    return pd.DataFrame(cells, index=pd.Index(grid, name="sparsity"))


def pareto_front(cost: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Boolean mask of the points no other point beats (lower or equal cost and higher value, one strictly)."""
    cost, value = np.asarray(cost, float), np.asarray(value, float)
    front = np.ones(len(cost), dtype=bool)
    for i in range(len(cost)):
        better = (cost <= cost[i]) & (value >= value[i]) & ((cost < cost[i]) | (value > value[i]))
        front[i] = not better.any()
    return front


def over_seeds(frame: pd.DataFrame, families: dict[str, str]) -> pd.DataFrame:
    """Results of replicate runs (same spec but the seed) combined per family × step × attack × ε: the
    mean accuracy over seeds, its spread (lowest and highest seed) and how many seeds stand behind it."""
    tagged = frame.assign(family=frame["run_id"].map(families))
    return tagged.groupby(["family", "step", "attack", "eps"], as_index=False).agg(
        sparsity=("sparsity", "mean"),
        clean_acc=("clean_acc", "mean"),
        acc=("acc", "mean"),
        acc_min=("acc", "min"),
        acc_max=("acc", "max"),
        seeds=("run_id", "nunique"),
    )
