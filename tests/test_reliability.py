"""Reliability with real processes: kill -9, SIGSTOP past the lease, many claimers, corrupt files, locks."""

import copy
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from engine import api
from engine.errors import IntegrityError
from engine.jobs import queue
from engine.jobs.worker import child_command
from engine.science.catalog import validate
from engine.spec.reading import apply_overrides
from engine.store.db import Store
from tests.support import REPO

pytestmark = pytest.mark.slow

LEASE = 1.0


def slow_smoke():
    """The smoke spec with five checkpoints and enough work per step to be caught mid-step."""
    tree = yaml.safe_load((REPO / "presets" / "smoke.yaml").read_text())
    return validate(
        apply_overrides(
            copy.deepcopy(tree),
            ["schedule.end=80", "schedule.frequency=20", "eval.n_samples=500", "eval.attacks.0.steps=10"],
        )
    )


def start_worker(root: Path, log: Path | None = None) -> subprocess.Popen:
    command = child_command(root, LEASE, None, threads=2)
    err = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)


def wait_for(condition, timeout=120.0, what="condition"):
    """Poll a condition of the store (not a sleep for luck): return its first truthy value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what}")


def hashes(store: Store, run_id: str):
    return [(s["step"], s["sha256"], s["mask_sha256"]) for s in store.steps(run_id)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The spec run uninterrupted by one worker process: its checkpoint hashes."""
    root = tmp_path_factory.mktemp("reference")
    spec = slow_smoke()
    store = Store(root)
    job = api.submit(spec, store)
    worker = start_worker(root)
    try:
        wait_for(lambda: queue.get(store, job.job_id).status == "done", what="the reference run")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return spec, hashes(store, spec.run_id())


def test_kill_9_at_five_points_loses_and_duplicates_nothing(tmp_path, reference):
    spec, expected = reference
    store = Store(tmp_path)
    job_id = api.submit(spec, store, max_attempts=10).job_id
    kills = 0
    for target in (0.02, 0.25, 0.45, 0.65, 0.8):
        worker = start_worker(tmp_path)
        owns = f":{worker.pid}:"  # the new worker's own claim, not the dead one's stale row
        wait_for(
            lambda owns=owns, target=target: (
                (j := queue.get(store, job_id)).status == "done"
                or (j.status == "running" and owns in (j.owner or "") and (j.fraction or 0) >= target)
            ),
            what=f"progress {target}",
        )
        worker.kill()  # SIGKILL: no cleanup, no release
        worker.wait()
        kills += queue.get(store, job_id).status != "done"
    worker = start_worker(tmp_path)
    try:
        wait_for(lambda: queue.get(store, job_id).status == "done", what="the job to finish after the kills")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    n = len(spec.schedule.sparsities())
    assert kills >= 5 and queue.get(store, job_id).attempts == kills + 1
    assert hashes(store, spec.run_id()) == expected and len(expected) == n
    robust = store.db.execute("SELECT count(*), count(DISTINCT run_id || step || attack || eps) FROM robust").fetchone()
    assert robust[0] == robust[1] == n * sum(len(a.eps) for a in spec.eval.attacks)
    assert store.integrity_ok() and store.run(spec.run_id())["status"] == "done"


def test_a_stopped_worker_past_its_lease_has_its_late_writes_refused(tmp_path, reference):
    spec, expected = reference
    store = Store(tmp_path)
    job_id = api.submit(spec, store).job_id
    log_a = tmp_path / "worker-a.log"
    a = start_worker(tmp_path, log_a)
    b = None
    try:
        wait_for(lambda: (queue.get(store, job_id).fraction or 0) >= 0.3, what="worker A mid-run")
        a.send_signal(signal.SIGSTOP)
        b = start_worker(tmp_path)
        wait_for(lambda: queue.get(store, job_id).attempts == 2, what="worker B to take over")
        a.send_signal(signal.SIGCONT)
        wait_for(lambda: queue.get(store, job_id).status == "done", what="worker B to finish")
        wait_for(
            lambda: "no longer owned" in log_a.read_text() or "lease lost" in log_a.read_text(),
            timeout=30,
            what="worker A to notice it lost the job",
        )
    finally:
        for worker in (a, b):
            if worker is not None:
                worker.send_signal(signal.SIGCONT)
                worker.terminate()
                worker.wait(timeout=30)
    assert hashes(store, spec.run_id()) == expected
    assert (
        queue.get(store, job_id).attempts >= 2 and store.integrity_ok()
    )  # a 1 s lease may change hands again under load


CLAIMER = """
import sys, time
from pathlib import Path
from engine.jobs import queue
from engine.status import JobStatus
from engine.store.db import Store
store, owner, out = Store(Path(sys.argv[1])), sys.argv[2], open(sys.argv[3], "w")
while (job := queue.claim(store, owner, 30)) is not None:
    out.write(f"{job.job_id}\\n")
    queue.finish(store, job.fence(), JobStatus.DONE)
"""


def test_four_processes_claim_each_of_200_jobs_exactly_once(tmp_path):
    store = Store(tmp_path)
    for i in range(200):
        queue.submit(store, f"{i:064x}", "{}")
    outs = [tmp_path / f"claims-{i}.txt" for i in range(4)]
    procs = [
        subprocess.Popen([sys.executable, "-c", CLAIMER, str(tmp_path), f"p{i}", str(out)], cwd=REPO)
        for i, out in enumerate(outs)
    ]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    claims = [int(line) for out in outs for line in out.read_text().split()]
    assert sorted(claims) == list(range(1, 201))  # every job once, none twice
    assert store.db.execute("SELECT count(*) FROM jobs WHERE status != 'done'").fetchone()[0] == 0


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_checkpoint_is_refused_and_recomputed(tmp_path, damage):
    store = Store(tmp_path)
    spec = slow_smoke()
    api.run(spec, store)
    before = hashes(store, spec.run_id())
    path = store.root / store.step(spec.run_id(), 2)["checkpoint"]
    data = bytearray(path.read_bytes())
    path.write_bytes(
        bytes(data[:100]) if damage == "truncate" else bytes(data[:-8] + bytes(b ^ 0xFF for b in data[-8:]))
    )
    with pytest.raises(IntegrityError):
        api.load_checkpoint(spec.run_id(), 2, store)
    store.forget_steps(spec.run_id(), 3)  # the run was interrupted after step 2: resuming must read it
    api.run(spec, store)
    assert hashes(store, spec.run_id()) == before
    assert api.load_checkpoint(spec.run_id(), 2, store) is not None


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp/aer-lab-unpickled-marker")


def test_a_planted_pickle_is_never_unpickled(tmp_path):
    MARKER.unlink(missing_ok=True)
    store = Store(tmp_path)
    spec = slow_smoke()
    api.run(spec, store)
    path = store.root / store.step(spec.run_id(), 1)["checkpoint"]
    path.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(IntegrityError):
        api.load_checkpoint(spec.run_id(), 1, store)
    store.forget_steps(spec.run_id(), 2)
    api.run(spec, store)  # resuming reads step 1: refused by its hash, recomputed
    assert not MARKER.exists()


def test_a_locked_database_makes_writers_wait_not_fail(tmp_path):
    store = Store(tmp_path)
    holding, released = threading.Event(), threading.Event()

    def hold_the_lock():
        other = Store(tmp_path)
        with other.atomic():
            holding.set()
            released.wait(2.0)  # another writer holds the database for two seconds

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    holding.wait(10)
    started = time.monotonic()
    job = queue.submit(store, "c" * 64, "{}")
    waited = time.monotonic() - started
    holder.join()
    assert job.status == "queued" and waited >= 1.5


def test_cancel_stops_a_running_job_between_batches_and_retry_resumes_it(tmp_path, reference):
    from engine.jobs.worker import Worker

    spec, expected = reference
    store = Store(tmp_path)
    job_id = api.submit(spec, store).job_id
    worker = Worker(store, lease_seconds=5)
    thread = threading.Thread(target=worker.serve, kwargs={"exit_when_idle": True})
    thread.start()
    wait_for(lambda: (queue.get(store, job_id).fraction or 0) >= 0.3, what="the job mid-run")
    api.cancel(job_id, store)
    thread.join(timeout=60)
    cancelled = queue.get(store, job_id)
    assert cancelled.status == "cancelled" and not thread.is_alive()
    assert 0 < len(store.steps(spec.run_id())) < len(expected)
    retried = api.retry(job_id, store)
    assert retried.job_id != job_id and retried.status == "queued"
    Worker(store).serve(exit_when_idle=True)
    assert api.job(retried.job_id, store).status == "done" and hashes(store, spec.run_id()) == expected


def test_a_resume_after_a_damaged_checkpoint_keeps_the_worker_s_threads(tmp_path, monkeypatch):
    from engine import pipeline

    store = Store(tmp_path)
    spec = slow_smoke()
    api.run(spec, store)
    path = store.root / store.step(spec.run_id(), 1)["checkpoint"]
    path.write_bytes(path.read_bytes()[:100])
    store.forget_steps(spec.run_id(), 2)
    walks, walk = [], pipeline._walk
    monkeypatch.setattr(pipeline, "_walk", lambda *args: walks.append(args[-1]) or walk(*args))
    pipeline.run(spec, store, threads=1)
    assert walks == [1, 1]  # the first walk finds step 1 damaged and walks again, at the same threads
