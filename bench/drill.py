"""Crash drill: kill -9 a worker at many random points of one run and check nothing is lost.

Prints the figures the jobs issue asks for: kills survived, rows lost or duplicated, claims
doubled, checkpoint hashes equal to an uninterrupted run's, and SQLite's integrity check.
"""

from __future__ import annotations

import random
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from engine import api
from engine.jobs import queue
from engine.jobs.worker import child_command
from engine.science.catalog import validate
from engine.spec.reading import apply_overrides
from engine.store.db import Store

REPO = Path(__file__).resolve().parent.parent
LEASE = 1.0


def drill_spec():
    """The smoke preset stretched to five checkpoints with a few seconds of work each."""
    tree = yaml.safe_load((REPO / "presets" / "smoke.yaml").read_text())
    return validate(
        apply_overrides(
            tree, ["schedule.end=80", "schedule.frequency=20", "eval.n_samples=500", "eval.attacks.0.steps=10"]
        )
    )


def _worker(root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        child_command(root, LEASE, None, threads=2),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _until(condition, timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise TimeoutError("drill step timed out")


def _finish(root: Path, store: Store, job_id: int) -> None:
    worker = _worker(root)
    try:
        _until(lambda: queue.get(store, job_id).status == "done")
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def _hashes(store: Store, run_id: str) -> list[tuple]:
    return [(s["step"], s["sha256"], s["mask_sha256"]) for s in store.steps(run_id)]


def run_drill(kills: int = 20, seed: int = 0) -> dict:
    """Kill a worker `kills` times at seeded random progress points; return the drill's figures."""
    spec, rng = drill_spec(), random.Random(seed)
    with tempfile.TemporaryDirectory() as ref_root, tempfile.TemporaryDirectory() as root:
        ref = Store(Path(ref_root))
        _finish(Path(ref_root), ref, api.submit(spec, ref).job_id)
        store = Store(Path(root))
        job_id = api.submit(spec, store, max_attempts=kills + 5).job_id
        survived = 0
        for target in sorted(rng.uniform(0.0, 0.85) for _ in range(kills)):
            worker = _worker(Path(root))
            owns = f":{worker.pid}:"
            _until(
                lambda owns=owns, target=target: (
                    (j := queue.get(store, job_id)).status == "done"
                    or (owns in (j.owner or "") and (j.fraction or 0) >= target)
                )
            )
            worker.kill()
            worker.wait()
            survived += queue.get(store, job_id).status != "done"
        _finish(Path(root), store, job_id)
        expected_rows = len(_hashes(ref, spec.run_id()))
        robust = store.db.execute("SELECT count(*), count(DISTINCT step || attack || eps) FROM robust").fetchone()
        return {
            "kills": kills,
            "kills_mid_run": survived,
            "finished": queue.get(store, job_id).status == "done",
            "attempts": queue.get(store, job_id).attempts,
            "claims_doubled": queue.get(store, job_id).attempts - 1 - survived,
            "steps_lost": expected_rows - len(store.steps(spec.run_id())),
            "robust_rows_duplicated": robust[0] - robust[1],
            "hashes_equal_uninterrupted": _hashes(store, spec.run_id()) == _hashes(ref, spec.run_id()),
            "integrity_check": "ok" if store.integrity_ok() else "FAILED",
        }
