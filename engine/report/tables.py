"""Tables the pages show, computed from the store's frames (pure pandas)."""

from __future__ import annotations

import re

import pandas as pd

from engine.report.summaries import auc_table, sweet_spots

RUN_PREFIX = re.compile(r"[0-9a-f]{6,64}")
"""A run id or a unique prefix of one, as links carry them."""

COST_COLUMNS = [
    "compression_ratio",
    "effective_compression",
    "theoretical_speedup",
    "size_bytes",
    "latency_ms_b1",
    "latency_ms_b128",
    "shrunk_params",
    "shrunk_latency_ms_b1",
    "shrunk_latency_ms_b128",
]


def surface_table(robust: pd.DataFrame, efficiency: pd.DataFrame) -> pd.DataFrame:
    """Per checkpoint of one run and attack: AUC over ε, sweet-spot count, and its measured cost."""
    spots = sweet_spots(robust)
    table = auc_table(robust).drop(columns=["run_id", "attack", "norm"])
    table["sweet spots (ε)"] = [int((spots["step"] == k).sum()) for k in table["step"]]
    if efficiency.empty:
        return table
    cost = efficiency[["step", *COST_COLUMNS]].dropna(axis=1, how="all")
    return table.merge(cost, on="step", how="left")


def sharing_a_base(runs: pd.DataFrame) -> pd.Series:
    """For each run of a runs frame: does another run share its trained base (so they compare)?"""
    return runs.groupby("base_id")["run_id"].transform("count") >= 2


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
