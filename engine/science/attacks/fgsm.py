"""FGSM (Goodfellow et al. 2015, arXiv:1412.6572). L∞; x in [0, 1]."""

from __future__ import annotations

import torch

from engine.science.attacks.base import ATTACKS, Attack


@ATTACKS.register("fgsm")
class FGSM(Attack):
    """FGSM: one signed-gradient step of size ε (L∞, ε on the [0, 1] scale)."""

    norm = "Linf"
    playground_eps = 0.1

    def perturb(self, model, x, y, eps, generator=None):
        grad = self.input_gradient(model, x, y)
        return torch.clamp(x + eps * grad.sign(), 0.0, 1.0).detach()
