"""Evaluation of one checkpoint: clean accuracy and robust-accuracy curves over ε.

Pure: takes a model and tensors, returns numbers, writes nothing. A robust curve is computed in
one pass over its ε grid in increasing order, attacking only the examples still robust at the
previous ε: an example broken at a smaller ε of the same norm stays broken at every larger one
(its adversarial example lies inside the larger ball too). So the curve starts at clean
accuracy at ε = 0, never rises, and later ε cost less as fewer examples remain. Within one
attack, iterative attacks drop an example at the first iterate that fools the model.
"""

from __future__ import annotations

import dataclasses
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from engine.report.stats import pack_flags
from engine.science.attacks import ATTACKS, Attack
from engine.science.certify import ABSTAIN, Certificates, fast_forward
from engine.science.device import to_input
from engine.science.streams import ExampleStreams, stream_name
from engine.science.training import predict
from engine.spec.runspec import AttackSpec, EvalSpec


@dataclass(frozen=True)
class RobustPoint:
    """Robust accuracy (a fraction of the evaluation subset) of one attack at one ε.

    `params` is the attack's full configuration and seed as JSON, stored beside the number.
    """

    attack: str
    norm: str
    eps: float
    acc: float
    params: str = ""
    n: int = 0
    correct: bytes = b""  # one bit per evaluation image (np.packbits order): still right at this ε

    @classmethod
    def of(
        cls, attack: str, norm: str, eps: float, flags: torch.Tensor, params: str, abstained: int | None = None
    ) -> "RobustPoint":
        """The point of boolean per-example flags: accuracy, n and the flags themselves, packed."""
        flat = pack_flags(flags.cpu().numpy())
        return cls(attack, norm, float(eps), fraction(flags), params, len(flags), flat, abstained=abstained)

    seconds: float | None = None  # wall time of the attack's whole curve on this checkpoint
    abstained: int | None = None  # a certificate's abstentions (counted wrong); None for attacks


Adversarial = dict[float, torch.Tensor]
"""ε → the input each example gets at that budget: its first successful adversarial example at a
budget ≤ ε, else the attack's last attempt at ε (the clean input at ε = 0)."""


@dataclass(frozen=True)
class Evaluation:
    """One checkpoint's clean accuracy, robust curves and (when kept) the adversarial inputs."""

    clean_acc: float
    points: list[RobustPoint]
    adversarial: dict[str, Adversarial]


def fraction(flags: torch.Tensor) -> float:
    """Share of True flags, computed exactly from counts (0.889, not 0.88899999)."""
    return int(flags.sum()) / max(len(flags), 1)


def eval_indices(n_test: int, n_samples: int, seed: int) -> torch.Tensor:
    """The fixed evaluation subset: a seeded sample of the test split, in index order."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n_test, generator=gen)[: min(n_samples, n_test)].sort().values


def build_attack(spec: AttackSpec) -> Attack:
    """The registered attack of an AttackSpec, configured from it."""
    return ATTACKS.get(spec.name)(
        steps=spec.steps, relative_step=spec.relative_step(), random_start=spec.random_start, **spec.options
    )


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
    keep: Adversarial | None = None,
) -> list[RobustPoint]:
    """Robust accuracy at every ε of `spec.eps` (ascending, starting at 0), monotone by construction.

    With a `keep` dict, also records each ε's adversarial inputs (for transfer to other models).
    """
    model.eval()
    attack = build_attack(spec)
    attack.stop_when_fooled = True  # an iterate that fools is an adversarial example; stop spending on it
    params = json.dumps({**spec.model_dump(mode="json"), "seed": seed, "unbounded": attack.minimal}, sort_keys=True)
    if attack.certified:
        return certified_curve(model, x, y, spec, attack, batch_size=batch_size, seed=seed, on_batch=on_batch)
    if attack.smoothed:  # the smoothed classifier's own clean predictions, not the base model's
        streams = ExampleStreams(stream_name(seed, spec.name, 0.0, 0), range(len(x)))
        robust = attack.labels(model, x, streams, batch_size) == y
    else:
        robust = (predict(model, x, batch_size) == y) if correct is None else correct.clone()
    if attack.minimal:
        return _curve_from_distances(model, x, y, spec, attack, robust, batch_size, seed, params, on_batch, keep)
    current = x.clone() if keep is not None else None
    points = []
    for eps in spec.eps:
        if eps > 0:
            for restart in range(spec.restarts):
                stream = stream_name(seed, spec.name, eps, restart)
                alive = robust.nonzero().flatten()
                for start in range(0, len(alive), batch_size):
                    idx = alive[start : start + batch_size]
                    xb, yb = to_input(x[idx], model), y[idx].to(next(model.parameters()).device)
                    streams = ExampleStreams(stream, idx)  # each example's start: its own, whatever the batch
                    adv = attack.perturb(model, xb, yb, eps, streams)
                    robust[idx] &= attack.labels(model, adv, streams, batch_size) == yb.cpu()
                    if current is not None:
                        current[idx] = adv.cpu()
                    if on_batch is not None:
                        on_batch()  # lets a worker report progress and honour cancel between batches
        if keep is not None and current is not None:
            keep[float(eps)] = current.clone()
        points.append(RobustPoint.of(spec.name, attack.norm, eps, robust, params))
    return points


def certified_curve(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    attack: Attack,
    *,
    batch_size: int = 250,
    seed: int = 0,
    on_batch: Callable[[], None] | None = None,
) -> list[RobustPoint]:
    """Certified accuracy at every radius of `spec.eps` from one certificate per image: right and
    certified at ≥ r, abstentions wrong. Non-increasing in r; its r = 0 point is the smoothed
    classifier's clean accuracy, which may differ from the base model's."""
    model.eval()
    gen = _generator(seed, spec.name, 0.0, 0)
    forward = fast_forward(model, x[:2])
    parts = []
    for start in range(0, len(x), batch_size):
        parts.append(attack.certificates(forward, x[start : start + batch_size], gen))
        if on_batch is not None:
            on_batch()
    certificates = Certificates(*(torch.cat([getattr(c, f) for c in parts]) for f in ("label", "radius", "p_lower")))
    abstained = int((certificates.label == ABSTAIN).sum())
    params = json.dumps({**spec.model_dump(mode="json"), "seed": seed, "certified": True}, sort_keys=True)
    return [
        RobustPoint.of(spec.name, attack.norm, r, certificates.certified(y, r), params, abstained) for r in spec.eps
    ]


def _fooled_at(model, x, y, attack, eps, idx_alive, stream, batch_size) -> torch.Tensor:
    """Attack the examples `idx_alive` at ε in batches: which of them were fooled (CPU flags)."""
    fooled = torch.zeros(len(idx_alive), dtype=torch.bool)
    for start in range(0, len(idx_alive), batch_size):
        idx = idx_alive[start : start + batch_size]
        xb, yb = to_input(x[idx], model), y[idx].to(next(model.parameters()).device)
        adv = attack.perturb(model, xb, yb, eps, ExampleStreams(stream, idx))
        with torch.no_grad():
            fooled[start : start + len(idx)] = (model(adv).argmax(1) != yb).cpu()
    return fooled


PREVIEW_LABEL = "fast preview, may over-report"


def descend_preview_curve(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, *, batch_size: int = 250, seed: int = 0
) -> list[RobustPoint]:
    """The ε grid walked from the largest budget down, each ε attacking only the examples broken at the
    ε above; an example the attack fails to break at ε is counted robust at every smaller ε unattacked.

    NOT SOUND, and never a reported number: PGD's success is not monotone in ε (an example it fails
    to break at 0.4 can break at 0.1), so this curve may over-report robustness. Only `bench/` uses
    it, labelled PREVIEW_LABEL, to measure how far it sits from the sound upward scan.
    """
    model.eval()
    attack = build_attack(spec)
    attack.stop_when_fooled = True
    params = json.dumps({**spec.model_dump(mode="json"), "seed": seed, "search": PREVIEW_LABEL}, sort_keys=True)
    correct = predict(model, x, batch_size) == y
    broken_at = torch.full((len(x),), float("inf"))  # smallest grid ε at which an adversarial example was found
    alive = correct.nonzero().flatten()
    for eps in sorted((e for e in spec.eps if e > 0), reverse=True):
        fooled_here = torch.zeros(len(alive), dtype=torch.bool)
        for restart in range(spec.restarts):
            todo = (~fooled_here).nonzero().flatten()
            if len(todo) == 0:
                break
            fooled = _fooled_at(
                model, x, y, attack, eps, alive[todo], stream_name(seed, spec.name, eps, restart), batch_size
            )
            fooled_here[todo[fooled]] = True
        broken_at[alive[fooled_here]] = eps
        alive = alive[fooled_here]
        if len(alive) == 0:
            break
    robust, points = correct.clone(), []
    for eps in spec.eps:
        robust &= broken_at > eps
        points.append(RobustPoint.of(spec.name, attack.norm, eps, robust, params))
    return points


def _curve_from_distances(model, x, y, spec, attack, correct, batch_size, seed, params, on_batch, keep):
    """One minimal-distance run, then every ε: an example is broken once its distance fits the budget
    or its perturbation cut to the budget already fools the model (BAP's protocol), and stays broken."""
    distance, adversarial = torch.full((len(x),), float("inf")), x.clone()
    alive = correct.nonzero().flatten()
    gen = _generator(seed, spec.name, 0.0, 0)
    for start in range(0, len(alive), batch_size):
        idx = alive[start : start + batch_size]
        xb, yb = to_input(x[idx], model), y[idx].to(next(model.parameters()).device)
        dist, adv = attack.distances(model, xb, yb, gen)
        if torch.isnan(dist).any() or not torch.isfinite(adv).all():
            raise FloatingPointError(f"{spec.name} returned NaN for {int(torch.isnan(dist).sum())} examples")
        distance[idx], adversarial[idx] = dist.cpu(), adv.cpu()
        if on_batch is not None:
            on_batch()
    robust, points = correct.clone(), []
    for eps in spec.eps:
        candidate = attack.cut(x, adversarial, eps) if eps > 0 else None
        robust &= distance > eps
        if candidate is not None:
            robust &= predict(model, candidate, batch_size) == y
        if keep is not None:  # the input each example gets at this budget, for transfer
            fits = (distance <= eps).view(-1, *[1] * (x.dim() - 1))
            keep[float(eps)] = torch.where(fits, adversarial, x if candidate is None else candidate)
        points.append(RobustPoint.of(spec.name, attack.norm, eps, robust, params))
    return points


def transferable(attacks: list[AttackSpec]) -> list[AttackSpec]:
    """The attacks whose examples crafted on the base mean something on another model: not a
    certificate (it crafts none) nor an attack on a smoothed classifier (judged by its own vote), nor
    one that scores only some checkpoints (`at`: a reference attack where a claim is made)."""
    return [a for a in attacks if a.at is None and not (ATTACKS.get(a.name).certified or ATTACKS.get(a.name).smoothed)]


def transfer_curve(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    adversarial: Adversarial,
    batch_size: int = 250,
    seed: int = 0,
) -> list[RobustPoint]:
    """Accuracy of `model` on inputs crafted against another model (the base), per ε.

    An example fooled at a smaller ε stays fooled at larger ones (its input lies inside the larger
    ball), so this curve too starts at clean accuracy and never rises.
    """
    norm = ATTACKS.get(spec.name).norm
    params = json.dumps({**spec.model_dump(mode="json"), "seed": seed, "source": "base"}, sort_keys=True)
    robust = predict(model, x, batch_size) == y
    points = []
    for eps in spec.eps:
        if eps > 0:
            robust &= predict(model, adversarial[float(eps)], batch_size) == y
        points.append(RobustPoint.of(spec.name, norm, eps, robust, params))
    return points


def evaluate_model(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: EvalSpec,
    seed: int,
    on_progress: Callable[[int, int], None] | None = None,
    keep_adversarial: bool = False,
) -> Evaluation:
    """Clean accuracy and every attack's robust curve; `on_progress(curves done, curves)` per batch."""
    correct = predict(model, x, spec.batch_size) == y
    points: list[RobustPoint] = []
    adversarial: dict[str, Adversarial] = {}
    total = len(spec.attacks)
    for i, attack_spec in enumerate(spec.attacks):
        hook = (lambda i=i: on_progress(i, total)) if on_progress else None
        wanted = keep_adversarial and attack_spec in transferable([attack_spec])
        keep = adversarial.setdefault(attack_spec.name, {}) if wanted else None
        started = time.perf_counter()
        curve = robust_curve(
            model, x, y, attack_spec, batch_size=spec.batch_size, seed=seed, correct=correct, on_batch=hook, keep=keep
        )
        seconds = time.perf_counter() - started
        points += [dataclasses.replace(p, seconds=seconds) for p in curve]
    return Evaluation(fraction(correct), points, adversarial)
