"""The life stages of runs and jobs: one vocabulary for the store, the queue, the API and the pages.

Both are StrEnums, so they compare equal to the strings the store holds.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run's results stand in the store."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # shown, never stored: 'running' whose process is gone and no job holds it
    MISSING = "missing"  # not in the store at all (never started here)


class JobStatus(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


LIVE_JOBS = (JobStatus.QUEUED, JobStatus.RUNNING)
"""Jobs that still hold their run: at most one per run id."""

ENDED_JOBS = (JobStatus.FAILED, JobStatus.CANCELLED)
"""Jobs that ended without finishing their run; they may be retried."""
