"""Training losses (registered): natural, PGD adversarial training, TRADES, AP and BAP.

A loss mode is a factory `(adversary, generator) -> loss`, the loss a callable
`(model, x, y) -> scalar`. Adversarial inputs are crafted with the model in eval mode (so
BatchNorm's running statistics see only the training batches) and are constants to the weights.
Losses that track a training budget keep `records` (one dict per batch) for the budget trajectory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from engine.registry import Registry
from engine.science.adversarial_budget import blind_cutoff, budgets, cut_and_scale, rms_norm
from engine.science.attacks import ATTACKS
from engine.science.attacks.deepfool import DeepFool
from engine.spec.runspec import AdversarySpec


class Loss(Protocol):
    """A training objective on one batch."""

    records: list[dict]

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...


LossFactory = Callable[[AdversarySpec, torch.Generator], Loss]
LOSSES: Registry[LossFactory] = Registry("training mode")


def crafted(model: nn.Module, attack: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Run `attack()` with the model in eval mode, then restore its mode; the result is detached."""
    was_training = model.training
    model.eval()
    try:
        return attack().detach()
    finally:
        model.train(was_training)


class Natural:
    """Natural training: cross-entropy on clean inputs."""

    def __init__(self, adversary: AdversarySpec | None = None, generator: torch.Generator | None = None):
        self.adversary, self.generator = adversary or AdversarySpec(), generator
        self.records: list[dict[str, Any]] = []

    def __call__(self, model, x, y):
        return F.cross_entropy(model(x), y)

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str | None = None) -> torch.Tensor:
        """Adversarial inputs at the adversary's fixed L∞ budget (PGD, or FGSM when named)."""
        adv = self.adversary
        attack = ATTACKS.get(name or adv.attack)(steps=adv.steps, relative_step=adv.relative_step())
        return crafted(model, lambda: attack.perturb(model, x, y, adv.eps, self.generator))


@LOSSES.register("natural")
def natural(adversary: AdversarySpec, generator: torch.Generator) -> Loss:
    """Natural training: cross-entropy on clean inputs."""
    return Natural(adversary, generator)


class PGDTraining(Natural):
    def __call__(self, model, x, y):
        return F.cross_entropy(model(self.attack(model, x, y, "pgd_linf")), y)


@LOSSES.register("pgd_at")
def pgd_at(adversary: AdversarySpec, generator: torch.Generator) -> Loss:
    """PGD adversarial training (Madry et al. 2018): cross-entropy on L∞ PGD inputs at ε."""
    return PGDTraining(adversary, generator)


class Trades(Natural):
    def __call__(self, model, x, y):
        adv = self.adversary
        x_adv = crafted(model, lambda: self._kl_pgd(model, x))
        logits = model(x)
        kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1), reduction="batchmean")
        return F.cross_entropy(logits, y) + adv.beta * kl

    def _kl_pgd(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        adv = self.adversary
        with torch.no_grad():
            clean = F.softmax(model(x), dim=1)
        noise = torch.randn(x.shape, generator=self.generator, dtype=x.dtype).to(x.device)
        x_adv = torch.clamp(x + 0.001 * noise, 0.0, 1.0)
        for _ in range(adv.steps):
            x_adv = x_adv.detach().requires_grad_(True)
            kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), clean, reduction="sum")
            (grad,) = torch.autograd.grad(kl, x_adv)
            x_adv = x_adv.detach() + adv.relative_step() * adv.eps * grad.sign()
            x_adv = torch.clamp(torch.min(torch.max(x_adv, x - adv.eps), x + adv.eps), 0.0, 1.0)
        return x_adv


@LOSSES.register("trades")
def trades(adversary: AdversarySpec, generator: torch.Generator) -> Loss:
    """TRADES (Zhang et al. 2019): CE(f(x), y) + β · KL(f(x) ‖ f(x')), x' from L∞ PGD on the KL term."""
    return Trades(adversary, generator)


class GaussianAugmentation(Natural):
    def __call__(self, model, x, y):
        return F.cross_entropy(model(x + self.noise(x)), y)

    def noise(self, x: torch.Tensor) -> torch.Tensor:
        """σ · N(0, I) shaped like x, from the run's generator (not clipped: as the smoothing code)."""
        draw = torch.randn(x.shape, generator=self.generator, dtype=x.dtype)
        return (draw * self.adversary.noise_sigma()).to(x.device)


@LOSSES.register("gaussian")
def gaussian(adversary: AdversarySpec, generator: torch.Generator) -> Loss:
    """Gaussian-noise augmentation (Cohen et al. 2019): cross-entropy on x + δ, δ ~ N(0, σ²I), σ from
    `adversary.sigma` (0.25), the training randomized smoothing certifies best."""
    return GaussianAugmentation(adversary, generator)


class GaussianStability(GaussianAugmentation):
    def __call__(self, model, x, y):
        logits = model(x)
        noisy = F.log_softmax(model(x + self.noise(x)), dim=1)
        kl = F.kl_div(noisy, F.softmax(logits, dim=1), reduction="batchmean")
        return F.cross_entropy(logits, y) + self.adversary.beta * kl


@LOSSES.register("gaussian_stability")
def gaussian_stability(adversary: AdversarySpec, generator: torch.Generator) -> Loss:
    """HYDRA's shipped smoothing trainer (trainer/smooth.py, non-ImageNet): CE(f(x), y) + β · KL(f(x) ‖
    f(x + δ)), δ ~ N(0, σ²I), β from `adversary.beta` (6) and σ from `adversary.sigma` (0.25). The
    paper says "Gaussian-noise training"; its code trains this stability loss instead."""
    return GaussianStability(adversary, generator)


def half_and_half(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """0.5 · CE(f(x), y) + 0.5 · CE(f(x_adv), y), the AP and BAP batch loss."""
    return 0.5 * F.cross_entropy(model(x), y) + 0.5 * F.cross_entropy(model(x_adv), y)


class AdversarialPruning(Natural):
    def __call__(self, model, x, y):
        adv = self.adversary
        self.records.append(
            {"cutoff": adv.eps, "norm": "Linf", "budgets": torch.full((len(x),), adv.eps), "distances": None}
        )
        return half_and_half(model, x, self.attack(model, x, y), y)


@LOSSES.register("ap")
def ap(adversary: AdversarySpec, generator: torch.Generator) -> Loss:
    """Adversarial pruning (AP): 0.5 clean + 0.5 adversarial loss, FGSM or PGD at a fixed L∞ ε."""
    return AdversarialPruning(adversary, generator)


class BlindAdversarialPruning(Natural):
    """BAP's batch loss. DeepFool starts from the model's own prediction by default, as the cleverhans
    DeepFool in BAP's code does (`original = current`): a misclassified example still gets its
    distance to the nearest other class, not 0, so it counts in the blind cutoff c."""

    def __call__(self, model, x, y):
        adv = self.adversary
        deepfool = DeepFool(steps=adv.deepfool_steps, overshoot=adv.overshoot)
        x_df = crafted(model, lambda: deepfool.distances(model, x, self._reference(model, x, y))[1])
        r = x_df - x
        norms = rms_norm(r)
        cutoff = blind_cutoff(norms) if adv.cutoff == "blind" else adv.cutoff
        x_adv = torch.clamp(x + cut_and_scale(r, cutoff, adv.rho), 0.0, 1.0)
        spent = budgets(norms, cutoff, adv.rho)
        if not (torch.isfinite(spent).all() and torch.isfinite(x_adv).all()):
            raise FloatingPointError("bap: DeepFool gave a non-finite perturbation or budget")
        self.records.append({"cutoff": cutoff, "norm": "RMS-L2", "budgets": spent.cpu(), "distances": norms.cpu()})
        return half_and_half(model, x, x_adv, y)

    def _reference(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The class DeepFool moves away from: the model's prediction (BAP's code) or the true label."""
        if self.adversary.deepfool_reference == "label":
            return y

        def predicted() -> torch.Tensor:
            with torch.no_grad():
                return model(x).argmax(1)

        return crafted(model, predicted)


@LOSSES.register("bap")
def bap(adversary: AdversarySpec, generator: torch.Generator) -> Loss:
    """Blind adversarial pruning (BAP): AP whose budget per example is ρ · min(DeepFool distance, cutoff)."""
    return BlindAdversarialPruning(adversary, generator)


QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def _mean_cutoff(records: list[dict]) -> float | None:
    """The mean cutoff over batches; None (not NaN) where no cutoff was applied."""
    cutoffs = [float(r["cutoff"]) for r in records if r["cutoff"] is not None]
    return sum(cutoffs) / len(cutoffs) if cutoffs else None


def budget_summary(records: list[dict]) -> dict | None:
    """One pruning step's budget statistics: mean cutoff, budget and distance mean and quantiles."""
    if not records:
        return None
    spent = torch.cat([r["budgets"].float() for r in records])
    row = {
        "norm": records[0]["norm"],
        "batches": len(records),
        "examples": len(spent),
        "cutoff": _mean_cutoff(records),
        "budget_mean": float(spent.mean()),
    }
    row.update({f"budget_q{int(q * 100)}": float(torch.quantile(spent, q)) for q in QUANTILES})
    distances = [r["distances"] for r in records if r["distances"] is not None]
    if distances:
        found = torch.cat(distances).float()
        row["distance_mean"] = float(found.mean())
        row.update({f"distance_q{int(q * 100)}": float(torch.quantile(found, q)) for q in QUANTILES})
    return row
