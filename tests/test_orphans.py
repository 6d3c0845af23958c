"""No orphans: a run whose process died outside the queue reads as interrupted (not running forever)
and resumes from one click; a worker told to exit when idle first takes over a dead worker's job."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from engine import ENGINE_VERSION, api
from engine.jobs import queue
from engine.jobs.worker import Worker
from engine.processes import owner_gone, process_token, token_alive
from engine.status import JobStatus, RunStatus
from engine.store.db import StepRecord, Store
from tests.support import REPO, page


def dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_token_tells_a_live_process_from_a_dead_or_reused_one():
    assert token_alive(process_token()) is True
    host, pid, start = process_token().rsplit(":", 2)
    assert token_alive(f"{host}:{pid}:{int(start) + 1}") is False  # the pid, reused by a later process
    assert token_alive(f"elsewhere:{pid}:{start}") is None  # another host: cannot tell
    assert owner_gone(f"{host}:{dead_pid()}:abcd1234") and not owner_gone(f"{host}:{pid}:abcd1234")


def stored_running(store: Store, owner: str) -> str:
    """A smoke run stored as running with one finished step, its row owned by `owner`."""
    spec = api.load_spec(preset="smoke")
    store.begin_run(spec.run_id(), spec.base_id(), spec.canonical_json(), ENGINE_VERSION, 3)
    store.db.execute("UPDATE runs SET owner = ? WHERE run_id = ?", (owner, spec.run_id()))
    return spec.run_id()


def test_a_running_run_whose_process_is_gone_reads_as_interrupted(store):
    host, pid, start = process_token().rsplit(":", 2)
    run_id = stored_running(store, f"{host}:{pid}:{int(start) + 1}")
    assert store.runs()[0]["status"] == RunStatus.INTERRUPTED
    api.resume(run_id, store)  # a queued job holds it: running again, not interrupted
    assert store.runs()[0]["status"] == RunStatus.RUNNING


def test_a_live_or_unknown_owner_keeps_the_run_running(store):
    stored_running(store, process_token())
    assert store.runs()[0]["status"] == RunStatus.RUNNING
    store.db.execute("UPDATE runs SET owner = 'elsewhere:1:1'")
    assert store.runs()[0]["status"] == RunStatus.RUNNING


def test_surface_offers_resume_for_an_interrupted_run(cache, monkeypatch):
    store = api.open_store()
    host, pid, start = process_token().rsplit(":", 2)
    run_id = stored_running(store, f"{host}:{pid}:{int(start) + 1}")
    done = api.load_spec(preset="smoke")  # give it one finished step to draw
    api.run(api.load_spec(preset="smoke", overrides=["seed=4"]), store)
    other = api.load_spec(preset="smoke", overrides=["seed=4"]).run_id()
    step = store.step(other, 0)
    rows = [{k: r[k] for k in ("attack", "norm", "eps", "acc")} for r in store.robust([other]) if r["step"] == 0]
    store.put_step(StepRecord({**step, "run_id": run_id}, rows, []))
    at = page("pages/surface.py", cache, monkeypatch, run=run_id[:12])
    assert not at.exception and done.run_id() == run_id
    assert any("interrupted after 1 of 3 checkpoints" in w.value for w in at.warning)
    next(b for b in at.button if b.label == "Resume").click()
    at.run()
    assert api.latest_job(run_id, api.open_store()).status == JobStatus.QUEUED


@pytest.mark.slow
def test_a_killed_cli_run_shows_as_interrupted_and_resumes_to_the_end(cache):
    run = subprocess.Popen(
        [sys.executable, "-m", "engine", "run", "--preset", "smoke", "--quiet"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store, run_id = api.open_store(), api.load_spec(preset="smoke").run_id()
    deadline = time.monotonic() + 120
    while not (store.has_run(run_id) and store.steps(run_id)) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the store for the first checkpoint, not sleeping for luck
    run.kill()
    run.wait()
    if store.run(run_id)["status"] == RunStatus.DONE:
        pytest.skip("the run finished before it could be killed")
    assert store.runs()[0]["status"] == RunStatus.INTERRUPTED
    api.resume(run_id, store)
    Worker(store).serve(exit_when_idle=True)
    assert store.run(run_id)["status"] == RunStatus.DONE and len(store.steps(run_id)) == 3


def test_exit_when_idle_takes_over_a_dead_workers_job_once_its_lease_expires(store):
    spec = api.load_spec(preset="smoke")
    api.submit(spec, store)
    host = process_token().split(":", 1)[0]
    claimed = queue.claim(store, f"{host}:{dead_pid()}:deadbeef", lease_seconds=0.5)
    assert claimed is not None and queue.orphaned_lease_wait(store) is not None
    assert Worker(store, lease_seconds=5).serve(exit_when_idle=True) == 1
    assert store.run(spec.run_id())["status"] == RunStatus.DONE
