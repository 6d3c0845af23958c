"""The job queue in one process: dedupe, claim order, leases, fences, cancel, attempts."""

import time

import pytest

from engine.errors import LeaseLost
from engine.jobs import queue
from engine.status import JobStatus
from engine.store.db import StepRecord, Store


@pytest.fixture
def db(tmp_path):
    return Store(tmp_path)


def _submit(db, n=1):
    return [queue.submit(db, f"{i:064x}", "{}") for i in range(n)]


def test_the_same_run_never_gets_two_live_jobs(db):
    first = queue.submit(db, "a" * 64, "{}")
    again = queue.submit(db, "a" * 64, "{}")
    assert first.job_id == again.job_id and first.status == JobStatus.QUEUED


def test_a_done_run_gets_a_done_job_once(db):
    first = queue.submit(db, "b" * 64, "{}", run_done=True)
    again = queue.submit(db, "b" * 64, "{}", run_done=True)
    assert first.status == JobStatus.DONE and again.job_id == first.job_id


def test_claim_takes_the_oldest_and_returns_none_when_empty(db):
    jobs = _submit(db, 2)
    assert queue.claim(db, "w", 30).job_id == jobs[0].job_id
    assert queue.claim(db, "w", 30).job_id == jobs[1].job_id
    assert queue.claim(db, "w", 30) is None


def test_an_expired_lease_puts_the_job_back_then_fails_it_after_its_attempts(db):
    (job,) = _submit(db)
    for attempt in (1, 2, 3):
        claimed = queue.claim(db, f"w{attempt}", lease_seconds=-1)  # a lease that has already expired
        assert claimed.attempts == attempt
    queue.requeue_expired(db)
    dead = queue.get(db, job.job_id)
    assert dead.status == JobStatus.FAILED and "3 attempts" in dead.error


def test_a_stale_owner_cannot_write_after_a_takeover(db):
    (job,) = _submit(db)
    old = queue.claim(db, "old", lease_seconds=-1)
    new = queue.claim(db, "new", lease_seconds=30)
    assert new.attempts == 2
    with pytest.raises(LeaseLost):
        queue.report(db, old.fence(), 1, 3, "x", 0.5, None)
    assert not queue.heartbeat(db, old.fence(), 30) and not queue.finish(db, old.fence(), JobStatus.DONE)
    db.begin_run(job.run_id, "base", "{}", "t", 2)
    step = {
        "run_id": job.run_id,
        "step": 0,
        "target_sparsity": 0,
        "sparsity": 0,
        "clean_acc": 1,
        "checkpoint": "c",
        "sha256": "s",
        "mask_checkpoint": "m",
        "mask_sha256": "t",
        "train_seconds": 0,
        "eval_seconds": 0,
    }
    with pytest.raises(LeaseLost):
        db.put_step(StepRecord(step, [], []), fence=old.fence())
    assert db.steps(job.run_id) == []
    db.put_step(StepRecord(step, [], []), fence=new.fence())
    assert len(db.steps(job.run_id)) == 1 and queue.finish(db, new.fence(), JobStatus.DONE)


def test_cancel_a_queued_job_at_once_and_a_running_one_through_its_progress(db):
    queued, running = _submit(db, 2)
    claimed = queue.claim(db, "w", 30)
    assert claimed.job_id == queued.job_id
    assert queue.cancel(db, running.job_id).status == JobStatus.CANCELLED
    assert queue.cancel(db, queued.job_id).status == JobStatus.RUNNING  # asked, not yet stopped
    assert queue.report(db, claimed.fence(), 0, 2, "training", 0.1, None) is True


def test_release_gives_the_job_back_without_using_an_attempt(db):
    (job,) = _submit(db)
    claimed = queue.claim(db, "w", 30)
    assert queue.release(db, claimed.fence())
    again = queue.get(db, job.job_id)
    assert again.status == JobStatus.QUEUED and again.attempts == 0


def test_progress_and_description(db):
    (job,) = _submit(db)
    claimed = queue.claim(db, "w", 30)
    queue.report(db, claimed.fence(), 3, 7, "pruning to 80.0%, fine-tuning", 0.5, 40.0)
    text = queue.describe(queue.get(db, job.job_id))
    assert text == "step 3 of 6 · pruning to 80.0%, fine-tuning · about 40 s left"


def test_live_workers_are_those_seen_recently(db):
    queue.register_worker(db, "w1", 1, "h")
    assert [w["owner"] for w in queue.live_workers(db)] == ["w1"]
    db.db.execute("UPDATE workers SET seen_at = ?", (time.time() - 60,))
    assert queue.live_workers(db) == []
