"""Tables the pages show, computed from the store's frames (pure pandas)."""

from __future__ import annotations

import re

import pandas as pd

from engine.report.stats import Difference
from engine.report.summaries import auc_table, sweet_spots
from engine.status import Decision

RUN_PREFIX = re.compile(r"[0-9a-f]{6,64}")
"""A run id or a unique prefix of one, as links carry them."""

COST_COLUMNS = [
    "compression_ratio",
    "effective_compression",
    "theoretical_speedup",
    "size_bytes",
    "latency_ms_b1",
    "latency_ms_b128",
    "latency vs dense (b128)",
    "shrunk_params",
    "shrunk_latency_ms_b1",
    "shrunk_latency_ms_b128",
    "shrunk speed-up (b128)",
    "onnx_dense_latency_ms_b1",
    "onnx_shrunk_latency_ms_b1",
    "onnx_dense_latency_ms_b128",
    "onnx_shrunk_latency_ms_b128",
    "onnx shrunk speed-up (b1)",
    "onnx shrunk speed-up (b128)",
    "latency note",
]

UNRELIABLE_SPREAD = 0.25
"""A latency whose typical (median) round is more than this share above its fastest is unreliable:
shown as such (its spread), never as a number."""

TIMED = [(prefix, batch) for prefix in ("", "shrunk_", "dense_", "onnx_dense_", "onnx_shrunk_") for batch in (1, 128)]


def reliable_latencies(efficiency: pd.DataFrame, limit: float = UNRELIABLE_SPREAD) -> pd.DataFrame:
    """Efficiency rows with every latency whose spread exceeds `limit` blanked (NaN), a `latency note`
    saying which were blanked and why, and two ratios from the interleaved measurement where both sides
    are reliable: the checkpoint's latency over its dense reference's (masked sparsity: ≈ 1, the same
    computation) and the dense over the physically smaller model's (structured pruning's real speed-up),
    eager and in onnxruntime."""
    frame = efficiency.copy()
    notes: list[list[str]] = [[] for _ in range(len(frame))]
    for prefix, batch in TIMED:
        column, spread = f"{prefix}latency_ms_b{batch}", f"{prefix}latency_spread_b{batch}"
        if column not in frame or spread not in frame:
            continue
        noisy = frame[spread].to_numpy(dtype=float) > limit
        for i in noisy.nonzero()[0]:
            above = 100 * frame[spread].iloc[i]
            notes[i].append(f"{prefix or 'checkpoint '}b{batch} unreliable (rounds {above:.0f} % above the fastest)")
        frame[column] = frame[column].where(~noisy)
    frame["latency note"] = ["; ".join(n) for n in notes]
    if "dense_latency_ms_b128" in frame:
        frame["latency vs dense (b128)"] = frame["latency_ms_b128"] / frame["dense_latency_ms_b128"]
        if "shrunk_latency_ms_b128" in frame:
            frame["shrunk speed-up (b128)"] = frame["dense_latency_ms_b128"] / frame["shrunk_latency_ms_b128"]
    for batch in (1, 128):
        dense, small = f"onnx_dense_latency_ms_b{batch}", f"onnx_shrunk_latency_ms_b{batch}"
        if dense in frame and small in frame:
            frame[f"onnx shrunk speed-up (b{batch})"] = frame[dense] / frame[small]
    return frame


def surface_table(robust: pd.DataFrame, efficiency: pd.DataFrame) -> pd.DataFrame:
    """Per checkpoint of one run and attack: AUC over ε, sweet-spot count, and its measured cost."""
    spots = sweet_spots(robust)
    table = auc_table(robust).drop(columns=["run_id", "attack", "norm"])
    held = spots[spots["verdict"] == Decision.HOLDS]
    table["sweet spots (ε)"] = [int((held["step"] == k).sum()) for k in table["step"]]
    table = with_clean_interval(table, robust)
    if efficiency.empty:
        return table
    efficiency = reliable_latencies(efficiency)
    cost = efficiency[["step", *efficiency.columns.intersection(COST_COLUMNS)]].dropna(axis=1, how="all")
    if "latency note" in cost and not cost["latency note"].astype(bool).any():
        cost = cost.drop(columns="latency note")  # every latency reliable: nothing to say
    return table.merge(cost, on="step", how="left")


def with_clean_interval(table: pd.DataFrame, robust: pd.DataFrame) -> pd.DataFrame:
    """A per-step (and per-run) table with the clean accuracy's 95 % interval beside it, as text."""
    if "clean_low" not in robust:
        return table
    keys = ["run_id", "step"] if "run_id" in table else ["step"]
    bounds = robust.drop_duplicates(keys)[[*keys, "clean_low", "clean_high"]]
    text = [interval_text(low, high) for low, high in zip(bounds["clean_low"], bounds["clean_high"])]
    return table.merge(bounds[keys].assign(**{"clean 95 % interval": text}), on=keys, how="left")


def interval_text(low: float, high: float) -> str:
    """'88.1–91.2 %', or '' where the bounds are unknown."""
    return "" if pd.isna(low) or pd.isna(high) else f"{100 * low:.1f}–{100 * high:.1f} %"


def difference_sentence(difference: Difference, what: str) -> str:
    """One sentence on a compared pair: the gap, its interval and p, how it was tested, and what it means."""
    how = (
        f"paired over the same {difference.n:,} images, grown until decided (an anytime-valid confidence "
        f"sequence, valid however often it was read; exact McNemar p on the {difference.discordant} where "
        "exactly one is right)"
        if difference.sequential
        else f"paired over the same {difference.n:,} images (Tango's score interval; exact McNemar p on the "
        f"{difference.discordant} where exactly one is right)"
        if difference.paired
        else f"as independent accuracies on ≥ {difference.n:,} images each (Newcombe interval, Fisher's exact test)"
    )
    excludes_zero = difference.low > 0 or difference.high < 0
    meaning = (
        "a real difference"
        if difference.significant() and excludes_zero
        else "borderline: the interval and the exact test disagree, more images would settle it"
        if difference.significant() or excludes_zero
        else "not distinguishable from zero"
    )
    return (
        f"{what}: {100 * difference.diff:+.1f} pt, 95 % interval [{100 * difference.low:+.1f}, "
        f"{100 * difference.high:+.1f}] pt, p = {difference.p:.3g}, {how}: {meaning}."
    )


def sharing_a_base(runs: pd.DataFrame, key: str = "base_id") -> pd.Series:
    """For each run of a runs frame: does another run share its trained base (`key` = "base_id"), or
    its base setup up to the seed (`key` = "base_family": replicates included), so that they compare?"""
    return runs.groupby(key)["run_id"].transform("count") >= 2


def match_runs(raw: str, run_ids: list[str]) -> tuple[list[str], int]:
    """The runs a link names (comma-separated id prefixes of at least 6 hex digits) and how many it
    named that match no run, or more than one; nothing else of the text is used."""
    chosen: list[str] = []
    dropped = 0
    for prefix in raw[:2000].split(","):
        matches = [r for r in run_ids if RUN_PREFIX.fullmatch(prefix) and r.startswith(prefix)]
        if len(matches) == 1 and matches[0] not in chosen:
            chosen.append(matches[0])
        else:
            dropped += 1
    return chosen, dropped
