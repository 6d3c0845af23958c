"""Hand-made stores for the paper presets: every variant's run written with chosen accuracies, no training.

`fill_paper(store, name, accuracy)` writes each variant of the named preset under its real run id,
one step per checkpoint of its schedule, every attack × ε of its spec (and transfer rows when the
spec asks for them). `accuracy(variant, step, target, attack, eps)` returns (clean, robust, transfer).

Every accuracy a is written with its per-example flags: the first round(a·n) images of a fixed
order are right. With `shared=True` every variant uses the same order (nested flags: differences
are exact, as between checkpoints that fail on the hardest images first); with `shared=False`
each variant has its own order, so variants agree only by chance (differences carry full noise).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

from engine import ENGINE_VERSION, api
from engine.report.stats import pack_flags
from engine.store.db import StepRecord, Store

BUDGET = {
    "norm": "RMS-L2",
    "batches": 10,
    "examples": 1280,
    "cutoff": 0.05,
    "budget_mean": 0.04,
    **{f"budget_q{q}": q / 2000 for q in (10, 25, 50, 75, 90)},
}
Accuracy = Callable[[str, int, float, str, float], tuple[float, float, float]]
Size = Callable[[str, float], float]
"""(run label, target sparsity) → parameters of the checkpoint (shrunk or effective)."""
DENSE_PARAMS = 10_000


def nominal_size(label: str, target: float) -> float:
    """Parameters falling with the target sparsity."""
    return DENSE_PARAMS * (1 - target)


def _efficiency(params: float) -> dict:
    """An efficiency row of a checkpoint with `params` parameters (the other figures are not read)."""
    zero = dict.fromkeys(("flops", "sparse_flops", "size_bytes", "latency_ms_b1", "latency_ms_b128"), 1.0)
    return zero | {
        "params": DENSE_PARAMS,
        "nonzero_params": int(params),
        "compression_ratio": DENSE_PARAMS / params,
        "theoretical_speedup": 1.0,
        "effective_params": int(params),
        "effective_sparsity": 1 - params / DENSE_PARAMS,
        "effective_compression": DENSE_PARAMS / params,
        "shrunk_params": int(params),
    }


def _layers(target: float) -> list[dict]:
    """Two conv layers with an MRS each, pruned unevenly to the target (as MRPF would)."""
    return [
        {
            "layer": name,
            "kind": "conv",
            "numel": 100,
            "nonzero": 100,
            "sparsity": 0.0,
            "prunable": True,
            "ratio_mrs": mrs,
        }
        | ({"ratio": ratio * target} if target else {})
        for name, mrs, ratio in (("conv1", 0.8, 0.5), ("conv2", 0.2, 1.5))
    ]


def _norm(attack: str) -> str:
    return {"deepfool": "L2", "pgd_l2": "L2", "cw_l2": "L2", "jsma_l0": "L0"}.get(attack, "Linf")


def _measured(acc: float, order: np.ndarray) -> dict:
    """The accuracy as the store keeps it: k / n, with the flags of those k images."""
    right = np.zeros(len(order), dtype=bool)
    right[order[: int(round(acc * len(order)))]] = True
    return {"acc": int(right.sum()) / len(order), "n": len(order), "correct": pack_flags(right)}


def fill_paper(
    store: Store,
    name: str,
    accuracy: Accuracy,
    only: list[str] | None = None,
    shared: bool = True,
    size: Size = nominal_size,
) -> dict[str, str]:
    """Write the preset's variants (or `only` those) as finished runs; variant label → run id. Each step
    has an efficiency row (`size` parameters) and MRPF's steps a layer table with MRS values."""
    written = {}
    for label, spec in api.paper_specs(name).items():
        if only is not None and label not in only:
            continue
        seed = 0 if shared else zlib.crc32(label.encode())
        order = np.random.default_rng(seed).permutation(spec.eval.n_samples)
        run_id, targets = spec.run_id(), [0.0] + [step.sparsity for step in spec.schedule.plan()]
        store.begin_run(run_id, spec.base_id(), spec.canonical_json(), ENGINE_VERSION, len(targets))
        for step, target in enumerate(targets):
            robust, moved, clean = [], [], None
            for attack in spec.scored_by(target):
                for eps in attack.eps:
                    clean, acc, transfer = accuracy(label, step, target, attack.name, eps)
                    point = {"attack": attack.name, "norm": _norm(attack.name), "eps": eps}
                    white, moved_acc = (clean, clean) if eps == 0 else (acc, transfer)
                    robust.append(point | _measured(white, order))
                    moved.append(point | _measured(moved_acc, order))
            store.put_step(
                StepRecord(
                    {
                        "run_id": run_id,
                        "step": step,
                        "target_sparsity": target,
                        "sparsity": target,
                        "clean_acc": int(round(clean * len(order))) / len(order),
                        "checkpoint": "x",
                        "sha256": "0",
                        "mask_checkpoint": "x",
                        "mask_sha256": "0",
                        "train_seconds": 1.0,
                        "eval_seconds": 1.0,
                    },
                    robust,
                    _layers(target) if spec.prune.method == "mrpf" else [],
                    transfer=moved if spec.eval.transfer else (),
                    efficiency=_efficiency(size(label, target)),
                    budget=BUDGET if step and spec.finetune_mode()[0] in ("ap", "bap") else None,
                )
            )
        store.finish_run(run_id)
        written[label] = run_id
    return written


NAMES = ["bap", "hydra", "hydra_smoothing", "mrpf", "pfa", "transfer"]
"""The paper presets, one per seed paper."""


# ---- accuracies under which each claim holds, and under which it fails --------------------------


def hydra_holds(variant, step, target, attack, eps):
    lwm = {0: 0.6, 1: 0.5, 2: 0.45, 3: 0.3}[step]
    return 0.8, lwm + (0.1 * step / 3 if variant == "HYDRA" else 0), 0


def hydra_fails(variant, step, target, attack, eps):
    clean, robust, _ = hydra_holds(variant, step, target, attack, eps)
    return clean, robust - (0.05 * step if variant == "HYDRA" else 0), 0


def bap_holds(label, step, target, attack, eps):
    variant, level = label.split(" @ ")
    wobble = 0.1 * (float(level) > 0.8)  # the two sparsest runs lose robustness under AP
    return {
        "natural GP": (0.9, 0.1 + wobble),
        "AP δ=0.02": (0.85, 0.3 - 2 * wobble),
        "AP δ=0.1": (0.8, 0.5 - 2 * wobble),
        "BAP": (0.83, 0.4),
    }[variant] + (0,)


def bap_fails(label, step, target, attack, eps):
    clean, robust, _ = bap_holds(label, step, target, attack, eps)
    return clean, (0.8 * float(label.split(" @ ")[1]) - 0.2 if label.startswith("BAP") else robust), 0


def pfa_holds(variant, step, target, attack, eps):
    cr = 1 / (1 - target)
    if variant == "unstructured global":
        return (0.9 if cr <= 16 else 0.7), (0.41 if cr == 2 else 0.4 - 0.01 * step), 0
    if variant == "filter global":
        return (0.9 if cr < 4 else 0.5), (0.4 if step == 0 else 0.2), 0
    return 0.9 - 0.01 * step, (0.4 if step == 0 else 0.3), 0


def pfa_fails(variant, step, target, attack, eps):
    clean, robust, _ = pfa_holds(variant, step, target, attack, eps)
    return (0.9 if variant == "filter global" else clean), (0.6 if variant == "filter global" and step else robust), 0


def transfer_holds(variant, step, target, attack, eps):
    return 0.9, 0.3 - 0.1 * target, 0.3


def transfer_fails(variant, step, target, attack, eps):
    return 0.9, 0.3, (0.3 if step == 0 else 0.1)


def mrpf_holds(variant, step, target, attack, eps):
    robust = {"MRPF": 0.5, "uniform L1": 0.45, "uniform random": 0.44, "uniform L1 without fine-tuning": 0.2}[variant]
    return 0.8, (0.55 if step == 0 else robust), 0


def mrpf_fails(variant, step, target, attack, eps):
    robust = {"MRPF": 0.3, "uniform L1": 0.45, "uniform random": 0.2, "uniform L1 without fine-tuning": 0.44}[variant]
    return 0.8, (0.55 if step == 0 else robust), 0


SCENARIOS = {
    "hydra": (hydra_holds, hydra_fails),
    "hydra_smoothing": (hydra_holds, hydra_fails),  # the same check on certified accuracy
    "bap": (bap_holds, bap_fails),
    "pfa": (pfa_holds, pfa_fails),
    "transfer": (transfer_holds, transfer_fails),
    "mrpf": (mrpf_holds, mrpf_fails),
}
