"""`python -m engine doctor`: make a damaged cache usable again and say what was lost.

A database that fails SQLite's quick_check (truncated, header flipped, replaced by text, a page
overwritten) is moved aside, never deleted, and a fresh one takes its place; what the damaged one
still proves is copied back (engine/store/salvage.py: rows whose checkpoints and result digests
verify), and run folders with no restored run are listed as lost (a run recomputes from its spec).
Then every recorded checkpoint is re-hashed: a damaged or missing base is forgotten (the next run
that needs it trains it again), and a run whose step checkpoint is damaged loses that step and
every later one and is marked failed with the reason, so the next `run` recomputes them instead of
answering "(cached)".
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import StoreError
from engine.store.checkpoints import intact_in, remove_leftovers
from engine.store.db import Store
from engine.store.salvage import Salvaged, salvage


@dataclass
class Report:
    """What the doctor found and did, one line per finding."""

    moved_to: str | None = None
    salvaged: Salvaged | None = None
    lost_runs: list[str] = field(default_factory=list)
    forgotten_bases: list[str] = field(default_factory=list)
    damaged_steps: dict[str, int] = field(default_factory=dict)  # run id → first damaged step
    edited_steps: dict[str, int] = field(default_factory=dict)  # run id → first step whose results were edited
    tampered_runs: list[str] = field(default_factory=list)  # runs whose stored spec was edited: forgotten
    leftovers: int = 0  # temporary files of checkpoint writes a kill interrupted, removed
    checked: int = 0

    def lines(self) -> list[str]:
        """The report for people."""
        out = []
        if self.moved_to:
            out.append(f"the database was damaged: moved aside to {self.moved_to}; a fresh one replaces it")
            out += self.salvaged.lines() if self.salvaged else []
            out.append(f"lost: the results of {len(self.lost_runs)} runs (their specs recompute them when run again)")
        out += [
            f"base {base[:12]}: checkpoint damaged or missing; forgotten (trained again when needed)"
            for base in self.forgotten_bases
        ]
        out += [
            f"run {run[:12]}: checkpoint of step {step} damaged or missing; steps {step}+ forgotten, run marked failed"
            for run, step in self.damaged_steps.items()
        ]
        out += [
            f"run {run[:12]}: results of step {step} edited after they were written; steps {step}+ forgotten, "
            "run marked failed"
            for run, step in self.edited_steps.items()
        ]
        out += [
            f"run {run[:12]}: its stored spec was edited after it was written (it no longer hashes to its id); "
            "forgotten, its results unprovable"
            for run in self.tampered_runs
        ]
        if self.leftovers:
            out.append(f"removed {self.leftovers} temporary file(s) of checkpoint writes that a kill interrupted")
        out.append(f"{self.checked} checkpoints and their steps' results verified; the store is usable")
        return out


def move_aside(root: Path) -> str:
    """Rename the database and its WAL files to `*.damaged-<time>`; the new database's name."""
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"  # unique even for two doctors in one second
    for suffix in ("", "-wal", "-shm"):
        path = root / f"aer.sqlite{suffix}"
        if path.exists():
            path.rename(root / f"aer.sqlite{suffix}.damaged-{stamp}")
    return f"aer.sqlite.damaged-{stamp}"


def verify_checkpoints(store: Store, report: Report) -> None:
    """Re-hash every base and step checkpoint and every step's results; forget what no longer matches."""
    for base in store.db.execute("SELECT base_id, checkpoint, sha256 FROM bases").fetchall():
        report.checked += 1
        if not intact_in(store.root, base["checkpoint"], base["sha256"]):
            with store.atomic() as db:
                db.execute("DELETE FROM bases WHERE base_id = ?", (base["base_id"],))
            report.forgotten_bases.append(base["base_id"])
    for run in store.runs():
        edited = store.edited_steps(run["run_id"])
        if edited:
            store.forget_steps(run["run_id"], edited[0])
            store.finish_run(run["run_id"], f"results of step {edited[0]} edited; run it again to recompute")
            report.edited_steps[run["run_id"]] = edited[0]
        for step in store.steps(run["run_id"]):
            report.checked += 2
            if not (
                intact_in(store.root, step["checkpoint"], step["sha256"])
                and intact_in(store.root, step["mask_checkpoint"], step["mask_sha256"])
            ):
                store.forget_steps(run["run_id"], step["step"])
                store.finish_run(run["run_id"], f"checkpoint of step {step['step']} damaged; run it again to recompute")
                report.damaged_steps[run["run_id"]] = step["step"]
                break


def doctor(root: Path) -> Report:
    """Check the cache at `root`, repair what can be repaired, and report (engine/store/doctor.py).
    One doctor at a time: a second waits on the cache's lock, then finds the store the first left."""
    with repair_lock(root):
        return _examine(root)


@contextmanager
def repair_lock(root: Path) -> Iterator[None]:
    """An exclusive lock on the cache's `repair.lock` for the duration (doctor, migrations)."""
    Path(root).mkdir(parents=True, exist_ok=True)
    with open(Path(root) / "repair.lock", "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _examine(root: Path) -> Report:
    report = Report()
    try:
        store = Store(root)
    except StoreError as exc:
        if "damaged" not in str(exc):
            raise
        report.moved_to = move_aside(root)
        store = Store(root)
        report.salvaged = salvage(root / report.moved_to, store)
        restored = set(report.salvaged.runs)
        report.lost_runs = sorted(p.name for p in (root / "runs").glob("*") if p.is_dir() and p.name not in restored)
    for run_id in store.tampered_runs():
        store.forget_run(run_id)
        report.tampered_runs.append(run_id)
    verify_checkpoints(store, report)
    report.leftovers = remove_leftovers(root)
    return report
