"""Carlini–Wagner L2 (Carlini & Wagner 2017, arXiv:1608.04644) through torchattacks. x in [0, 1]."""

from __future__ import annotations

import torch

from engine.science.attacks.base import ATTACKS, Attack, norm_distance, seed_from
from engine.science.attacks.third_party import torchattacks
from engine.spec.attack_options import CWOptions


@ATTACKS.register("cw_l2")
class CarliniWagnerL2(Attack):
    """C&W L2: optimises the smallest L2 change that flips the label (tanh box, Adam), unbounded.

    Uses torchattacks().CW with one constant c (no binary search), so each distance is an upper
    bound on the true minimum. Options: c (1.0), kappa (0), lr (0.01); `steps` = Adam steps.
    """

    norm = "L2"
    minimal = True
    Options = CWOptions

    def distances(self, model, x, y, generator=None):
        torch.manual_seed(seed_from(generator))
        attack = torchattacks().CW(
            model, c=self.opts["c"], kappa=self.opts["kappa"], steps=self.steps, lr=self.opts["lr"]
        )
        adv = attack(x, y).detach()
        with torch.no_grad():
            fooled = model(adv).argmax(1) != y
        dist = norm_distance(adv - x, "L2")
        return torch.where(fooled, dist, torch.full_like(dist, float("inf"))), adv
