"""Hand-made stores for the paper presets: every variant's run written with chosen accuracies, no training.

`fill_paper(store, name, accuracy)` writes each variant of the named preset under its real run id,
one step per checkpoint of its schedule, every attack × ε of its spec (and transfer rows when the
spec asks for them). `accuracy(variant, step, target, attack, eps)` returns (clean, robust, transfer).
"""

from __future__ import annotations

from typing import Callable

from engine import api
from engine.store import Store

BUDGET = {"norm": "RMS-L2", "batches": 10, "examples": 1280, "cutoff": 0.05, "budget_mean": 0.04,
          **{f"budget_q{q}": q / 2000 for q in (10, 25, 50, 75, 90)}}
Accuracy = Callable[[str, int, float, str, float], tuple[float, float, float]]


def _norm(attack: str) -> str:
    return {"deepfool": "L2", "pgd_l2": "L2", "cw_l2": "L2", "jsma_l0": "L0"}.get(attack, "Linf")


def fill_paper(store: Store, name: str, accuracy: Accuracy, only: list[str] | None = None) -> dict[str, str]:
    """Write the preset's variants (or `only` those) as finished runs; variant label → run id."""
    written = {}
    for label, spec in api.paper_specs(name).items():
        if only is not None and label not in only:
            continue
        run_id, targets = spec.run_id(), [0.0] + [step.sparsity for step in spec.schedule.plan()]
        store.begin_run(run_id, spec.base_id(), spec.canonical_json(), "test", len(targets))
        for step, target in enumerate(targets):
            robust, moved, clean = [], [], None
            for attack in spec.eval.attacks:
                for eps in attack.eps:
                    clean, acc, transfer = accuracy(label, step, target, attack.name, eps)
                    point = {"attack": attack.name, "norm": _norm(attack.name), "eps": eps}
                    robust.append(point | {"acc": clean if eps == 0 else acc})
                    moved.append(point | {"acc": clean if eps == 0 else transfer})
            store.put_step({"run_id": run_id, "step": step, "target_sparsity": target, "sparsity": target,
                            "clean_acc": clean, "checkpoint": "x", "sha256": "0", "mask_checkpoint": "x",
                            "mask_sha256": "0", "train_seconds": 1.0, "eval_seconds": 1.0},
                           robust, [], transfer=moved if spec.eval.transfer else (),
                           budget=BUDGET if step and spec.finetune_mode()[0] in ("ap", "bap") else None)
        store.finish_run(run_id)
        written[label] = run_id
    return written
