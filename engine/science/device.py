"""Device choice, memory layout and CPU threads: CUDA when present, else the CPU with channels_last
convs and as many torch threads as there are cores left free.

Two cores are easily oversubscribed: a process with two torch threads beside one busy process took
2.9× its quiet time for the same fine-tuning steps, against 2.1× with one thread (40 small_cnn steps:
1.24 s quiet with two threads, 3.57 s busy with two, 2.56 s busy with one). `fit_threads` sizes the
threads to the cores the other processes leave, measured from /proc/stat since the previous fit
(a whole step of a walk), or over a short window when there is none.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn


def default_device() -> torch.device:
    """CUDA when a GPU is visible, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def has_conv(model: nn.Module) -> bool:
    """Whether the model has 2-D convolutions (then channels_last pays off)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def prepare_model(model: nn.Module, device: torch.device | None = None) -> nn.Module:
    """Move a model to the device; channels_last for conv nets (1.3-1.5x on this CPU, exact)."""
    model = model.to(device or default_device())
    if has_conv(model):
        model = model.to(memory_format=torch.channels_last)
    return model


def to_input(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Put an image batch on the model's device in the model's memory layout."""
    device = next(model.parameters()).device
    x = x.to(device, non_blocking=True)
    if x.dim() == 4 and has_conv(model):
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _busy_jiffies() -> tuple[int, int] | None:
    """(CPU time all processes used, CPU time this process used), in clock ticks; None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        mine = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    idle = int(fields[3]) + int(fields[4])  # idle + iowait
    return sum(int(f) for f in fields[:8]) - idle, int(mine[11]) + int(mine[12])  # utime + stime


class LoadMeter:
    """The other processes' CPU load, in cores, averaged since the previous reading.

    Between two steps of a walk that is a whole step's worth of load, read at no cost; a bursty
    neighbour (a browser redrawing a chart) averages out instead of deciding the threads from one
    0.2 s glimpse. The first reading, and one whose previous reading is older than `stale` seconds,
    is taken over a fresh `window` instead.
    """

    def __init__(self, window: float = 0.2, stale: float = 60.0):
        self.window, self.stale = window, stale
        self.last: tuple[tuple[int, int], float] | None = None

    def read(self) -> float | None:
        """Cores' worth of CPU the other processes used since the last reading (None off Linux)."""
        now, sample = time.monotonic(), _busy_jiffies()
        if sample is None:
            return None
        if self.last is None or not self.window <= now - self.last[1] <= self.stale:
            self.last = (sample, now)
            time.sleep(self.window)
            now, sample = time.monotonic(), _busy_jiffies() or sample
        (before, since), self.last = self.last, (sample, now)
        ticks = os.sysconf("SC_CLK_TCK") * (now - since)
        return max(0.0, ((sample[0] - before[0]) - (sample[1] - before[1])) / ticks)


LOAD = LoadMeter()  # one per process: its readings chain from one fit to the next


def others_load(window: float = 0.2) -> float | None:
    """Cores' worth of CPU the *other* processes used over the last `window` seconds (None off Linux)."""
    return LoadMeter(window).read()


def free_core_threads(cap: int, load: float | None) -> int:
    """Threads for this process: the cores the others leave (rounded), at least 1, at most `cap`."""
    if load is None:
        return cap
    return max(1, min(cap, round((os.cpu_count() or 1) - load)))


def fit_threads(cap: int) -> int:
    """Set torch's threads to the cores left free by the other processes since the last fit (at most
    `cap`); the count."""
    threads = free_core_threads(cap, LOAD.read())
    torch.set_num_threads(threads)
    return threads


@contextmanager
def fitted_threads(cap: int | None = None) -> Iterator[int]:
    """Run a block at `fit_threads(cap)` threads (cap: the cores), then restore the previous count."""
    previous = torch.get_num_threads()
    try:
        yield fit_threads(cap or os.cpu_count() or 1)
    finally:
        torch.set_num_threads(previous)
