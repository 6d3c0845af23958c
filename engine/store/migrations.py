"""The store's schema, as ordered migrations: each runs once, in declaration order, recorded in the
database (engine.store.db applies them when a store opens). A new table or column is one more
`@migration("NNNN_name")` at the end of this file; a migration is never edited once released."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = []


def migration(name: str):
    """Register the next schema migration; migrations run once each, in declaration order."""

    def decorate(fn: Callable[[sqlite3.Connection], None]):
        if any(existing == name for existing, _ in MIGRATIONS):
            raise ValueError(f"migration {name!r} is declared twice")
        MIGRATIONS.append((name, fn))
        return fn

    return decorate


@migration("0001_runs_steps_results")
def _initial_schema(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE bases (
        base_id TEXT PRIMARY KEY, spec_json TEXT NOT NULL, checkpoint TEXT NOT NULL,
        sha256 TEXT NOT NULL, clean_acc REAL NOT NULL, train_seconds REAL NOT NULL,
        created_at REAL NOT NULL)""")
    db.execute("""CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, base_id TEXT NOT NULL, spec_json TEXT NOT NULL,
        engine_version TEXT NOT NULL, n_steps INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
        error TEXT, created_at REAL NOT NULL, finished_at REAL)""")
    db.execute("""CREATE TABLE steps (
        run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        step INTEGER NOT NULL, target_sparsity REAL NOT NULL, sparsity REAL NOT NULL,
        clean_acc REAL NOT NULL, checkpoint TEXT NOT NULL, sha256 TEXT NOT NULL,
        mask_checkpoint TEXT NOT NULL, mask_sha256 TEXT NOT NULL,
        train_seconds REAL NOT NULL, eval_seconds REAL NOT NULL, finished_at REAL NOT NULL,
        PRIMARY KEY (run_id, step))""")
    db.execute("""CREATE TABLE robust (
        run_id TEXT NOT NULL, step INTEGER NOT NULL, attack TEXT NOT NULL, norm TEXT NOT NULL,
        eps REAL NOT NULL, acc REAL NOT NULL CHECK (acc >= 0 AND acc <= 1),
        PRIMARY KEY (run_id, step, attack, eps),
        FOREIGN KEY (run_id, step) REFERENCES steps(run_id, step) ON DELETE CASCADE)""")
    db.execute("""CREATE TABLE layers (
        run_id TEXT NOT NULL, step INTEGER NOT NULL, layer TEXT NOT NULL, kind TEXT NOT NULL,
        numel INTEGER NOT NULL, nonzero INTEGER NOT NULL, sparsity REAL NOT NULL,
        prunable INTEGER NOT NULL,
        PRIMARY KEY (run_id, step, layer),
        FOREIGN KEY (run_id, step) REFERENCES steps(run_id, step) ON DELETE CASCADE)""")


@migration("0002_spec_aliases")
def _spec_aliases(db: sqlite3.Connection) -> None:
    # raw spec text (hashed) -> run id, so a cache hit needs no validation and no torch import
    db.execute("CREATE TABLE spec_aliases (raw_key TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(run_id))")


@migration("0003_jobs_workers")
def _jobs(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE jobs (
        job_id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, spec_json TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 3,
        owner TEXT, lease_expires REAL, cancel_requested INTEGER NOT NULL DEFAULT 0,
        step INTEGER, n_steps INTEGER, phase TEXT, fraction REAL, eta_seconds REAL, error TEXT,
        created_at REAL NOT NULL, started_at REAL, finished_at REAL, updated_at REAL NOT NULL)""")
    # the same run id never has two live jobs
    db.execute("CREATE UNIQUE INDEX one_live_job_per_run ON jobs(run_id) WHERE status IN ('queued', 'running')")
    db.execute("CREATE INDEX jobs_by_status ON jobs(status, job_id)")
    db.execute("""CREATE TABLE workers (
        owner TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL,
        started_at REAL NOT NULL, seen_at REAL NOT NULL)""")


@migration("0004_transfer_warnings_params")
def _transfer(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE transfer (
        run_id TEXT NOT NULL, step INTEGER NOT NULL, attack TEXT NOT NULL, norm TEXT NOT NULL,
        eps REAL NOT NULL, acc REAL NOT NULL CHECK (acc >= 0 AND acc <= 1), params TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, step, attack, eps),
        FOREIGN KEY (run_id, step) REFERENCES steps(run_id, step) ON DELETE CASCADE)""")
    db.execute("""CREATE TABLE warnings (
        run_id TEXT NOT NULL, step INTEGER NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL,
        PRIMARY KEY (run_id, step, kind),
        FOREIGN KEY (run_id, step) REFERENCES steps(run_id, step) ON DELETE CASCADE)""")
    db.execute("ALTER TABLE robust ADD COLUMN params TEXT NOT NULL DEFAULT ''")


@migration("0005_attack_seconds")
def _attack_seconds(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE robust ADD COLUMN seconds REAL")


EFFICIENCY_COLUMNS = (
    "params",
    "nonzero_params",
    "compression_ratio",
    "flops",
    "sparse_flops",
    "theoretical_speedup",
    "size_bytes",
    "latency_ms_b1",
    "latency_ms_b128",
)


@migration("0006_efficiency")
def _efficiency(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE efficiency (
        run_id TEXT NOT NULL, step INTEGER NOT NULL, params INTEGER NOT NULL, nonzero_params INTEGER NOT NULL,
        compression_ratio REAL NOT NULL, flops INTEGER NOT NULL, sparse_flops REAL NOT NULL,
        theoretical_speedup REAL NOT NULL, size_bytes REAL NOT NULL, latency_ms_b1 REAL NOT NULL,
        latency_ms_b128 REAL NOT NULL, PRIMARY KEY (run_id, step),
        FOREIGN KEY (run_id, step) REFERENCES steps(run_id, step) ON DELETE CASCADE)""")


SHRUNK_COLUMNS = ("shrunk_params", "shrunk_flops", "removed_channels", "shrunk_latency_ms_b1", "shrunk_latency_ms_b128")
BUDGET_COLUMNS = (
    "norm",
    "batches",
    "examples",
    "cutoff",
    "budget_mean",
    "budget_q10",
    "budget_q25",
    "budget_q50",
    "budget_q75",
    "budget_q90",
    "distance_mean",
    "distance_q10",
    "distance_q25",
    "distance_q50",
    "distance_q75",
    "distance_q90",
)


@migration("0007_robust_pruning")
def _robust_pruning(db: sqlite3.Connection) -> None:
    for column, kind in zip(SHRUNK_COLUMNS, ("INTEGER", "INTEGER", "INTEGER", "REAL", "REAL")):
        db.execute(f"ALTER TABLE efficiency ADD COLUMN {column} {kind}")
    db.execute("ALTER TABLE layers ADD COLUMN mrs REAL")
    db.execute("ALTER TABLE layers ADD COLUMN ratio REAL")
    db.execute("""CREATE TABLE budgets (
        run_id TEXT NOT NULL, step INTEGER NOT NULL, norm TEXT NOT NULL, batches INTEGER NOT NULL,
        examples INTEGER NOT NULL, cutoff REAL, budget_mean REAL NOT NULL, budget_q10 REAL NOT NULL,
        budget_q25 REAL NOT NULL, budget_q50 REAL NOT NULL, budget_q75 REAL NOT NULL, budget_q90 REAL NOT NULL,
        distance_mean REAL, distance_q10 REAL, distance_q25 REAL, distance_q50 REAL, distance_q75 REAL,
        distance_q90 REAL, PRIMARY KEY (run_id, step),
        FOREIGN KEY (run_id, step) REFERENCES steps(run_id, step) ON DELETE CASCADE)""")


EFFECTIVE_COLUMNS = ("effective_params", "effective_sparsity", "effective_compression")


@migration("0008_effective_size_and_mrs_reach")
def _effective_size(db: sqlite3.Connection) -> None:
    for column, kind in zip(EFFECTIVE_COLUMNS, ("INTEGER", "REAL", "REAL")):
        db.execute(f"ALTER TABLE efficiency ADD COLUMN {column} {kind}")
    db.execute("ALTER TABLE layers ADD COLUMN effective_nonzero INTEGER")
    db.execute("ALTER TABLE layers ADD COLUMN mrs_reach REAL")


@migration("0009_per_example_results")
def _per_example(db: sqlite3.Connection) -> None:
    # n: evaluation images behind the accuracy; correct: one bit per image (np.packbits), so two
    # checkpoints scored on the same images compare per example without a re-run
    for table in ("robust", "transfer"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN n INTEGER CHECK (n IS NULL OR n >= 0)")
        db.execute(f"ALTER TABLE {table} ADD COLUMN correct BLOB")


@migration("0010_ratio_mrs")
def _ratio_mrs(db: sqlite3.Connection) -> None:
    # the MRS that set a layer's pruning ratio (MRPF), probed on the model before that prune: the
    # `mrs` column is the checkpoint's own MRS, measured only when eval.mrs asks for it
    db.execute("ALTER TABLE layers ADD COLUMN ratio_mrs REAL")


LATENCY_COLUMNS = (
    "latency_spread_b1",
    "latency_spread_b128",
    "dense_latency_ms_b1",
    "dense_latency_ms_b128",
    "dense_latency_spread_b1",
    "dense_latency_spread_b128",
    "shrunk_latency_spread_b1",
    "shrunk_latency_spread_b128",
)
"""Each latency's spread (median / fastest of its interleaved rounds − 1) and the dense reference timed
beside the checkpoint: a latency is a measurement, and a noisy one is shown as such."""


@migration("0011_latency_spread")
def _latency_spread(db: sqlite3.Connection) -> None:
    for column in LATENCY_COLUMNS:
        db.execute(f"ALTER TABLE efficiency ADD COLUMN {column} REAL")


ONNX_COLUMNS = tuple(
    f"onnx_{model}_latency_{kind}_b{batch}"
    for model in ("dense", "shrunk")
    for kind in ("ms", "spread")
    for batch in (1, 128)
)
"""Filter pruning's deployment path: the dense and the physically smaller model exported to ONNX and
timed in onnxruntime, interleaved with the eager measurements."""


@migration("0012_onnx_latency")
def _onnx_latency(db: sqlite3.Connection) -> None:
    for column in ONNX_COLUMNS:
        db.execute(f"ALTER TABLE efficiency ADD COLUMN {column} REAL")


@migration("0013_result_digest")
def _result_digest(db: sqlite3.Connection) -> None:
    # SHA-256 of a step's stored results (engine.store.db.result_digest): a value edited in the
    # database no longer matches it, and `doctor` finds the step
    db.execute("ALTER TABLE steps ADD COLUMN result_sha256 TEXT")


@migration("0014_run_owner")
def _run_owner(db: sqlite3.Connection) -> None:
    # the process computing a run (engine.processes.process_token), so a run whose process died
    # outside the queue reads as interrupted, not as running forever
    db.execute("ALTER TABLE runs ADD COLUMN owner TEXT")


@migration("0015_lineage")
def _lineage(db: sqlite3.Connection) -> None:
    # a run forked from another ("What if…"): the parent is not part of the spec, so not of the run id
    db.execute("""CREATE TABLE lineage (
        run_id TEXT PRIMARY KEY, parent_id TEXT NOT NULL, created_at REAL NOT NULL)""")


@migration("0016_job_estimate")
def _job_estimate(db: sqlite3.Connection) -> None:
    # the seconds estimated when the job was queued (engine.store.estimate), kept beside the actual
    # time (finished_at - started_at) so the estimate can be checked
    db.execute("ALTER TABLE jobs ADD COLUMN estimate_seconds REAL")


@migration("0017_abstentions")
def _abstentions(db: sqlite3.Connection) -> None:
    # a certificate's curve (randomized smoothing) counts the images it abstained on; NULL for attacks
    db.execute("ALTER TABLE robust ADD COLUMN abstained INTEGER CHECK (abstained IS NULL OR abstained >= 0)")


@migration("0018_extended_evaluation")
def _extended(db: sqlite3.Connection) -> None:
    # further images of the test split evaluated after a run, to decide a comparison (engine/jobs/decide.py):
    # chunk k ≥ 1 holds the images after the run's own n_samples in its seeded order, every ε of one attack
    db.execute("""CREATE TABLE extended (
        run_id TEXT NOT NULL, step INTEGER NOT NULL, attack TEXT NOT NULL, eps REAL NOT NULL,
        chunk INTEGER NOT NULL CHECK (chunk >= 1), n INTEGER NOT NULL CHECK (n > 0), correct BLOB NOT NULL,
        seconds REAL, created_at REAL NOT NULL,
        PRIMARY KEY (run_id, step, attack, eps, chunk),
        FOREIGN KEY (run_id, step) REFERENCES steps(run_id, step) ON DELETE CASCADE)""")
