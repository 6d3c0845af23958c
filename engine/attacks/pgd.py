"""PGD (Madry et al. 2018, arXiv:1706.06083) in L∞ and L2; x in [0, 1], shape (N, C, H, W).

The update, projection and random start follow torchattacks' PGD and PGDL2 step for step, so
the two agree on the same model, inputs and starting point.
"""

from __future__ import annotations

import torch

from engine.attacks.base import ATTACKS, Attack, flat_norm, uniform_like


@ATTACKS.register("pgd_linf")
class PGDLinf(Attack):
    """PGD L∞: signed-gradient steps of ε·step_size, projected onto the ε-box and [0, 1]."""

    norm = "Linf"

    def perturb(self, model, x, y, eps, generator=None):
        alpha = self.relative_step * eps
        adv = x.clone()
        if self.random_start:
            adv = torch.clamp(adv + uniform_like(x, -eps, eps, generator), 0.0, 1.0)
        for _ in range(self.steps):
            grad = self.input_gradient(model, adv, y)
            adv = adv.detach() + alpha * grad.sign()
            delta = torch.clamp(adv - x, min=-eps, max=eps)
            adv = torch.clamp(x + delta, 0.0, 1.0)
        return adv.detach()


@ATTACKS.register("pgd_l2")
class PGDL2(Attack):
    """PGD L2: normalised-gradient steps of ε·step_size, projected onto the L2 ball and [0, 1]."""

    norm = "L2"

    def perturb(self, model, x, y, eps, generator=None):
        alpha = self.relative_step * eps
        adv = x.clone()
        if self.random_start:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            radius = uniform_like(x[:, :1, :1, :1], 0.0, 1.0, generator)
            adv = torch.clamp(adv + noise / flat_norm(noise) * radius * eps, 0.0, 1.0)
        for _ in range(self.steps):
            grad = self.input_gradient(model, adv, y)
            adv = adv.detach() + alpha * grad / (flat_norm(grad) + 1e-10)
            delta = adv - x
            factor = torch.clamp(eps / flat_norm(delta), max=1.0)
            adv = torch.clamp(x + delta * factor, 0.0, 1.0)
        return adv.detach()
