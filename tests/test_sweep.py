"""Sweeps: grid expansion, the local executor through the queue, and Ray tasks on a local instance."""

import json
import subprocess
import sys

import pytest

from engine.errors import SpecError
from engine.jobs.sweep import expand, load_sweep, run_sweep
from engine.store.db import Store
from tests.support import REPO

pytestmark = pytest.mark.slow

GRID = REPO / "presets" / "sweeps" / "smoke-grid.yaml"


def test_grid_expands_to_every_combination_sharing_one_base():
    specs = expand(load_sweep(GRID))
    assert len(specs) == 4 and len({s.run_id() for _, s in specs}) == 4
    assert len({s.base_id() for _, s in specs}) == 1
    assert {label for label, _ in specs} >= {"schedule.final_sparsity=0.5, prune.method=random"}


def test_a_bad_grid_value_names_the_combination_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: smoke\ngrid:\n  schedule.final_sparsity: [0.5, 1.5]\n")
    with pytest.raises(SpecError) as info:
        expand(load_sweep(bad))
    assert info.value.problems == ["[schedule.final_sparsity=1.5] schedule.final_sparsity: input should be less than 1"]


def test_local_sweep_runs_through_the_queue_and_reruns_compute_nothing(tmp_path):
    store = Store(tmp_path)
    first = run_sweep(GRID, store, "local")
    assert [r["status"] for r in first] == ["done"] * 4
    assert store.db.execute("SELECT count(*) FROM bases").fetchone()[0] == 1
    jobs_before = store.db.execute("SELECT count(*) FROM jobs").fetchone()[0]
    again = run_sweep(GRID, store, "local")
    assert again == first and store.db.execute("SELECT count(*) FROM jobs").fetchone()[0] == jobs_before


def test_ray_sweep_lands_in_the_same_store_and_skips_finished_runs(tmp_path):
    store = Store(tmp_path)
    partial = tmp_path / "partial.yaml"
    partial.write_text("preset: smoke\ngrid:\n  prune.method: [random]\n")
    (done,) = run_sweep(partial, store, "local")  # one of the four is already done
    finished_before = store.run(done["run_id"])["finished_at"]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "--cache-dir",
            str(tmp_path),
            "sweep",
            str(GRID),
            "--executor",
            "ray",
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(out.stdout)
    assert [r["status"] for r in rows] == ["done"] * 4
    for row in rows:
        steps = store.steps(row["run_id"])
        assert len(steps) == 3 and all((store.root / s["checkpoint"]).is_file() for s in steps)
    assert store.run(done["run_id"])["finished_at"] == finished_before  # not computed again
    assert store.integrity_ok()


def test_a_refused_grid_value_is_quoted_short_and_escaped(tmp_path):
    """Issue 29: refusals of sweep grid values echoed up to 5,000 characters, raw newlines and ANSI escapes."""
    hostile = "x\\n\\u001b[31m" + "y" * 5000
    bad = tmp_path / "bad.yaml"
    bad.write_text(f'preset: smoke\ngrid:\n  model.name: ["{hostile}"]\n')
    with pytest.raises(SpecError) as info:
        expand(load_sweep(bad))
    text = "\n".join(info.value.problems)
    assert "\x1b" not in text and len(text) < 400 and "\\x1b[31m" in text


def test_a_ray_task_asks_for_its_cores_and_a_gpu_where_the_cluster_has_them():
    from engine.jobs.sweep import TASK_CPUS, task_resources

    assert task_resources({"CPU": 16.0}) == {"num_cpus": TASK_CPUS, "num_gpus": 0}
    assert task_resources({"CPU": 16.0, "GPU": 4.0}) == {"num_cpus": TASK_CPUS, "num_gpus": 1}


def test_a_ray_task_trains_at_its_share_of_the_cores(monkeypatch, tmp_path):
    """Tasks × threads ≤ cores: the task body runs its spec at TASK_CPUS torch threads, not torch's default
    (every core), which two concurrent tasks would oversubscribe."""
    from engine import ENGINE_VERSION
    from engine.jobs import sweep

    seen = {}

    def run_pipeline(spec, store, threads=None):
        seen["threads"] = threads
        store.begin_run(spec.run_id(), spec.base_id(), spec.canonical_json(), ENGINE_VERSION, 1)
        store.finish_run(spec.run_id())

    monkeypatch.setattr(sweep, "run_pipeline", run_pipeline)
    spec = sweep.expand(sweep.load_sweep(GRID))[0][1]
    bundle = sweep.compute_bundle(spec.canonical_json(), None)
    assert seen == {"threads": sweep.TASK_CPUS} and bundle["run"]["run_id"] == spec.run_id()


def test_on_a_ray_instance_that_declares_gpus_each_task_holds_one_of_its_own():
    """A local Ray instance declaring two GPUs (a custom resource count; no GPU needed): the resources the
    engine asks for, read off the running cluster, give each task exactly one GPU, and two tasks running
    at once hold different ones, as a paper preset's variants spread over a cluster's GPUs."""
    ray = pytest.importorskip("ray")
    from engine.jobs.sweep import task_resources

    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        resources = task_resources(ray.cluster_resources())

        @ray.remote(**resources)
        def held(barrier):
            ray.get(barrier.arrive.remote())
            while ray.get(barrier.count.remote()) < 2:  # both tasks hold their GPU at the same moment
                pass
            return ray.get_gpu_ids()

        @ray.remote(num_cpus=0)
        class Barrier:
            def __init__(self):
                self.arrived = 0

            def arrive(self):
                self.arrived += 1

            def count(self):
                return self.arrived

        barrier = Barrier.remote()  # type: ignore[attr-defined]  # ray.remote turns the class into an ActorClass
        first, second = ray.get([held.remote(barrier), held.remote(barrier)], timeout=120)
    finally:
        ray.shutdown()
    assert resources["num_gpus"] == 1
    assert len(first) == 1 and len(second) == 1 and first != second
