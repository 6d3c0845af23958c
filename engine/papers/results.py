"""What the store holds for a paper preset's runs: robust, transfer and budget rows tagged by variant."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from engine.report.flags import pack_flags, unpack_flags
from engine.spec.runspec import TEST_SPLIT_SIZES, RunSpec
from engine.status import RunStatus
from engine.store.db import Store
from engine.store.frames import budget_frame, efficiency_frame, layers_frame, robust_frame


@dataclass
class PaperResults:
    """What the store holds for a paper preset's runs (robust, transfer, budget and efficiency rows, with
    n and the per-image flags of every accuracy), tagged by run label (`variant`), and each run's pruning
    method and grid level (variant of the preset, grid value or None)."""

    run_ids: dict[str, str]
    status: dict[str, str]
    robust: pd.DataFrame
    transfer: pd.DataFrame
    budget: pd.DataFrame
    methods: dict[str, str] = field(default_factory=dict)
    efficiency: pd.DataFrame = field(default_factory=pd.DataFrame)
    levels: dict[str, tuple[str, Any]] = field(default_factory=dict)
    layers: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_test: int = 0  # images in the data set's test split: how far an evaluation may grow

    def missing(self) -> list[str]:
        """Variants whose run has not finished."""
        return [label for label, status in self.status.items() if status != RunStatus.DONE]

    def variant(self, label: str, attack: str | None = None, source: str = "robust") -> pd.DataFrame:
        """One variant's rows (optionally one attack) from the robust or transfer table."""
        frame = getattr(self, source)
        frame = frame[frame["variant"] == label]
        return frame[frame["attack"] == attack] if attack else frame

    def finals(self, attack: str) -> pd.DataFrame:
        """With a grid: each run's last checkpoint, plus the dense step of one run per variant, with the
        preset variant in `variant` (one curve per final sparsity); without one, the robust rows."""
        frame = self.robust[self.robust["attack"] == attack] if not self.robust.empty else self.robust
        if frame.empty or all(value is None for _, value in self.levels.values()):
            return frame
        last = frame.groupby("variant")["step"].transform("max")
        first_runs = [next(iter(self.grid(variant).values())) for variant in self.variants()]
        dense = frame[(frame["step"] == 0) & frame["variant"].isin(first_runs)]
        picked = pd.concat([dense, frame[(frame["step"] == last) & (frame["step"] > 0)]])
        return picked.assign(variant=picked["variant"].map(lambda label: self.levels[label][0]))

    def grown_n(self, attack: str) -> tuple[int, int] | None:
        """(images every checkpoint of `attack` has now, the runs' own n) when some grew beyond their own
        images to decide the claim (engine/report/sequential.py's plan), else None."""
        rows = self.robust[self.robust["attack"] == attack] if not self.robust.empty else self.robust
        if rows.empty or rows["n"].isna().any() or (rows["n"] <= rows["n_own"]).all():
            return None
        return int(rows["n"].min()), int(rows["n_own"].max())

    def truncated(self, attack: str, n: int) -> "PaperResults":
        """The same results with `attack`'s rows cut to their first `n` images (a planned look)."""
        frame = self.robust.copy()
        cut = (frame["attack"] == attack) & (frame["n"] > n) & frame["correct"].map(lambda c: isinstance(c, bytes))
        for index in frame.index[cut]:
            flags = unpack_flags(frame.at[index, "correct"], int(frame.at[index, "n"]))[:n]
            frame.at[index, "correct"], frame.at[index, "n"] = pack_flags(flags), n
            frame.at[index, "acc"] = float(flags.mean())
        return replace(self, robust=frame)

    def variants(self) -> list[str]:
        """The preset's variants, in order (without a grid: the run labels)."""
        return list(dict.fromkeys(group for group, _ in self.levels.values()))

    def grid(self, variant: str) -> dict[Any, str]:
        """A preset variant's runs across the grid: grid value → run label, in the preset's order."""
        return {value: label for label, (group, value) in self.levels.items() if group == variant}


def _tagged(frame: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """Rows tagged with their variant label, in the preset's order of variants (then by step)."""
    if frame.empty:
        return frame.assign(variant=[])
    order = {run_id: i for i, run_id in enumerate(labels)}
    frame = frame.assign(variant=frame["run_id"].map(labels), _order=frame["run_id"].map(order))
    by = ["_order", "step"] if "step" in frame else ["_order"]
    return frame.sort_values(by, kind="stable").drop(columns="_order").reset_index(drop=True)


def _with_targets(frame: pd.DataFrame, store: Store) -> pd.DataFrame:
    """Add each step's target sparsity (structured methods leave dense layers, so achieved differs)."""
    steps = [
        {"run_id": r, "step": s["step"], "target_sparsity": s["target_sparsity"]}
        for r in frame["run_id"].unique()
        for s in store.steps(r)
    ]
    targets = pd.DataFrame(steps, columns=["run_id", "step", "target_sparsity"])
    return frame.merge(targets, on=["run_id", "step"], how="left")


def gather(specs: dict[str, RunSpec], store: Store, levels: dict[str, tuple[str, Any]] | None = None) -> PaperResults:
    """The store's rows for every labelled run (absent runs count as missing); `levels` maps each label
    to its preset variant and grid value (default: each label its own variant, no grid)."""
    run_ids = {label: spec.run_id() for label, spec in specs.items()}
    labels = {run_id: label for label, run_id in run_ids.items()}
    status = {label: store.run(r)["status"] if store.has_run(r) else RunStatus.MISSING for label, r in run_ids.items()}
    present = [run_ids[label] for label, state in status.items() if state != RunStatus.MISSING]
    return PaperResults(
        run_ids=run_ids,
        status=status,
        robust=_tagged(_with_targets(robust_frame(present, store, flags=True), store), labels),
        transfer=_tagged(_with_targets(robust_frame(present, store, "transfer", flags=True), store), labels),
        budget=_tagged(budget_frame(present, store), labels),
        methods={label: spec.prune.method for label, spec in specs.items()},
        efficiency=_tagged(efficiency_frame(present, store), labels),
        levels=levels or {label: (label, None) for label in specs},
        layers=_tagged(_layers(present, store), labels),
        n_test=_split_size(next(iter(specs.values()))) if specs else 0,
    )


def _split_size(spec: RunSpec) -> int:
    """Test images the spec's data set holds (its own n where the split's size is not known beforehand)."""
    return TEST_SPLIT_SIZES.get(spec.dataset.name, spec.eval.n_samples)


def _layers(run_ids: list[str], store: Store) -> pd.DataFrame:
    """The per-layer rows (MRS, ratio, sizes) of the runs' every step."""
    frames = [layers_frame(run_id, store) for run_id in run_ids]
    frames = [frame for frame in frames if not frame.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run_id", "step", "layer"])
