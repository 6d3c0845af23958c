"""The life stages of runs and jobs, and what a comparison decides: one vocabulary for the store, the queue,
the API and the pages.

All are StrEnums, so they compare equal to the strings the store holds.
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


class Decision(StrEnum):
    """What the data say of a claim or a comparison, from the interval of its statistic: it clears the bar
    (HOLDS), lies on the wrong side of it (FAILS) or straddles it (INCONCLUSIVE: the images cannot tell);
    a paper claim whose runs have not all finished is INCOMPLETE."""

    HOLDS = "holds"
    FAILS = "fails"
    INCONCLUSIVE = "inconclusive"
    INCOMPLETE = "incomplete"


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
