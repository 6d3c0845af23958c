"""Evaluation grown after a run: further chunks of the test split, stored beside the run's own results.

A run scores its `eval.n_samples` images. To decide a comparison its images cannot, the engine
(engine/jobs/decide.py) evaluates the next images of the same seeded order of the test split, one
chunk at a time, for one attack's whole ε grid on the checkpoints involved; each chunk commits in one
transaction, so a killed job loses at most the chunk in flight and resumes with the next. Readers
see a result row grown by its chunks: n, accuracy and per-image flags cover every image so far, and
`n_own` the run's own images (engine/report/sequential.py reads how they arrived from the two).
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

from engine.report.flags import pack_flags, successes, unpack_flags

Key = tuple[str, int, str, float]


def put_chunk(db: sqlite3.Connection, run_id: str, step: int, attack: str, chunk: int, points: Iterable[Any]) -> None:
    """Write one chunk's points (eps, n, correct flags as bits, seconds) of a checkpoint's attack curve;
    a chunk already written stands (the evaluation is deterministic). Call inside a transaction."""
    now = time.time()
    db.executemany(
        "INSERT OR IGNORE INTO extended (run_id, step, attack, eps, chunk, n, correct, seconds, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(run_id, step, attack, float(p.eps), chunk, p.n, p.correct, p.seconds, now) for p in points],
    )


def chunks_done(db: sqlite3.Connection, run_id: str, step: int, attack: str) -> int:
    """How many chunks of this checkpoint's attack are stored (0: only the run's own images)."""
    row = db.execute(
        "SELECT max(chunk) FROM extended WHERE run_id = ? AND step = ? AND attack = ?", (run_id, step, attack)
    ).fetchone()
    return int(row[0] or 0)


def chunk_rows(db: sqlite3.Connection, run_ids: list[str]) -> dict[Key, list[dict[str, Any]]]:
    """Stored chunks of the given runs, by (run_id, step, attack, eps), in chunk order."""
    marks = ",".join("?" * len(run_ids))
    rows = db.execute(
        f"SELECT run_id, step, attack, eps, chunk, n, correct FROM extended WHERE run_id IN ({marks}) "
        "ORDER BY run_id, step, attack, eps, chunk",
        run_ids,
    ).fetchall()
    found: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        found[(row["run_id"], row["step"], row["attack"], row["eps"])].append(dict(row))
    return found


def grown(row: dict[str, Any], chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """A result row with its chunks appended: n, acc and flags over every image, `n_own` the run's own
    images (clean_acc's). Rows without per-image flags cannot grow and come back as they were."""
    own = row.get("n")
    if own is None or row.get("correct") is None or not chunks:
        return {**row, "n_own": own}
    contiguous = [c for i, c in enumerate(chunks, start=1) if c["chunk"] == i]  # a gap never happens; be safe
    flags = [unpack_flags(row["correct"], own)] + [unpack_flags(c["correct"], c["n"]) for c in contiguous]
    n = own + sum(c["n"] for c in contiguous)
    right = successes(row["acc"], own) + sum(int(f.sum()) for f in flags[1:])
    return {
        **row,
        "n": n,
        "acc": right / n,
        "correct": pack_flags(np.concatenate(flags)),
        "n_own": own,
    }
