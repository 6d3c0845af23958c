"""The job queue, in the same SQLite store as the results.

A job runs one spec. The same run id never has two live (queued or running) jobs: a partial
unique index enforces it and `submit` returns the live job instead. A worker claims the oldest
queued job with one `UPDATE … RETURNING` inside `BEGIN IMMEDIATE`, holds a lease that its
heartbeat renews, and writes only while its fence (owner + attempt) still holds. A job whose
lease expired goes back to the queue, or fails once it has used up its attempts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any

from engine.errors import LeaseLost, NotFoundError
from engine.processes import owner_gone
from engine.spec.runspec import RunSpec
from engine.status import JobStatus, RunStatus
from engine.store.db import Fence, Store


@dataclass(frozen=True)
class Job:
    """One row of the jobs table."""

    job_id: int
    run_id: str
    spec_json: str
    status: JobStatus
    attempts: int
    max_attempts: int
    owner: str | None
    lease_expires: float | None
    cancel_requested: int
    step: int | None
    n_steps: int | None
    phase: str | None
    fraction: float | None
    eta_seconds: float | None
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float

    @classmethod
    def from_row(cls, row: Any) -> "Job":
        """Build from a sqlite3.Row (or mapping) of the jobs table."""
        values = {f.name: row[f.name] for f in fields(cls)}
        return cls(**{**values, "status": JobStatus(values["status"])})

    def fence(self) -> Fence:
        """The fence of this claim: its owner on its current attempt."""
        return Fence(self.job_id, self.owner or "", self.attempts)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields (status as its string)."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"status": str(self.status)}


def submit(store: Store, run_id: str, spec_json: str, run_done: bool = False, max_attempts: int = 3) -> Job:
    """Queue a run (or return its live job); a run already done gets a job that is already done."""
    now = time.time()
    with store.atomic() as db:
        live = db.execute(
            "SELECT * FROM jobs WHERE run_id = ? AND status IN ('queued', 'running')", (run_id,)
        ).fetchone()
        if live is not None:
            return Job.from_row(live)
        if run_done:
            finished = db.execute(
                "SELECT * FROM jobs WHERE run_id = ? AND status = 'done' ORDER BY job_id DESC", (run_id,)
            ).fetchone()
            if finished is not None:
                return Job.from_row(finished)
        status = JobStatus.DONE if run_done else JobStatus.QUEUED
        row = db.execute(
            "INSERT INTO jobs (run_id, spec_json, status, max_attempts, created_at, updated_at, finished_at, fraction) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (
                run_id,
                spec_json,
                str(status),
                max_attempts,
                now,
                now,
                now if run_done else None,
                1.0 if run_done else 0.0,
            ),
        ).fetchone()
    return Job.from_row(row)


def _run_done(store: Store, run_id: str) -> bool:
    return store.has_run(run_id) and store.run(run_id)["status"] == RunStatus.DONE


def submit_spec(store: Store, spec: RunSpec, max_attempts: int = 3) -> Job:
    """Queue a validated spec for the workers (or return the live job of the same run id)."""
    run_id = spec.run_id()
    return submit(store, run_id, spec.canonical_json(), run_done=_run_done(store, run_id), max_attempts=max_attempts)


def resubmit(store: Store, job_id: int) -> Job:
    """Queue a failed or cancelled job's spec again (it resumes from its last finished step)."""
    old = get(store, job_id)
    return submit(store, old.run_id, old.spec_json, run_done=_run_done(store, old.run_id))


def get(store: Store, job_id: int) -> Job:
    """The job with this id; NotFoundError if there is none."""
    row = store.db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"job {job_id} is not in the store at {store.path}")
    return Job.from_row(row)


def latest_for_run(store: Store, run_id: str) -> Job | None:
    """The newest job of a run, or None."""
    row = store.db.execute("SELECT * FROM jobs WHERE run_id = ? ORDER BY job_id DESC LIMIT 1", (run_id,)).fetchone()
    return Job.from_row(row) if row else None


def requeue_expired(store: Store, now: float | None = None) -> int:
    """Put running jobs whose lease expired back in the queue, or fail those out of attempts."""
    now = time.time() if now is None else now
    with store.atomic() as db:
        failed = db.execute(
            "UPDATE jobs SET status = 'failed', owner = NULL, finished_at = ?, updated_at = ?, "
            "error = 'its worker stopped responding on each of ' || attempts || ' attempts (lease expired)' "
            "WHERE status = 'running' AND lease_expires < ? AND attempts >= max_attempts",
            (now, now, now),
        ).rowcount
        requeued = db.execute(
            "UPDATE jobs SET status = 'queued', owner = NULL, updated_at = ? "
            "WHERE status = 'running' AND lease_expires < ?",
            (now, now),
        ).rowcount
    return failed + requeued


def orphaned_lease_wait(store: Store) -> float | None:
    """Seconds until the first lease held by a dead worker process on this host expires (0 if one
    already has), or None when no running job's worker is known to be gone."""
    now = time.time()
    rows = store.db.execute("SELECT owner, lease_expires FROM jobs WHERE status = 'running'").fetchall()
    waits = [row["lease_expires"] - now for row in rows if owner_gone(row["owner"])]
    return max(0.0, min(waits)) if waits else None


def claim(store: Store, owner: str, lease_seconds: float) -> Job | None:
    """Claim the oldest queued job for `owner` (after requeueing expired leases), or None."""
    now = time.time()
    # a read first, so idle workers polling an empty queue never take the write lock
    waiting = store.db.execute(
        "SELECT 1 FROM jobs WHERE (status = 'queued' AND cancel_requested = 0) "
        "OR (status = 'running' AND lease_expires < ?) LIMIT 1",
        (now,),
    ).fetchone()
    if waiting is None:
        return None
    requeue_expired(store, now)
    with store.atomic() as db:
        row = db.execute(
            "UPDATE jobs SET status = 'running', owner = ?, attempts = attempts + 1, lease_expires = ?, "
            "started_at = coalesce(started_at, ?), updated_at = ? "
            "WHERE job_id = (SELECT job_id FROM jobs WHERE status = 'queued' AND cancel_requested = 0 "
            "ORDER BY job_id LIMIT 1) RETURNING *",
            (owner, now + lease_seconds, now, now),
        ).fetchone()
    return Job.from_row(row) if row else None


def heartbeat(store: Store, fence: Fence, lease_seconds: float) -> bool:
    """Renew the lease; False if the fence no longer holds (the job was taken over or ended)."""
    now = time.time()
    with store.atomic() as db:
        return (
            db.execute(
                "UPDATE jobs SET lease_expires = ? WHERE job_id = ? AND owner = ? AND attempts = ? AND "
                "status = 'running'",
                (now + lease_seconds, fence.job_id, fence.owner, fence.attempt),
            ).rowcount
            == 1
        )


def report(
    store: Store, fence: Fence, step: int, n_steps: int, phase: str, fraction: float, eta_seconds: float | None
) -> bool:
    """Record progress under the fence; return whether the user asked to cancel. LeaseLost if fenced out."""
    with store.atomic() as db:
        row = db.execute(
            "UPDATE jobs SET step = ?, n_steps = ?, phase = ?, fraction = ?, eta_seconds = ?, updated_at = ? "
            "WHERE job_id = ? AND owner = ? AND attempts = ? AND status = 'running' RETURNING cancel_requested",
            (step, n_steps, phase, fraction, eta_seconds, time.time(), fence.job_id, fence.owner, fence.attempt),
        ).fetchone()
    if row is None:
        raise LeaseLost(f"job {fence.job_id} attempt {fence.attempt} is no longer owned by {fence.owner}")
    return bool(row["cancel_requested"])


def finish(store: Store, fence: Fence, status: JobStatus, error: str | None = None) -> bool:
    """End a claimed job as done, failed or cancelled; False if the fence no longer holds."""
    now = time.time()
    fraction = 1.0 if status == JobStatus.DONE else None
    with store.atomic() as db:
        return (
            db.execute(
                "UPDATE jobs SET status = ?, error = ?, finished_at = ?, updated_at = ?, owner = NULL, "
                "fraction = coalesce(?, fraction), eta_seconds = NULL "
                "WHERE job_id = ? AND owner = ? AND attempts = ? AND status = 'running'",
                (str(status), error, now, now, fraction, fence.job_id, fence.owner, fence.attempt),
            ).rowcount
            == 1
        )


def release(store: Store, fence: Fence) -> bool:
    """Give a claimed job back to the queue without using an attempt (the worker is shutting down)."""
    with store.atomic() as db:
        return (
            db.execute(
                "UPDATE jobs SET status = 'queued', owner = NULL, attempts = attempts - 1, updated_at = ? "
                "WHERE job_id = ? AND owner = ? AND attempts = ? AND status = 'running'",
                (time.time(), fence.job_id, fence.owner, fence.attempt),
            ).rowcount
            == 1
        )


def cancel(store: Store, job_id: int) -> Job:
    """Cancel a queued job at once, or ask its worker to stop a running one between batches."""
    now = time.time()
    with store.atomic() as db:
        db.execute(
            "UPDATE jobs SET status = 'cancelled', finished_at = ?, updated_at = ?, error = 'cancelled by the user' "
            "WHERE job_id = ? AND status = 'queued'",
            (now, now, job_id),
        )
        db.execute(
            "UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE job_id = ? AND status = 'running'",
            (now, job_id),
        )
    return get(store, job_id)


def jobs(store: Store, limit: int = 200) -> list[Job]:
    """The newest jobs first, at most `limit`."""
    rows = store.db.execute("SELECT * FROM jobs ORDER BY job_id DESC LIMIT ?", (limit,)).fetchall()
    return [Job.from_row(r) for r in rows]


def register_worker(store: Store, owner: str, pid: int, host: str) -> None:
    """Record a live worker (its `seen_at` is renewed while it polls)."""
    now = time.time()
    with store.atomic() as db:
        db.execute("INSERT OR REPLACE INTO workers VALUES (?, ?, ?, ?, ?)", (owner, pid, host, now, now))


def worker_seen(store: Store, owner: str) -> None:
    """Renew a worker's liveness mark."""
    with store.atomic() as db:
        db.execute("UPDATE workers SET seen_at = ? WHERE owner = ?", (time.time(), owner))


def unregister_worker(store: Store, owner: str) -> None:
    """Remove a worker that is shutting down."""
    with store.atomic() as db:
        db.execute("DELETE FROM workers WHERE owner = ?", (owner,))


def live_workers(store: Store, within_seconds: float = 15.0) -> list[dict[str, Any]]:
    """Workers seen within the last `within_seconds`."""
    rows = store.db.execute("SELECT * FROM workers WHERE seen_at >= ?", (time.time() - within_seconds,)).fetchall()
    return [dict(r) for r in rows]


def describe(job: Job) -> str:
    """One line for people: 'step 3 of 5 · pruning to 80.0% · about 40 s left', or the status."""
    if job.status == JobStatus.RUNNING and job.n_steps:
        eta = f" · about {job.eta_seconds:.0f} s left" if job.eta_seconds else ""
        return f"step {job.step} of {job.n_steps - 1} · {job.phase}{eta}"
    if job.status == JobStatus.QUEUED:
        return "queued, waiting for a worker"
    return str(job.status) + (f": {job.error}" if job.error else "")
