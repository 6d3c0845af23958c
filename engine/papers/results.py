"""What the store holds for a paper preset's runs: robust, transfer and budget rows tagged by variant."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from engine.spec.runspec import RunSpec
from engine.status import RunStatus
from engine.store.db import Store
from engine.store.frames import budget_frame, robust_frame


@dataclass
class PaperResults:
    """What the store holds for a paper preset's runs (robust, transfer and budget rows, with n and the
    per-image flags of every accuracy), tagged by variant, and each variant's pruning method."""

    run_ids: dict[str, str]
    status: dict[str, str]
    robust: pd.DataFrame
    transfer: pd.DataFrame
    budget: pd.DataFrame
    methods: dict[str, str] = field(default_factory=dict)

    def missing(self) -> list[str]:
        """Variants whose run has not finished."""
        return [label for label, status in self.status.items() if status != RunStatus.DONE]

    def variant(self, label: str, attack: str | None = None, source: str = "robust") -> pd.DataFrame:
        """One variant's rows (optionally one attack) from the robust or transfer table."""
        frame = getattr(self, source)
        frame = frame[frame["variant"] == label]
        return frame[frame["attack"] == attack] if attack else frame


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


def gather(specs: dict[str, RunSpec], store: Store) -> PaperResults:
    """The store's rows for every variant's run (absent runs count as missing)."""
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
    )
