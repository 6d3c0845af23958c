"""This machine's speed for a model, measured once: seconds of one training example-pass, timed in a
second or two and kept in the cache folder per model, data set, width and torch thread count, so an
estimate without history scales its rough guess by how much slower the model is than the one the guess
was measured on (engine.store.estimate.GUESS_BASIS), on this machine."""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.errors import SpecError
from engine.science.data import KNOWN_INFO, DatasetInfo
from engine.science.efficiency import example_pass_seconds
from engine.science.user_data import peek_info
from engine.spec.user_files import resolve
from engine.store.estimate import guess_basis

PROBES_FILE = "probes.json"


GUESS_BATCH = 128
"""The training batch size the rough guess's rates were measured at (engine.store.estimate.GUESS)."""


PROBE_MAX_BATCH = 256
"""The largest batch the probe times (bounded memory and time for a spec with huge batches)."""


def _key(model: str, dataset: str, width: float | None, threads: int, batch: int) -> str:
    return f"{model}|{dataset}|{width}|{threads}|{batch}"


def pass_seconds(
    root: Path,
    model: str,
    dataset: str,
    width: float | None = None,
    data_path: str | None = None,
    batch: int = GUESS_BATCH,
) -> float | None:
    """Seconds of one training example-pass of the model at `batch` images a step on this machine at the
    current thread count: read from the probes file in the cache folder `root`, else timed once and kept
    there. A user's data set (`data_path` inside the data folder) is probed at the shape its file headers
    give; None where they give none. (A small model's step is mostly fixed cost, so the batch matters.)"""
    import torch  # noqa: PLC0415  torch: the thread count keys the probe; callers have loaded it already

    batch = min(batch, PROBE_MAX_BATCH)  # past this a step is all arithmetic: the rate no longer moves
    info = None if dataset in KNOWN_INFO else user_shape(dataset, data_path)
    if dataset not in KNOWN_INFO and info is None:
        return None
    path = root / PROBES_FILE
    shape = f"{dataset}:{info.channels}x{info.size}x{info.num_classes}" if info else dataset
    key = _key(model, shape, width, torch.get_num_threads(), batch)
    probes = _read(path)
    if key not in probes:
        probes[key] = example_pass_seconds(model, dataset, width, batch=batch, info=info)
        _write(path, probes)
    return probes[key]


def user_shape(dataset: str, data_path: str | None) -> DatasetInfo | None:
    """The shape of a user's data set from its file headers (engine.science.user_data.peek_info), None
    when it has no path or the file is not there yet."""
    if data_path is None:
        return None
    try:
        return peek_info(dataset, resolve("data", data_path, "dataset.path"))
    except SpecError:
        return None


def cost_ratio(
    root: Path,
    model: str,
    dataset: str,
    width: float | None = None,
    data_path: str | None = None,
    batch: int = GUESS_BATCH,
) -> float:
    """How many times slower one example-pass of `model` at `batch` images a step is than one of the model
    its rough guess was measured on at the guess's batch, both probed on this machine (1 where a user's
    data set's files give no shape)."""
    seconds = pass_seconds(root, model, dataset, width, data_path, batch)
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
