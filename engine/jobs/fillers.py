"""What fills an empty Explore view: the runs to queue, derived from a run the user already has.

Layers reads each layer's MRS at every checkpoint, Budget the budgets that AP and BAP fine-tune
with, Transfer a run that also scores every pruned checkpoint on examples crafted against its base,
Compare a second run on the same base. Each filler is a parent's spec with the fields its view reads
switched on: the parent's trained base is reused (and its dense point, where evaluation is
unchanged), so only pruning and evaluation compute. With no parent, the teaching preset is one.
A browser user fills a view with one click; the CLI line is a hint, never the only way.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from engine.spec.reading import load_tree, set_path
from engine.spec.runspec import RunSpec
from engine.status import RunStatus
from engine.store.db import Store
from engine.store.estimate import duration, estimate

DEFAULT_PRESET = "teaching"

FILLS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "layers": ("each layer's MRS measured at every checkpoint", [{"eval.mrs": {}}]),
    "budget": (
        "fine-tuning with a fixed adversarial budget (AP) and with BAP's per-example budget",
        [{"prune.mode": "ap"}, {"prune.mode": "bap"}],
    ),
    "transfer": (
        "every pruned checkpoint also scored on examples crafted against the base",
        [{"eval.transfer": True}],
    ),
    "compare": (
        "the same base pruned at random instead, the pruning criterion's control",
        [{"prune.method": "random"}],
    ),
}
"""View → (what its runs do, one dict of dotted overrides per run)."""


@dataclass(frozen=True)
class Filler:
    """The runs that fill one view: their specs, what they do, their parent and their estimated cost."""

    view: str
    purpose: str
    parent: str | None
    specs: list[RunSpec]
    seconds: float

    def line(self) -> str:
        """One sentence for the button's caption: what will run, from what, and for how long."""
        runs = f"{len(self.specs)} run{'s' if len(self.specs) > 1 else ''}"
        source = f"run {self.parent[:12]}" if self.parent else f"the {DEFAULT_PRESET} preset"
        return (
            f"Queues {runs} forked from {source} (its trained base reused): {self.purpose}; "
            f"≈ {duration(self.seconds)} on this machine."
        )


BUDGET_STEPS = 12
"""Fine-tuning batches per level of the tour's AP and BAP runs (the teaching preset takes 50): an attack
per batch makes AP's batches 3 times dearer and BAP's (a DeepFool step is a backward per class) 10 times;
at 12 AP already buys 15–25 pt at ε = 0.1 over natural fine-tuning."""

LEAN_PGD = {"name": "pgd_linf", "steps": 10, "random_start": True}
"""The tour's side runs attack at three ε rather than the surface's five: Layers reads no curve at all,
Transfer and Budget one ε at a time, and the surface run already draws the full grid."""

TOUR: list[tuple[str, dict[str, Any]]] = [
    ("surface", {}),
    ("layers", {"eval.mrs": {}, "eval.transfer": True, "eval.attacks": [{**LEAN_PGD, "eps": [0, 0.01, 0.04, 0.1]}]}),
    ("compare", {"prune.method": "random"}),
    *(
        ("budget", {"prune.mode": mode, "schedule.finetune_steps": BUDGET_STEPS, "eval.n_samples": 500,
                    "eval.attacks": [{**LEAN_PGD, "eps": [0, 0.02, 0.04, 0.1]}]})
        for mode in ("ap", "bap")
    ),
]  # fmt: skip
"""The tour, in the order it runs: the teaching surface first, then one run filling Layers and Transfer,
a random-pruning sibling for Compare (the surface's grid, so the two compare at every ε), and AP and BAP
for Budget (BUDGET_STEPS batches per level, 500 images: they compare with each other), all on the
teaching run's base. Measured from the click with Chromium on Home, 2 cores (2026-12-03): 237 s with
every side run at the surface's grid and 1,000 images, which this trims."""


@dataclass(frozen=True)
class Tour:
    """The tour's runs, each with the Explore view it fills, and their estimated cost."""

    views: list[str]
    specs: list[RunSpec]
    seconds: float
    first_seconds: float

    def line(self) -> str:
        """The button's caption: what it computes and for how long."""
        return (
            f"{len(self.specs)} runs on one trained base, queued in this order: the teaching surface first "
            f"(≈ {duration(self.first_seconds)}), then Layers and Transfer, Compare, and Budget (AP and BAP); "
            f"≈ {duration(self.seconds)} in all on this machine. Each page fills as its run lands."
        )


def tour(store: Store) -> Tour:
    """Every Explore view filled from one click: the teaching preset's run and the runs forked from its
    spec that fill the other views (TOUR), with their estimated cost on this machine."""
    tree = load_tree(preset=DEFAULT_PRESET)
    specs = [_forked(tree, change) for _, change in TOUR]
    seconds = [estimate(spec, store).seconds for spec in specs]
    return Tour([view for view, _ in TOUR], specs, sum(seconds), seconds[0])


def filler(view: str, store: Store, parent: str | None = None) -> Filler:
    """The runs that fill `view` ("layers", "budget", "transfer", "compare"), forked from run `parent`
    (None: the newest finished run, else the teaching preset)."""
    if view not in FILLS:
        raise ValueError(f"view: one of {sorted(FILLS)}, not {view!r}")
    parent = parent or newest_finished(store)
    tree = json.loads(store.run(parent)["spec_json"]) if parent else load_tree(preset=DEFAULT_PRESET)
    purpose, changes = FILLS[view]
    specs = [_forked(tree, _contrasting(tree, change)) for change in changes]
    return Filler(view, purpose, parent, specs, sum(estimate(spec, store).seconds for spec in specs))


def newest_finished(store: Store) -> str | None:
    """The most recently created run that finished, or None."""
    done = [r for r in store.runs() if r["status"] == RunStatus.DONE]
    return max(done, key=lambda r: r["created_at"])["run_id"] if done else None


def _contrasting(tree: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """A random-pruning sibling of a run that already prunes at random prunes by magnitude instead."""
    if change.get("prune.method") == "random" and tree.get("prune", {}).get("method") == "random":
        return {"prune.method": "global_magnitude"}
    return change


def _forked(tree: dict[str, Any], change: dict[str, Any]) -> RunSpec:
    from engine.science.catalog import validate  # noqa: PLC0415  the registries load torch: only when a filler is built

    child = copy.deepcopy(tree)
    for path, value in change.items():
        set_path(child, path, value)
    return validate(child)
