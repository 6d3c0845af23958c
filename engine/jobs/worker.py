"""Workers: claim a job, run its spec under the job's fence, report progress, honour cancel.

`python -m engine worker --procs N` starts a supervisor that keeps N worker processes alive
(restarting any that dies, so a job whose worker was killed is reclaimed once its lease expires)
and stops them on SIGTERM or when its parent process (the app's server) goes away.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from engine.errors import Cancelled, EngineError, LeaseLost, WriteFailed
from engine.jobs import queue
from engine.jobs.queue import Job
from engine.processes import pid_alive
from engine.status import JobStatus
from engine.store.db import Fence, Store

log = logging.getLogger(__name__)


class Interrupted(EngineError):
    """The worker is shutting down; its job goes back to the queue without using an attempt."""


def parent_alive(pid: int | None) -> bool:
    """Whether the process that started us still runs (always True when there is none)."""
    return pid is None or pid_alive(pid)


class ProgressTracker:
    """The pipeline's progress callback for a job: throttled writes, ETA, cancel and lease checks."""

    def __init__(self, worker: "Worker", fence: Fence, min_interval: float = 0.5):
        self.worker, self.fence, self.min_interval = worker, fence, min_interval
        self.started, self.last_write = time.time(), 0.0
        self.first_fraction: float | None = None
        self.last_phase: str | None = None

    def __call__(self, p) -> None:
        if self.worker.stopping.is_set():
            raise Interrupted("worker stopping")
        if self.worker.lease_lost.is_set():
            raise LeaseLost(f"job {self.fence.job_id}: lease lost")
        fraction = min((p.step + p.done / max(p.total, 1)) / max(p.n_steps, 1), 1.0)
        if p.finished:
            fraction = (p.step + 1) / p.n_steps
        now = time.time()
        if p.phase == self.last_phase and now - self.last_write < self.min_interval:
            return
        self.last_write, self.last_phase = now, p.phase
        if queue.report(self.worker.store, self.fence, p.step, p.n_steps, p.phase, fraction, self._eta(fraction, now)):
            raise Cancelled(f"job {self.fence.job_id} cancelled by the user")

    def _eta(self, fraction: float, now: float) -> float | None:
        if self.first_fraction is None:
            self.first_fraction = fraction
        gained = fraction - self.first_fraction
        return (now - self.started) * (1 - fraction) / gained if gained > 0.01 else None


class Worker:
    """One worker: claims jobs from a store and runs them, one at a time."""

    def __init__(
        self,
        store: Store,
        lease_seconds: float = 30.0,
        poll_seconds: float = 0.5,
        parent_pid: int | None = None,
        threads: int | None = None,
    ):
        self.store, self.lease_seconds, self.poll_seconds = store, lease_seconds, poll_seconds
        self.parent_pid, self.threads = parent_pid, threads
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stopping, self.lease_lost = threading.Event(), threading.Event()

    def serve(self, exit_when_idle: bool = False, max_jobs: int | None = None) -> int:
        """Claim and run jobs until stopped (or idle, or `max_jobs` done); return the count run."""
        queue.register_worker(self.store, self.owner, os.getpid(), socket.gethostname())
        from engine.store.checkpoints import remove_leftovers  # noqa: PLC0415  torch (safetensors): only in a serving worker

        remove_leftovers(self.store.root)  # checkpoint writes a kill interrupted: their writers are gone
        count, last_seen = 0, time.time()
        try:
            while not self.stopping.is_set() and parent_alive(self.parent_pid):
                job = queue.claim(self.store, self.owner, self.lease_seconds)
                if job is None:
                    wait = queue.orphaned_lease_wait(self.store) if exit_when_idle else None
                    if exit_when_idle and wait is None:
                        break
                    if wait is not None:  # a dead worker's job: take it over once its lease expires
                        self.stopping.wait(min(wait + 0.05, self.lease_seconds))
                        continue
                    if time.time() - last_seen > 2:
                        queue.worker_seen(self.store, self.owner)
                        last_seen = time.time()
                    self.stopping.wait(self.poll_seconds)
                    continue
                self.run_job(job)
                count += 1
                if max_jobs is not None and count >= max_jobs:
                    break
        finally:
            queue.unregister_worker(self.store, self.owner)
        return count

    def run_job(self, job: Job) -> None:
        """Run one claimed job to its end state, with a heartbeat renewing its lease meanwhile."""
        # torch loads in the process that runs a job, never in the supervisor or `status` paths
        from engine.jobs.decide import is_decide_job  # noqa: PLC0415  pandas: only in the process that runs a job
        from engine.pipeline import run as run_pipeline  # noqa: PLC0415  torch: only in the process that runs a job
        from engine.science.catalog import validate  # noqa: PLC0415  torch: only in the process that runs a job

        fence, done = job.fence(), threading.Event()
        self.lease_lost.clear()
        beat = threading.Thread(target=self._heartbeat, args=(fence, done), daemon=True)
        beat.start()
        try:
            if is_decide_job(job.spec_json):
                self._decide(job, fence)
            else:
                spec = validate(json.loads(job.spec_json))
                run_pipeline(spec, self.store, ProgressTracker(self, fence), fence, threads=self.threads)
            queue.finish(self.store, fence, JobStatus.DONE)
        except Cancelled:
            queue.finish(self.store, fence, JobStatus.CANCELLED, "cancelled by the user")
        except Interrupted:
            queue.release(self.store, fence)
        except LeaseLost as exc:
            log.warning("%s: %s; its results stay with the new owner", self.owner, exc)
        except Exception as exc:  # noqa: BLE001 - any failure of the run is recorded on its job
            log.exception("job %s failed", job.job_id)
            self._record_failure(fence, exc)
        finally:
            done.set()
            beat.join()

    def _decide(self, job: Job, fence: Fence) -> None:
        """Grow a comparison's images until decided, or a claim's to its next look (engine/jobs/decide.py),
        reporting chunk by chunk."""
        from engine.jobs import decide  # noqa: PLC0415  pandas: only in the process that runs a job
        from engine.pipeline import Progress  # noqa: PLC0415  torch: only in the process that runs a job
        from engine.science.device import fit_threads  # noqa: PLC0415  torch: only in the process that runs a job

        if self.threads:
            fit_threads(self.threads)
        track = ProgressTracker(self, fence)
        if decide.is_growth_job(job.spec_json):
            growth = decide.Growth.from_json(job.spec_json)
            size = len(growth.checkpoints)
            decide.grow_to(
                self.store,
                growth,
                fence,
                lambda chunk, index, _: track(
                    Progress(chunk - 1, growth.chunks, f"deciding: chunk {chunk} of {growth.chunks}", index, size)
                ),
            )
            return
        decide.grow(
            self.store,
            decide.Question.from_json(job.spec_json),
            fence,
            lambda chunk, index, possible: track(Progress(chunk - 1, possible, f"deciding: chunk {chunk}", index, 2)),
        )

    def _record_failure(self, fence: Fence, exc: Exception) -> None:
        """Mark the job failed with its one-line reason; when even that cannot be written (the disk is
        full), stop this worker: the lease lapses and the job is retried once the cache has room."""
        reason = str(exc) if isinstance(exc, WriteFailed) else f"{type(exc).__name__}: {exc}"
        try:
            queue.finish(self.store, fence, JobStatus.FAILED, reason)
        except WriteFailed as again:
            log.error("job %s: %s", fence.job_id, again)
            self.stopping.set()

    def _heartbeat(self, fence: Fence, done: threading.Event) -> None:
        """Renew the lease every third of it until `done`; flag a lost lease or an orphaned worker."""
        while not done.wait(self.lease_seconds / 3):
            if not parent_alive(self.parent_pid):
                self.stopping.set()
            if not queue.heartbeat(self.store, fence, self.lease_seconds):
                self.lease_lost.set()
                return


def serve_child(root: Path, lease_seconds: float, parent_pid: int | None, threads: int | None) -> None:
    """Entry of one worker process: stop cleanly on SIGTERM/SIGINT (the job goes back to the queue)."""
    if threads:
        import torch  # noqa: PLC0415  torch: only in a worker child that sizes its threads

        torch.set_num_threads(threads)
    worker = Worker(Store(root), lease_seconds=lease_seconds, parent_pid=parent_pid, threads=threads)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stopping.set())
    worker.serve()


def child_command(root: Path, lease_seconds: float, parent_pid: int | None, threads: int) -> list[str]:
    """The command line of one worker process (watching `parent_pid` when given)."""
    command = [sys.executable, "-m", "engine", "--cache-dir", str(root), "worker", "--child"]
    command += ["--lease", str(lease_seconds), "--threads", str(threads)]
    return command + (["--parent-pid", str(parent_pid)] if parent_pid is not None else [])


def worker_threads(procs: int, cores: int | None = None) -> int:
    """Each worker's share of the cores (workers × threads ≤ cores while there are no more workers than
    cores); within it a run fits its threads to what other processes leave free, step by step."""
    return max(1, (cores or os.cpu_count() or 1) // procs)


def supervise(root: Path, procs: int, lease_seconds: float, parent_pid: int | None) -> None:
    """Keep `procs` worker processes alive until SIGTERM/SIGINT or until `parent_pid` exits."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    command = child_command(root, lease_seconds, os.getpid(), worker_threads(procs))
    children = [subprocess.Popen(command) for _ in range(procs)]
    try:
        while not stop.wait(0.5) and parent_alive(parent_pid):
            for i, child in enumerate(children):
                if child.poll() is not None:
                    log.warning("worker %d exited with %s; starting another", child.pid, child.returncode)
                    children[i] = subprocess.Popen(command)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
