"""Salvage from a damaged database what its checkpoints and result digests still prove.

`doctor` moves a damaged `aer.sqlite` aside; this module then reads, from a private copy of it, every
row SQLite can still reach (a scan that meets a damaged page skips ahead by rowid instead of
stopping), and writes into the fresh store only what verifies:

- a base whose checkpoint still has its recorded SHA-256;
- each run's steps from step 0 on, as long as both checkpoints match their hashes and the step's
  results (sparsity, accuracies, per-image flags) recompute to the step's result digest; the first
  step that fails ends the run's walk there (later steps build on it);
- the per-step tables the digest does not cover (layers, warnings, efficiency, budgets) as read, a row
  with a non-finite number (a damaged page can read as anything) left out;
- spec aliases and lineage of restored runs. Jobs and workers are not restored: a lease means
  nothing after a repair, and a run that lost steps is marked failed, so running it again resumes it.
"""

from __future__ import annotations

import math
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.store.checkpoints import intact_in
from engine.store.db import Store, result_digest

DIGESTED = ("robust", "transfer")
EXTRAS = ("layers", "warnings", "efficiency", "budgets")
TABLES = ("bases", "runs", "steps", *DIGESTED, *EXTRAS, "spec_aliases", "lineage", "jobs")


@dataclass
class Salvaged:
    """What came back from a damaged database, and what did not."""

    runs: list[str] = field(default_factory=list)  # restored run ids
    proven_steps: int = 0
    unproven: dict[str, int] = field(default_factory=dict)  # run id → first step that could not be proven
    undigested_steps: int = 0  # steps written before digests were kept: restored as read
    partial_tables: list[str] = field(default_factory=list)  # tables a damaged page cut short
    unfinished_jobs: int = 0

    def lines(self) -> list[str]:
        """The salvage's part of the doctor's report."""
        out = [
            f"salvaged {len(self.runs)} runs from the damaged database "
            f"({self.proven_steps} steps whose checkpoints and result digests verify)"
        ]
        out += [
            f"run {run[:12]}: steps {step}+ could not be proven; run marked failed (run it again to recompute them)"
            for run, step in self.unproven.items()
        ]
        if self.undigested_steps:
            out.append(f"{self.undigested_steps} steps predate result digests: restored as read, not proven")
        if self.partial_tables:
            out.append(f"only partly readable: {', '.join(self.partial_tables)} (rows on damaged pages are lost)")
        if self.unfinished_jobs:
            out.append(f"{self.unfinished_jobs} queued or running jobs not restored: submit them again")
        return out


@contextmanager
def private_copy(database: Path) -> Iterator[sqlite3.Connection | None]:
    """A connection to a copy of the damaged database (and its write-ahead log, when kept), or None
    when SQLite cannot open it at all. The copy is what SQLite may write while recovering the log."""
    with tempfile.TemporaryDirectory(prefix="aer-salvage-") as folder:
        copy = Path(folder) / "salvage.sqlite"
        shutil.copyfile(database, copy)
        wal = database.with_name(database.name.replace("aer.sqlite", "aer.sqlite-wal", 1))
        if wal.exists():
            shutil.copyfile(wal, Path(folder) / "salvage.sqlite-wal")
        try:
            connection = sqlite3.connect(copy, isolation_level=None)
            connection.row_factory = sqlite3.Row
            names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError:
            yield None
            return
        try:
            yield connection if "runs" in names else None
        finally:
            connection.close()


def scan(db: sqlite3.Connection, table: str) -> tuple[list[dict[str, Any]], bool]:
    """Every row of `table` (a constant name) SQLite can read, and whether the whole table was read.

    A damaged page ends a scan; the next one starts past the last row read, at gaps that double, so a
    damaged region costs a few dozen probes at most and the readable rows after it still come back."""
    try:
        top = db.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        if "no such table" in str(exc):
            return [], True  # a table an older store never had
        top = 2**62  # the last page is damaged: probe up to SQLite's largest rowids
    rows: list[dict[str, Any]] = []
    after, gap, complete = 0, 1, True
    while top is not None:
        try:
            for row in db.execute(f"SELECT rowid AS _rowid, * FROM {table} WHERE rowid > ? ORDER BY rowid", (after,)):
                rows.append(dict(row))
                after, gap = row["_rowid"], 1
            break
        except sqlite3.DatabaseError:
            complete = False
            if after >= top:
                break
            after, gap = after + gap, gap * 2
    return [{k: v for k, v in row.items() if k != "_rowid"} for row in rows], complete


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def _put(db: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    """Insert a salvaged row, keeping the columns the fresh table has (names read from its schema)."""
    names = [c for c in _columns(db, table) if c in row]
    marks = ", ".join(f":{c}" for c in names)
    db.execute(f"INSERT OR IGNORE INTO {table} ({', '.join(names)}) VALUES ({marks})", row)


def _by_step(rows: list[dict[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    grouped: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault((row["run_id"], row["step"]), []).append(row)
    return grouped


def _restore_step(db: sqlite3.Connection, root: Path, step: dict, tables: dict[str, dict]) -> str:
    """Write one step and its digested rows; 'proven', 'undigested' or 'unproven' (then nothing stays)."""
    if not (
        intact_in(root, step["checkpoint"], step["sha256"])
        and intact_in(root, step["mask_checkpoint"], step["mask_sha256"])
    ):
        return "unproven"
    key = (step["run_id"], step["step"])
    _put(db, "steps", step)
    for table in DIGESTED:
        for row in tables[table].get(key, []):
            _put(db, table, row)
    if step.get("result_sha256") is None:
        return "undigested"
    if result_digest(db, *key) != step["result_sha256"]:
        db.execute("DELETE FROM steps WHERE run_id = ? AND step = ?", key)  # cascades to its results
        return "unproven"
    return "proven"


def _restore_run(store: Store, run: dict, steps: list[dict], tables: dict[str, dict], found: Salvaged) -> None:
    """Restore one run and the longest prefix of its walk that verifies, in one transaction."""
    run_id, kept = run["run_id"], 0
    with store.atomic() as db:
        _put(db, "runs", {**run, "owner": None})
        for expected, step in enumerate(sorted(steps, key=lambda s: s["step"])):
            verdict = _restore_step(db, store.root, step, tables) if step["step"] == expected else "unproven"
            if verdict == "unproven":
                break
            kept += 1
            found.proven_steps += verdict == "proven"
            found.undigested_steps += verdict == "undigested"
            for table in EXTRAS:  # not covered by the digest: kept only when every number is finite
                for row in tables[table].get((run_id, step["step"]), []):
                    if all(math.isfinite(v) for v in row.values() if isinstance(v, float)):
                        _put(db, table, row)
        if kept < run["n_steps"] or run["status"] != "done":
            db.execute(
                "UPDATE runs SET status = 'failed', error = ? WHERE run_id = ?",
                (f"repaired by doctor: steps {kept}+ lost with the damaged database; run it again", run_id),
            )
            found.unproven[run_id] = kept
    found.runs.append(run_id)


def salvage(database: Path, store: Store) -> Salvaged:
    """Copy into `store` (fresh) what the damaged `database` still proves; what came back."""
    found = Salvaged()
    with private_copy(database) as damaged:
        if damaged is None:
            return found
        read = {table: scan(damaged, table) for table in TABLES}
    found.partial_tables = [table for table, (_, complete) in read.items() if not complete]
    rows = {table: rows for table, (rows, _) in read.items()}
    with store.atomic() as db:
        for base in rows["bases"]:
            if intact_in(store.root, base["checkpoint"], base["sha256"]):
                _put(db, "bases", base)
    tables = {table: _by_step(rows[table]) for table in (*DIGESTED, *EXTRAS)}
    steps = _by_step(rows["steps"])
    for run in rows["runs"]:
        mine = [s for (run_id, _), group in steps.items() if run_id == run["run_id"] for s in group]
        _restore_run(store, run, mine, tables, found)
    with store.atomic() as db:
        for table in ("spec_aliases", "lineage"):
            for row in rows[table]:
                if row["run_id"] in found.runs:
                    _put(db, table, row)
    found.unfinished_jobs = sum(job["status"] in ("queued", "running") for job in rows["jobs"])
    return found
