"""The Runs page's form as a raw spec tree: the choices a person makes, laid over a preset.

Pure: it builds a tree and never validates it, so the spec's own validation names a bad field
exactly as it would in a YAML file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

SAME_AS_BASE = "same as base"
"""The fine-tuning choice that keeps the base's training loss."""

STEP_BATCHES = 100
"""Training batches between two pruning steps (gradual frequency, one-shot fine-tuning)."""


@dataclass(frozen=True)
class FormChoices:
    """What the form asks: method, schedule shape, losses, attack grid, seed and the MRS probe."""

    method: str = "global_magnitude"
    schedule: str = "gradual"  # "gradual" or "one-shot"
    final_sparsity: float = 0.9
    steps: int = 5
    base_mode: str = "natural"
    finetune: str = SAME_AS_BASE
    train_eps: float = 0.1
    eps_text: str = "0, 0.01, 0.02, 0.04, 0.08"
    seed: int = 0
    mrs: bool = False


def parse_eps(text: str) -> list[float] | str:
    """Comma-separated ε values as floats; the text itself when it does not parse (validation names it)."""
    try:
        return [float(e) for e in text.split(",") if e.strip()]
    except ValueError:
        return text


def schedule_tree(shape: str, final_sparsity: float, steps: int) -> dict[str, Any]:
    """A gradual schedule over `steps` pruning steps, or one-shot targets rising evenly to the final sparsity."""
    if shape == "gradual":
        return {
            "name": "gradual",
            "final_sparsity": final_sparsity,
            "begin": 0,
            "end": STEP_BATCHES * steps,
            "frequency": STEP_BATCHES,
        }
    targets = [round(final_sparsity * (k + 1) / steps, 4) for k in range(steps)]
    return {"name": "one_shot", "targets": targets, "finetune_steps": STEP_BATCHES}


def form_tree(preset_tree: dict[str, Any], choices: FormChoices) -> dict[str, Any]:
    """The raw spec the form describes, on top of a preset's tree (which is not modified)."""
    tree = copy.deepcopy(preset_tree)
    adversary = {"eps": float(choices.train_eps)}
    prune = {**tree.get("prune", {}), "method": choices.method}
    if choices.finetune != SAME_AS_BASE:
        prune.update({"mode": choices.finetune, "adversary": adversary})
    tree.update(
        {
            "prune": prune,
            "seed": int(choices.seed),
            "schedule": schedule_tree(choices.schedule, choices.final_sparsity, choices.steps),
            "train": {**tree.get("train", {}), "mode": choices.base_mode, "adversary": adversary},
        }
    )
    attacks = [{"name": "pgd_linf", "eps": parse_eps(choices.eps_text), "steps": 10}]
    tree["eval"] = {**tree.get("eval", {}), "attacks": attacks}
    if choices.mrs:
        tree["eval"]["mrs"] = {}
    return tree
