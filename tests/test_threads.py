"""CPU threads: a process takes the cores the others leave free, never more than its share."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engine.jobs.worker import child_command, worker_threads
from engine.science import device


@pytest.mark.parametrize(
    ("load", "cap", "threads"),
    [(None, 2, 2), (0.0, 2, 2), (0.0, 1, 1), (1.0, 2, 1), (1.6, 2, 1), (0.4, 2, 2), (7.0, 2, 1)],
)
def test_threads_are_the_cores_the_others_leave_within_the_share(monkeypatch, load, cap, threads):
    monkeypatch.setattr(device.os, "cpu_count", lambda: 2)
    assert device.free_core_threads(cap, load) == threads


def test_a_spinning_neighbour_counts_as_load_and_this_process_does_not():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        load = device.others_load(window=0.5)
    finally:
        busy.kill()
    if load is None:
        pytest.skip("no /proc/stat here")
    assert load > 0.5  # one core's worth, minus scheduling slack
    spent = sum(i * i for i in range(2_000_000))  # this process's own work is not another's load
    assert spent > 0 and device.others_load(window=0.2) is not None


def test_fitted_threads_restore_the_previous_count():
    import torch

    before = torch.get_num_threads()
    with device.fitted_threads(cap=1) as threads:
        assert threads == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("cores", [1, 2, 4, 16])
def test_workers_times_threads_never_exceed_the_cores(tmp_path, cores):
    for procs in range(1, cores + 1):
        command = child_command(tmp_path, 30.0, None, worker_threads(procs, cores))
        assert 1 <= int(command[command.index("--threads") + 1]) * procs <= cores


def test_the_meter_averages_the_load_since_its_previous_reading():
    meter = device.LoadMeter(window=0.2)
    if meter.read() is None:
        pytest.skip("no /proc/stat here")
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time; end = time.time() + 1.0\nwhile time.time() < end: pass"]
    )
    busy.wait()  # one core spun for about a second, then stopped: a fresh 0.2 s glimpse would see nothing
    assert device.LoadMeter(window=0.2).read() < 0.5
    assert meter.read() > 0.3  # the reading chained from the previous one saw the burst


def test_training_runs_at_the_workers_share_however_busy_the_machine(tmp_path, monkeypatch):
    """Checkpoints depend on torch's thread count, so training never follows the load (evaluation may)."""
    import torch

    from engine import api, pipeline
    from engine.store.db import Store

    seen: list[int] = []
    real = pipeline.train_steps

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "train_steps", recording)
    monkeypatch.setattr(device.LOAD, "read", lambda: 1.9)  # another process holds almost both cores
    monkeypatch.setattr(device.os, "cpu_count", lambda: 2)
    before = torch.get_num_threads()
    try:
        pipeline.run(api.load_spec(preset="smoke"), Store(tmp_path), threads=2)
        assert seen and set(seen) == {2}
    finally:
        torch.set_num_threads(before)


TRAIN_AND_HASH = """
import hashlib, os, torch
import engine  # sets GOMP_SPINCOUNT before torch's OpenMP starts
from engine.science.data import load_dataset
from engine.science.device import prepare_model
from engine.science.models import build_model
from engine.science.training import train_steps
torch.set_num_threads(2)
data = load_dataset("synthetic")
torch.manual_seed(0)
model = prepare_model(build_model("small_cnn", data.info), torch.device("cpu"))
generator = torch.Generator().manual_seed(0)
train_steps(model, data.x_train, data.y_train, steps=8, batch_size=64, lr=1e-3, generator=generator)
weights = b"".join(p.detach().numpy().tobytes() for p in model.parameters())
print(os.environ["GOMP_SPINCOUNT"], hashlib.sha256(weights).hexdigest())
"""


@pytest.mark.slow
def test_the_openmp_spin_count_changes_waiting_not_the_weights():
    def trained(env: dict) -> tuple[str, str]:
        out = subprocess.run(
            [sys.executable, "-c", TRAIN_AND_HASH], env=env, capture_output=True, text=True, check=True
        )
        first, second = out.stdout.split()[-2:]
        return first, second

    base = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    ours = trained(base)
    libgomp_default = trained(base | {"GOMP_SPINCOUNT": "300000"})
    assert ours[0] == "8000" and libgomp_default[0] == "300000"  # the engine's default, and a user's value kept
    assert ours[1] == libgomp_default[1]
