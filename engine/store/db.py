"""The run store: one SQLite file (WAL, `BEGIN IMMEDIATE` writes, ordered migrations).

Tidy tables that pandas reads straight into plots: `runs`, `steps` (one row per checkpoint; its
presence is the step's done-mark), `robust` (run × step × attack × ε), `layers` (run × step ×
layer), and `bases` (trained base models shared by runs). A step's rows commit in one
transaction, so a killed process never leaves half a step. Values are always bound with `?`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import LeaseLost, NotFoundError, StoreError, write_failure
from engine.paths import cache_dir, make_cache_folder
from engine.processes import process_token, token_alive
from engine.status import RunStatus
from engine.store import extended
from engine.store.migrations import (
    BUDGET_COLUMNS,
    EFFECTIVE_COLUMNS,
    EFFICIENCY_COLUMNS,
    LATENCY_COLUMNS,
    MIGRATIONS,
    ONNX_COLUMNS,
    SHRUNK_COLUMNS,
)

if TYPE_CHECKING:
    from engine.spec.runspec import RunSpec


def result_digest(db: sqlite3.Connection, run_id: str, step: int) -> str:
    """SHA-256 of a step's results as stored: its sparsity, clean accuracy and checkpoint hashes, and
    every robust and transfer row (accuracy, n and per-image flags), in a fixed order."""
    digest = hashlib.sha256()
    key = (run_id, step)
    row = db.execute(
        "SELECT target_sparsity, sparsity, clean_acc, sha256, mask_sha256 FROM steps WHERE run_id = ? AND step = ?",
        key,
    ).fetchone()
    digest.update(repr(tuple(row)).encode())
    for table in ("robust", "transfer"):  # constant names
        rows = db.execute(
            f"SELECT attack, norm, eps, acc, n, correct FROM {table} WHERE run_id = ? AND step = ? "
            "ORDER BY attack, norm, eps",
            key,
        )
        for result in rows:
            digest.update(repr(tuple(result)).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class StepRecord:
    """What one checkpoint writes, in one transaction (its done-mark): the `steps` row (run id, step,
    sparsities, clean accuracy, checkpoint files and hashes, seconds) and its result rows, each a dict of
    its table's columns without the run id and step."""

    step: dict[str, Any]
    robust: list[dict[str, Any]]
    layers: list[dict[str, Any]]
    transfer: Sequence[dict[str, Any]] = ()
    warnings: Sequence[dict[str, Any]] = ()
    efficiency: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None


PER_EXAMPLE = {"params": "", "n": None, "correct": None}
"""Defaults of a result row without per-example flags (rows written before they were kept)."""


def require_finite(what: str, row: dict[str, Any]) -> None:
    """Raise ValueError naming the field if a float in `row` is NaN or infinite: never stored as a number."""
    for key, value in row.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{what}.{key} is {value}: a non-finite number is never stored")


class Fence:
    """Who may write a job's results: its current owner, on its current attempt.

    Writes made under a fence check it inside their own transaction, so a worker that lost its
    lease (paused, partitioned, presumed dead) can never overwrite the new owner's results.
    """

    def __init__(self, job_id: int, owner: str, attempt: int):
        self.job_id, self.owner, self.attempt = job_id, owner, attempt

    def holds(self, db: sqlite3.Connection) -> bool:
        """Whether this fence still owns its job (call inside a transaction)."""
        row = db.execute(
            "SELECT 1 FROM jobs WHERE job_id = ? AND owner = ? AND attempts = ? AND status = 'running'",
            (self.job_id, self.owner, self.attempt),
        ).fetchone()
        return row is not None

    def check(self, db: sqlite3.Connection) -> None:
        """Raise LeaseLost unless this fence still owns its job."""
        if not self.holds(db):
            raise LeaseLost(f"job {self.job_id} attempt {self.attempt} is no longer owned by {self.owner}")


def _insert(
    db: sqlite3.Connection, table: str, columns: tuple[str, ...], defaults: dict[str, Any], row: dict[str, Any]
) -> None:
    """Insert one row of fixed `columns` (column names are constants of this module, never input)."""
    names = ", ".join(("run_id", "step") + columns)
    marks = ", ".join(f":{c}" for c in ("run_id", "step") + columns)
    db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", {**defaults, **row})


def _require_finite_step(step, robust, layers, transfer, efficiency, budget) -> None:
    require_finite("step", step)
    for what, rows in (("robust", robust), ("layers", layers), ("transfer", transfer)):
        for row in rows:
            require_finite(what, row)
    for what, row in (("efficiency", efficiency), ("budget", budget)):
        if row:
            require_finite(what, row)


class Store:
    """The SQLite store of one cache folder; checkpoints live beside it under the same root."""

    def __init__(self, root: Path):
        self.root = make_cache_folder(Path(root).resolve())
        self.path = self.root / "aer.sqlite"
        self._local = threading.local()  # one connection per thread: Streamlit serves sessions on threads
        self._watch: sqlite3.Connection | None = None
        self._watch_lock = threading.Lock()
        self.read_only = not _writable(self.root, self.path)
        self.check()
        if not self.read_only:
            self.migrate()

    def last_change(self) -> int:
        """A number that moves whenever anything is committed to the store, by any connection or process.

        It is PRAGMA data_version of one read-only watch connection shared by this Store's threads:
        the pragma moves on every other connection's commit, and the watcher itself never writes
        (a per-thread connection would not do: Streamlit runs each script run on a fresh thread).
        """
        with self._watch_lock:
            if self._watch is None and self.read_only:
                return 0  # nothing commits to a read-only store
            if self._watch is None:
                self._watch = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            return int(self._watch.execute("PRAGMA data_version").fetchone()[0])

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection (WAL, foreign keys, busy timeout), opened on first use."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._read_only_connection() if self.read_only else self._connection()
            connection.row_factory = sqlite3.Row
            self._local.connection = connection
        return connection

    def _connection(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")  # a committed step survives power loss
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA busy_timeout=30000")
        return connection

    def _read_only_connection(self) -> sqlite3.Connection:
        """Reads without writing anything: not the WAL switch; with no write-ahead log beside it, the
        database is opened immutable (SQLite takes no locks in a folder it may not write), else read-only
        through the log's existing files, so commits not yet copied into the database are read too."""
        if not self.path.exists():
            raise StoreError("cache: read-only and holds no store yet; point AER_CACHE_DIR at a writable folder")
        logged = self.path.with_name("aer.sqlite-wal").exists() and self.path.with_name("aer.sqlite-shm").exists()
        mode = "mode=ro" if logged else "mode=ro&immutable=1"
        return sqlite3.connect(f"{self.path.as_uri()}?{mode}", uri=True, isolation_level=None)

    def check(self) -> None:
        """Fail in one line when the database is damaged or was written by a newer AER Lab."""
        if not self.path.exists():
            return
        try:
            verdict = self.db.execute("PRAGMA quick_check").fetchone()[0]
            names = {row[0] for row in self.db.execute("SELECT name FROM _migrations")} if verdict == "ok" else set()
        except sqlite3.DatabaseError as exc:
            if "no such table" in str(exc):
                return  # a store created but not yet migrated
            verdict = str(exc)
        if verdict != "ok":
            self.close()
            raise StoreError(f"store: aer.sqlite is damaged ({verdict[:80]}); run `python -m engine doctor`")
        unknown = names - {name for name, _ in MIGRATIONS}
        if unknown:
            raise StoreError(f"store: written by a newer AER Lab ({len(unknown)} unknown migrations); upgrade it")

    def close(self) -> None:
        """Close this thread's connection (and the change watcher)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
        with self._watch_lock:
            if self._watch is not None:
                self._watch.close()
                self._watch = None

    @contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (`BEGIN IMMEDIATE`): all or nothing."""
        if self.read_only:
            raise StoreError("cache: read-only; results can be read but not computed or changed here")
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            primary = "_".join(str(getattr(exc, "sqlite_errorname", "")).split("_")[:2])  # SQLITE_READONLY_DBMOVED
            failure = write_failure("store: aer.sqlite", primary)
            if failure is None:
                raise
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise failure from exc

    def migrate(self) -> None:
        """Apply the migrations this database has not seen, each in its own transaction."""
        with self.atomic() as db:
            db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        for name, apply in MIGRATIONS:
            with self.atomic() as db:
                if db.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                    continue
                apply(db)
                db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, time.time()))

    def integrity_ok(self) -> bool:
        """`PRAGMA integrity_check` says ok."""
        return self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # bases
    def base(self, base_id: str) -> dict[str, Any] | None:
        """The base-model row, or None."""
        row = self.db.execute("SELECT * FROM bases WHERE base_id = ?", (base_id,)).fetchone()
        return dict(row) if row else None

    def put_base(self, row: dict[str, Any]) -> None:
        """Record a published base model (the first writer wins; bases are deterministic)."""
        with self.atomic() as db:
            db.execute(
                "INSERT OR IGNORE INTO bases VALUES (:base_id, :spec_json, :checkpoint, :sha256, "
                ":clean_acc, :train_seconds, :created_at)",
                {**row, "created_at": time.time()},
            )

    # runs
    def run(self, run_id: str) -> dict[str, Any]:
        """The run row; NotFoundError if there is none, StoreError (one line) if its stored spec was
        edited after it was written (spec_intact)."""
        row = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"run {run_id!r} is not in the store at {self.path}")
        if not spec_intact(dict(row)):
            raise StoreError(
                f"run {run_id[:12]} is damaged: its stored spec was edited after it was written (it no longer "
                "hashes to its id); run `python -m engine doctor`"
            )
        return dict(row)

    def tampered_runs(self) -> list[str]:
        """Ids of runs whose stored spec no longer hashes to their id (edited in the database)."""
        rows = self.db.execute("SELECT run_id, engine_version, spec_json FROM runs").fetchall()
        return [r["run_id"] for r in rows if not spec_intact(dict(r))]

    def forget_run(self, run_id: str) -> None:
        """Delete a run and everything stored about it (its checkpoint files stay on disk)."""
        with self.atomic() as db:
            for table in ("robust", "layers", "transfer", "warnings", "efficiency", "budgets", "steps", "spec_aliases"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))  # noqa: S608 - fixed names
            db.execute("DELETE FROM lineage WHERE run_id = ? OR parent_id = ?", (run_id, run_id))
            db.execute("DELETE FROM jobs WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

    def has_run(self, run_id: str) -> bool:
        """Whether the store has a row for this run."""
        return self.db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is not None

    def resolve(self, prefix: str) -> str:
        """The full run id for a unique prefix (at least 6 hex characters)."""
        if len(prefix) < 6 or not all(c in "0123456789abcdef" for c in prefix):
            raise NotFoundError(f"run id {prefix[:80]!r}: expected at least 6 lowercase hex characters")
        rows = self.db.execute(
            "SELECT run_id FROM runs WHERE substr(run_id, 1, ?) = ?", (len(prefix), prefix)
        ).fetchall()
        if len(rows) != 1:
            raise NotFoundError(f"run id {prefix!r} matches {len(rows)} runs; give more characters")
        return rows[0]["run_id"]

    def begin_run(
        self, run_id: str, base_id: str, spec_json: str, engine_version: str, n_steps: int, fence: Fence | None = None
    ) -> None:
        """Create the run row, or mark an unfinished one running again (resume)."""
        with self.atomic() as db:
            if fence:
                fence.check(db)
            db.execute(
                "INSERT INTO runs (run_id, base_id, spec_json, engine_version, n_steps, status, created_at, owner) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?, ?) ON CONFLICT (run_id) DO UPDATE SET status = 'running', "
                "error = NULL, owner = excluded.owner WHERE status != 'done'",
                (run_id, base_id, spec_json, engine_version, n_steps, time.time(), process_token()),
            )

    def finish_run(self, run_id: str, error: str | None = None, fence: Fence | None = None) -> None:
        """Mark a run done, or failed with its error (nothing, if the fence no longer holds)."""
        status = RunStatus.FAILED if error else RunStatus.DONE
        with self.atomic() as db:
            if fence and not fence.holds(db):
                return
            db.execute(
                "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE run_id = ?",
                (status, error, time.time(), run_id),
            )

    def runs(self) -> list[dict[str, Any]]:
        """Every run row with its count of finished steps, newest first. A run stored as running whose
        process is gone, with no queued job and no live lease on it, reads as interrupted."""
        rows = self.db.execute(
            "SELECT r.*, (SELECT count(*) FROM steps s WHERE s.run_id = r.run_id) AS steps_done, "
            "(SELECT parent_id FROM lineage l WHERE l.run_id = r.run_id) AS parent_id, "
            "(SELECT count(*) FROM jobs j WHERE j.run_id = r.run_id AND (j.status = 'queued' OR "
            "(j.status = 'running' AND j.lease_expires >= ?))) AS held "
            "FROM runs r ORDER BY r.created_at DESC",
            (time.time(),),
        ).fetchall()
        return [_with_liveness(dict(r)) for r in rows if spec_intact(dict(r))]  # a tampered row: doctor's

    def note_estimate(self, job_id: int, seconds: float) -> None:
        """Keep the estimate made when a job was queued (a job found live keeps its first one)."""
        with self.atomic() as db:
            db.execute(
                "UPDATE jobs SET estimate_seconds = ? WHERE job_id = ? AND estimate_seconds IS NULL", (seconds, job_id)
            )

    def estimates(self) -> list[dict[str, Any]]:
        """Finished jobs' estimated and actual seconds (oldest first)."""
        rows = self.db.execute(
            "SELECT job_id, run_id, estimate_seconds, finished_at - started_at AS actual_seconds FROM jobs "
            "WHERE status = 'done' AND estimate_seconds IS NOT NULL AND started_at IS NOT NULL ORDER BY job_id"
        ).fetchall()
        return [dict(r) for r in rows]

    def put_parent(self, run_id: str, parent_id: str) -> None:
        """Record that `run_id` was forked from `parent_id` (the first fork recorded stands)."""
        if run_id == parent_id:
            return
        with self.atomic() as db:
            db.execute("INSERT OR IGNORE INTO lineage VALUES (?, ?, ?)", (run_id, parent_id, time.time()))

    def alias(self, raw_key: str) -> str | None:
        """The run id recorded for a raw spec's key, or None."""
        row = self.db.execute("SELECT run_id FROM spec_aliases WHERE raw_key = ?", (raw_key,)).fetchone()
        return row["run_id"] if row else None

    def put_alias(self, raw_key: str, run_id: str) -> None:
        """Remember which run a raw spec validated to."""
        with self.atomic() as db:
            db.execute("INSERT OR IGNORE INTO spec_aliases VALUES (?, ?)", (raw_key, run_id))

    # steps and results
    def check_fence(self, fence: Fence | None) -> None:
        """Raise LeaseLost unless the fence (if any) still owns its job."""
        if fence:
            fence.check(self.db)

    def edited_steps(self, run_id: str) -> list[int]:
        """A run's steps whose stored results no longer match their digest (edited after they were
        written); steps written before digests were kept are not checked."""
        rows = self.db.execute(
            "SELECT step, result_sha256 FROM steps WHERE run_id = ? AND result_sha256 IS NOT NULL ORDER BY step",
            (run_id,),
        ).fetchall()
        return [r["step"] for r in rows if result_digest(self.db, run_id, r["step"]) != r["result_sha256"]]

    def dense_results(self, spec: RunSpec) -> dict[str, Any] | None:
        """Another run's verified step-0 results for the same base and the same evaluation, or None.

        Step 0 is the base model itself, so every run sharing the base (same data, model, training, seed
        and engine version: the base id) and the evaluation spec measures the same model on the same
        images with the same attacks and seeds. Returns {"run_id", "clean_acc", "robust": rows} from a
        run whose step 0 still matches its result digest (an edited one is never copied).
        """
        run_id, base_id, evaluation = spec.run_id(), spec.base_id(), json.loads(spec.canonical_json())["eval"]
        donors = self.db.execute(
            "SELECT r.run_id, r.spec_json, s.clean_acc, s.result_sha256 FROM runs r JOIN steps s "
            "ON s.run_id = r.run_id AND s.step = 0 WHERE r.base_id = ? AND r.run_id != ? ORDER BY s.finished_at",
            (base_id, run_id),
        ).fetchall()
        for donor in donors:
            if json.loads(donor["spec_json"]).get("eval") != evaluation or donor["result_sha256"] is None:
                continue
            if result_digest(self.db, donor["run_id"], 0) != donor["result_sha256"]:
                continue
            rows = self.db.execute(
                "SELECT attack, norm, eps, acc, params, seconds, n, correct, abstained FROM robust "
                "WHERE run_id = ? AND step = 0 ORDER BY rowid",
                (donor["run_id"],),
            ).fetchall()
            return {"run_id": donor["run_id"], "clean_acc": donor["clean_acc"], "robust": [dict(r) for r in rows]}
        return None

    def forget_steps(self, run_id: str, from_step: int) -> None:
        """Delete a run's steps from `from_step` on (their checkpoint failed its hash), to recompute them."""
        with self.atomic() as db:
            db.execute("DELETE FROM steps WHERE run_id = ? AND step >= ?", (run_id, from_step))
            db.execute("UPDATE runs SET status = 'running' WHERE run_id = ? AND status = 'done'", (run_id,))

    def put_step(self, record: StepRecord, fence: Fence | None = None) -> None:
        """Write a step's row, robust results and layer table in one transaction (its done-mark).

        Steps are deterministic, so when another process already wrote this step, its rows stand
        and this call changes nothing.
        """
        step, robust, layers, transfer = record.step, record.robust, record.layers, record.transfer
        warnings, efficiency, budget = record.warnings, record.efficiency, record.budget
        _require_finite_step(step, robust, layers, transfer, efficiency, budget)
        with self.atomic() as db:
            if fence:
                fence.check(db)
            inserted = db.execute(
                "INSERT OR IGNORE INTO steps (run_id, step, target_sparsity, sparsity, clean_acc, checkpoint, "
                "sha256, mask_checkpoint, mask_sha256, train_seconds, eval_seconds, finished_at) VALUES (:run_id, "
                ":step, :target_sparsity, :sparsity, :clean_acc, :checkpoint, :sha256, :mask_checkpoint, "
                ":mask_sha256, :train_seconds, :eval_seconds, :finished_at)",
                {**step, "finished_at": time.time()},
            ).rowcount
            if not inserted:
                return
            key = {"run_id": step["run_id"], "step": step["step"]}
            db.executemany(
                "INSERT INTO robust (run_id, step, attack, norm, eps, acc, params, seconds, n, correct, abstained) "
                "VALUES (:run_id, :step, :attack, :norm, :eps, :acc, :params, :seconds, :n, :correct, :abstained)",
                [{**PER_EXAMPLE, "seconds": None, "abstained": None, **key, **r} for r in robust],
            )
            db.executemany(
                "INSERT INTO transfer (run_id, step, attack, norm, eps, acc, params, n, correct) "
                "VALUES (:run_id, :step, :attack, :norm, :eps, :acc, :params, :n, :correct)",
                [
                    {**PER_EXAMPLE, **key, **{k: v for k, v in r.items() if k not in ("seconds", "abstained")}}
                    for r in transfer
                ],
            )
            db.execute(
                "UPDATE steps SET result_sha256 = ? WHERE run_id = ? AND step = ?",
                (result_digest(db, key["run_id"], key["step"]), key["run_id"], key["step"]),
            )
            db.executemany(
                "INSERT INTO warnings VALUES (:run_id, :step, :kind, :message)", [{**key, **w} for w in warnings]
            )
            if efficiency:
                optional = SHRUNK_COLUMNS + EFFECTIVE_COLUMNS + LATENCY_COLUMNS + ONNX_COLUMNS
                _insert(
                    db, "efficiency", EFFICIENCY_COLUMNS + optional, {c: None for c in optional}, {**key, **efficiency}
                )
            if budget:
                _insert(db, "budgets", BUDGET_COLUMNS, {c: None for c in BUDGET_COLUMNS}, {**key, **budget})
            db.executemany(
                "INSERT INTO layers (run_id, step, layer, kind, numel, nonzero, sparsity, prunable, mrs, ratio, "
                "effective_nonzero, mrs_reach, ratio_mrs) VALUES (:run_id, :step, :layer, :kind, :numel, :nonzero, "
                ":sparsity, :prunable, :mrs, :ratio, :effective_nonzero, :mrs_reach, :ratio_mrs)",
                [
                    {
                        "mrs": None,
                        "ratio": None,
                        "effective_nonzero": None,
                        "mrs_reach": None,
                        "ratio_mrs": None,
                        **key,
                        **layer,
                        "prunable": int(layer["prunable"]),
                    }
                    for layer in layers
                ],
            )

    def _per_step(self, table: str, step_columns: str, run_ids: list[str]) -> list[dict[str, Any]]:
        """Rows of a per run × step table (a constant name) joined with columns of their step."""
        marks = ",".join("?" * len(run_ids))
        rows = self.db.execute(
            f"SELECT t.*, {step_columns} FROM {table} t JOIN steps s USING (run_id, step) "
            f"WHERE t.run_id IN ({marks}) ORDER BY t.run_id, t.step",
            run_ids,
        ).fetchall()
        return [dict(r) for r in rows]

    def budgets(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """Budget statistics (one row per run × step that trained adversarially), with each step's sparsity."""
        return self._per_step("budgets", "s.sparsity, s.clean_acc", run_ids)

    def runs_having(self, what: str) -> set[str]:
        """Ids of runs with any `budgets` rows, `mrs` values or `transfer` rows."""
        query = {
            "budgets": "SELECT DISTINCT run_id FROM budgets",
            "mrs": "SELECT DISTINCT run_id FROM layers WHERE mrs IS NOT NULL",
            "transfer": "SELECT DISTINCT run_id FROM transfer",
        }[what]
        return {row[0] for row in self.db.execute(query)}

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        """The finished steps of a run, in order."""
        rows = self.db.execute("SELECT * FROM steps WHERE run_id = ? ORDER BY step", (run_id,)).fetchall()
        return [dict(r) for r in rows]

    def step(self, run_id: str, step: int) -> dict[str, Any]:
        """One finished step; NotFoundError if it has not finished."""
        row = self.db.execute("SELECT * FROM steps WHERE run_id = ? AND step = ?", (run_id, step)).fetchone()
        if row is None:
            raise NotFoundError(f"run {run_id[:12]} has no finished step {step}")
        return dict(row)

    def robust(self, run_ids: list[str], table: str = "robust", flags: bool = False) -> list[dict[str, Any]]:
        """White-box (`robust`) or base-transfer (`transfer`) results of runs, with each step's sparsity;
        with `flags`, each row's packed per-example bits too (`correct`, or None where not kept). A white-box
        row grown by further images (engine/store/extended.py) counts them all; `n_own` is the run's own."""
        if table not in ("robust", "transfer"):
            raise ValueError(f"table {table!r}: choose 'robust' or 'transfer'")
        marks = ",".join("?" * len(run_ids))
        rows = self.db.execute(
            f"SELECT r.*, s.sparsity, s.clean_acc FROM {table} r JOIN steps s USING (run_id, step) "
            f"WHERE r.run_id IN ({marks}) ORDER BY r.run_id, r.step, r.attack, r.eps",
            run_ids,
        ).fetchall()
        chunks = extended.chunk_rows(self.db, run_ids) if table == "robust" else {}
        result = []
        for r in rows:
            row = extended.grown(dict(r), chunks.get((r["run_id"], r["step"], r["attack"], r["eps"]), []))
            result.append({k: v for k, v in row.items() if flags or k != "correct"})
        return result

    def efficiency(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """Efficiency rows (one per run × step) of the given runs, with each step's sparsity."""
        return self._per_step("efficiency", "s.sparsity", run_ids)

    def warnings(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """Warnings recorded while evaluating the given runs."""
        marks = ",".join("?" * len(run_ids))
        rows = self.db.execute(
            f"SELECT * FROM warnings WHERE run_id IN ({marks}) ORDER BY run_id, step", run_ids
        ).fetchall()
        return [dict(r) for r in rows]

    def layers(self, run_id: str) -> list[dict[str, Any]]:
        """The per-layer table of every finished step of a run."""
        rows = self.db.execute("SELECT * FROM layers WHERE run_id = ? ORDER BY step, rowid", (run_id,)).fetchall()
        return [dict(r) for r in rows]


def spec_intact(run: dict[str, Any]) -> bool:
    """Whether a run row's stored spec still hashes to its id (engine.spec.runspec.spec_hash: the engine
    version, a newline, the canonical JSON), i.e. was not edited after the run was written."""
    payload = f"{run['engine_version']}\n{run['spec_json']}".encode()
    return hashlib.sha256(payload).hexdigest() == run["run_id"]


def _with_liveness(run: dict[str, Any]) -> dict[str, Any]:
    """The run row, its status 'interrupted' when it is stored running but nothing computes it."""
    held = run.pop("held", 0)
    if run["status"] == RunStatus.RUNNING and not held and token_alive(run.get("owner")) is False:
        run["status"] = RunStatus.INTERRUPTED
    return run


def _writable(root: Path, path: Path) -> bool:
    """Whether this process may write the cache folder and its database (not on a read-only mount, nor
    in a folder or a file without write permission)."""
    return os.access(root, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


@lru_cache(maxsize=8)
def _store_at(root: str) -> Store:
    return Store(Path(root))


def open_store(root: str | Path | None = None) -> Store:
    """The store of a cache folder (default: `AER_CACHE_DIR` or `cache/`), one per process."""
    return _store_at(str(Path(root).resolve() if root else cache_dir()))


def forget_stores() -> None:
    """Drop the per-process stores `open_store` keeps, so the next call opens the cache folder afresh."""
    _store_at.cache_clear()
