"""This machine's speed for a model, measured once: seconds of one training example-pass, timed in a
second or two and kept in the cache folder per model, data set, width and torch thread count, so an
estimate without history scales its rough guess by how much slower the model is than the one the guess
was measured on (engine.store.estimate.GUESS_BASIS), on this machine."""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.science.efficiency import example_pass_seconds
from engine.store.estimate import guess_basis

PROBES_FILE = "probes.json"


def _key(model: str, dataset: str, width: float | None, threads: int) -> str:
    return f"{model}|{dataset}|{width}|{threads}"


def pass_seconds(root: Path, model: str, dataset: str, width: float | None = None) -> float | None:
    """Seconds of one training example-pass of the model on this machine at the current thread count:
    read from the probes file in the cache folder `root`, else timed once and kept there. None for a data
    set whose shape only its files tell."""
    import torch  # noqa: PLC0415  torch: the thread count keys the probe; callers have loaded it already

    path = root / PROBES_FILE
    key = _key(model, dataset, width, torch.get_num_threads())
    probes = _read(path)
    if key not in probes:
        probes[key] = example_pass_seconds(model, dataset, width)
        _write(path, probes)
    return probes[key]


def cost_ratio(root: Path, model: str, dataset: str, width: float | None = None) -> float:
    """How many times slower one example-pass of `model` is than one of the model its rough guess was
    measured on, both probed on this machine (1 where the data set's shape is known only from its files)."""
    seconds = pass_seconds(root, model, dataset, width)
    basis = pass_seconds(root, *guess_basis(model))
    return seconds / basis if seconds and basis else 1.0


def _read(path: Path) -> dict[str, float | None]:
    try:
        probes = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or a damaged file: probe again
    return probes if isinstance(probes, dict) else {}


def _write(path: Path, probes: dict[str, float | None]) -> None:
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(probes, indent=1, sort_keys=True), encoding="utf-8")
        temporary.replace(path)
    except OSError:
        temporary.unlink(missing_ok=True)  # a read-only cache: the probe is timed again next time
