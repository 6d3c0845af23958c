"""A sweep that fills the cores: 20 smoke-size specs (seeds 0–19, each its own base) run one after
another through the local queue, then as a local Ray sweep of one-core tasks at one torch thread each
(engine.jobs.sweep), each into an empty store. Prints both wall times, their ratio, and the share of the
machine's CPU time that was busy over each (from /proc/stat, every process counted: Ray's own included).
The Ray time includes starting Ray and its workers, as a user waits for them; the Ray utilisation is
given over the whole sweep and over its tasks alone (from the first task submitted, Ray already up, as
on a cluster that is running), with the start's seconds beside them.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

SPECS = 20


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine since boot."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def specs(count: int = SPECS) -> list:
    """`count` smoke specs, one per seed: (label, RunSpec)."""
    from engine import api
    from engine.spec.reading import load_tree

    tree = load_tree(preset="smoke")
    return [(f"seed {seed}", api.validate_tree({**tree, "seed": seed})) for seed in range(count)]


def timed(executor: str, runs: list) -> dict[str, float]:
    """Wall seconds and busy share of the machine's CPU while one sweep runs into an empty store."""
    from engine.jobs.sweep import run_local, run_ray
    from engine.store.db import Store

    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder))
        before, started = cpu_ticks(), time.perf_counter()
        ray = start_ray() if executor == "ray" else None
        tasks_before, tasks_started = cpu_ticks(), time.perf_counter()
        try:
            (run_ray if executor == "ray" else run_local)(runs, store)
        finally:
            if ray is not None:
                ray.shutdown()
        seconds, after = time.perf_counter() - started, cpu_ticks()
        done = sum(store.has_run(spec.run_id()) and store.run(spec.run_id())["status"] == "done" for _, spec in runs)
        store.close()
    return {
        "seconds": round(seconds, 1),
        "utilisation": busy_share(before, after),
        "start_s": round(tasks_started - started, 1),
        "tasks_utilisation": busy_share(tasks_before, after),
        "done": done,
    }


def start_ray():
    """A local Ray instance of this machine's cores, as engine.jobs.sweep.run_ray starts one (it uses one
    already started); returns the module, to shut it down."""
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    return ray


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the machine's CPU ticks between two readings that were busy."""
    return round((after[0] - before[0]) / max(after[1] - before[1], 1), 3)


def run(count: int = SPECS) -> dict:
    """The serial and the Ray sweep of `count` smoke specs: times, ratio, utilisation."""
    runs = specs(count)
    serial = timed("local", runs)
    ray = timed("ray", runs)
    return {
        "specs": count,
        "cores": os.cpu_count(),
        "serial_s": serial["seconds"],
        "serial_utilisation": serial["utilisation"],
        "ray_s": ray["seconds"],
        "ray_utilisation": ray["utilisation"],
        "ray_start_s": ray["start_s"],
        "ray_tasks_utilisation": ray["tasks_utilisation"],
        "ray_speedup": round(serial["seconds"] / ray["seconds"], 2),
        "done": f"{serial['done']} + {ray['done']} of {2 * count}",
    }
