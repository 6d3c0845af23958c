"""Evaluation of one checkpoint: clean accuracy and robust-accuracy curves over ε.

Pure: takes a model and tensors, returns numbers, writes nothing. A robust curve is computed in
one pass over its ε grid in increasing order, attacking only the examples still robust at the
previous ε: an example broken at a smaller ε of the same norm stays broken at every larger one
(its adversarial example lies inside the larger ball too). So the curve starts at clean
accuracy at ε = 0, never rises, and later ε cost less as fewer examples remain.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from engine.attacks import ATTACKS, Attack
from engine.device import to_input
from engine.spec import AttackSpec, EvalSpec
from engine.training import predict


@dataclass(frozen=True)
class RobustPoint:
    """Robust accuracy (a fraction of the evaluation subset) of one attack at one ε."""

    attack: str
    norm: str
    eps: float
    acc: float


def fraction(flags: torch.Tensor) -> float:
    """Share of True flags, computed exactly from counts (0.889, not 0.88899999)."""
    return int(flags.sum()) / max(len(flags), 1)


def eval_indices(n_test: int, n_samples: int, seed: int) -> torch.Tensor:
    """The fixed evaluation subset: a seeded sample of the test split, in index order."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n_test, generator=gen)[: min(n_samples, n_test)].sort().values


def build_attack(spec: AttackSpec) -> Attack:
    """The registered attack of an AttackSpec, configured from it."""
    return ATTACKS.get(spec.name)(steps=spec.steps, relative_step=spec.relative_step(), random_start=spec.random_start)


def _generator(seed: int, attack: str, eps: float, restart: int) -> torch.Generator:
    # one stream per (seed, attack, ε, restart), so a resumed run draws the same random starts
    key = zlib.crc32(f"{seed}|{attack}|{eps!r}|{restart}".encode())
    return torch.Generator().manual_seed(key)


def robust_curve(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    *,
    batch_size: int = 250,
    seed: int = 0,
    correct: torch.Tensor | None = None,
    on_batch: Callable[[], None] | None = None,
) -> list[RobustPoint]:
    """Robust accuracy at every ε of `spec.eps` (ascending, starting at 0), monotone by construction."""
    model.eval()
    attack = build_attack(spec)
    robust = (predict(model, x, batch_size) == y) if correct is None else correct.clone()
    points = []
    for eps in spec.eps:
        if eps > 0:
            for restart in range(spec.restarts):
                gen = _generator(seed, spec.name, eps, restart)
                alive = robust.nonzero().flatten()
                for start in range(0, len(alive), batch_size):
                    idx = alive[start : start + batch_size]
                    xb, yb = to_input(x[idx], model), y[idx].to(next(model.parameters()).device)
                    adv = attack.perturb(model, xb, yb, eps, gen)
                    with torch.no_grad():
                        robust[idx] &= (model(adv).argmax(1) == yb).cpu()
                    if on_batch is not None:
                        on_batch()  # lets a worker report progress and honour cancel between batches
        points.append(RobustPoint(spec.name, attack.norm, float(eps), fraction(robust)))
    return points


def evaluate_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: EvalSpec, seed: int,
                   on_progress: Callable[[int, int], None] | None = None) -> tuple[float, list[RobustPoint]]:
    """Clean accuracy and every attack's robust curve; `on_progress(curves done, curves)` per batch."""
    correct = predict(model, x, spec.batch_size) == y
    points: list[RobustPoint] = []
    total = len(spec.attacks)
    for i, attack_spec in enumerate(spec.attacks):
        hook = (lambda i=i: on_progress(i, total)) if on_progress else None
        points += robust_curve(model, x, y, attack_spec, batch_size=spec.batch_size, seed=seed, correct=correct,
                               on_batch=hook)
    return fraction(correct), points
