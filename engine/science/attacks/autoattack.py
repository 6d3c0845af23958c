"""AutoAttack and its parts, run by Croce & Hein's own code (fra31/auto-attack, packaged as
`pyautoattack`; arXiv:2003.01690). x in [0, 1].

The parameter-free ensemble that robustness leaderboards use; APGD-CE and APGD-T are its gradient
components and Square its query-based one. All are bounded: ε in the attack's norm. `autoattack`
calls the reference's own `AutoAttack(version="standard").run_standard_evaluation`, so the order of
the stages, their settings and the hand-over of the images still standing are the paper's code's.
"""

from __future__ import annotations

import logging
import warnings

import torch

from engine.errors import optional_import
from engine.science.attacks.base import ATTACKS, Attack, seed_from
from engine.spec.attack_options import (
    APGDCEOptions,
    APGDTOptions,
    AutoAttackOptions,
    SquareOptions,
)

STANDARD_STEPS = 100  # Croce & Hein's standard: 100 iterations of APGD-CE, APGD-T and FAB-T
STANDARD_TARGETS = 9  # and 9 target classes for APGD-T and FAB-T

# The reference's sanity checks (randomised or dynamic model, a too-successful Square) warn through
# this logger and `warnings` on every call; a worker's log would drown in them, so only errors pass.
logging.getLogger("auto-attack").setLevel(logging.ERROR)


def pyautoattack(part: str = "autoattack"):
    """A module of pyautoattack (autoattack, autopgd_base, square); MissingDependency saying how to
    install it when absent."""
    return optional_import(f"pyautoattack.{part}", "AutoAttack", "pip install pyautoattack==0.2.0")


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def targets(n_classes: int) -> int:
    """Target classes of APGD-T and FAB-T: the standard's 9, fewer where the data set has fewer others."""
    return max(1, min(STANDARD_TARGETS, n_classes - 1))


class _Reference(Attack):
    """Shared call: build the reference attack for ε and the batch's seed, run it on a standard-layout
    batch (FAB reshapes gradients with .view, which a channels-last batch breaks)."""

    norm = "Linf"

    def build(self, model, eps: float, seed: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def perturb(self, model, x, y, eps, generator=None):
        attack = self.build(model, eps, seed_from(generator))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Warning)
            return attack.perturb(x.contiguous(), y).detach()


@ATTACKS.register("apgd_ce")
class APGDCE(_Reference):
    """APGD-CE: step-size-free PGD on cross-entropy (AutoAttack's first component). `steps` = iterations."""

    Options = APGDCEOptions

    def build(self, model, eps, seed):
        return pyautoattack("autopgd_base").APGDAttack(
            model,
            n_iter=self.steps,
            norm=self.norm,
            n_restarts=int(self.opts["n_restarts"]),
            eps=eps,
            seed=seed,
            loss="ce",
            device=_device(model),
        )


@ATTACKS.register("apgd_t")
class APGDT(_Reference):
    """APGD-T: targeted APGD on the DLR loss, at each of the top `n_classes − 1` other classes in turn
    (the standard ensemble caps that at 9)."""

    Options = APGDTOptions

    def build(self, model, eps, seed):
        return pyautoattack("autopgd_base").APGDAttack_targeted(
            model,
            n_iter=self.steps,
            norm=self.norm,
            n_restarts=int(self.opts["n_restarts"]),
            eps=eps,
            seed=seed,
            n_target_classes=int(self.opts["n_classes"]) - 1,
            device=_device(model),
        )


@ATTACKS.register("square")
class Square(_Reference):
    """Square: score-based random search in squares (Andriushchenko et al. 2020); no gradients needed.
    p_init 0.8 and the schedule of p not rescaled, as AutoAttack's standard runs it."""

    Options = SquareOptions

    def build(self, model, eps, seed):
        return pyautoattack("square").SquareAttack(
            model,
            norm=self.norm,
            n_queries=int(self.opts["n_queries"]),
            eps=eps,
            p_init=0.8,
            seed=seed,
            resc_schedule=False,
            device=_device(model),
        )


class _Standard(Attack):
    """The reference's `version="standard"`: APGD-CE, APGD-T (9 targets), FAB-T (9 targets) and
    Square (5,000 queries), each run on what the previous left standing, with `steps` iterations per
    gradient attack (standard: 100; fewer is weaker, and a warning says so)."""

    Options = AutoAttackOptions

    def build(self, model, eps: float, seed: int):
        """The reference's AutoAttack object for this ε and seed, with the spec's iterations."""
        ensemble = pyautoattack().AutoAttack(
            model, norm=self.norm, eps=eps, seed=seed, version="standard", device=_device(model)
        )
        ensemble.verbose = False
        for stage in (ensemble.apgd, ensemble.apgd_targeted, ensemble.fab):
            stage.n_iter = self.steps
        ensemble.apgd_targeted.n_target_classes = ensemble.fab.n_target_classes = targets(int(self.opts["n_classes"]))
        return ensemble

    def perturb(self, model, x, y, eps, generator=None):
        ensemble = self.build(model, eps, seed_from(generator))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Warning)
            adversarial, _ = ensemble.run_standard_evaluation(x.contiguous(), y, batch_size=max(len(x), 1))
        return adversarial.detach()

    def protocol_warning(self) -> str | None:
        if self.steps < STANDARD_STEPS:
            return (
                f"{type(self).__name__.lower()} ran {self.steps} iterations per gradient attack; the standard uses "
                f"{STANDARD_STEPS}: a weaker attack than the standard, robust accuracy may be over-reported"
            )
        return None


@ATTACKS.register("autoattack")
class AutoAttack(_Standard):
    """AutoAttack's standard ensemble in L∞ (ε as a share of the pixel range; 8/255 on CIFAR-10)."""

    norm = "Linf"


@ATTACKS.register("autoattack_l2")
class AutoAttackL2(_Standard):
    """AutoAttack's standard ensemble in L2 (ε a raw norm; 0.5 on CIFAR-10)."""

    norm = "L2"
