"""PGD (Madry et al. 2018, arXiv:1706.06083) in L∞ and L2; x in [0, 1], shape (N, C, H, W).

The update, projection and random start follow torchattacks' PGD and PGDL2 step for step, so
the two agree on the same model, inputs and starting point. In an evaluation the random start of
each example comes from its own stream (science/streams.py), so it does not depend on the batch.
With `stop_when_fooled` (how the evaluation runs it), an example leaves the batch at the first
iterate that fools the model: that iterate is a valid adversarial example inside the ball, and the
later iterations are not spent on it. Robust accuracy can then only be lower or equal (an iterate
that fooled is never undone).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.science.attacks.base import ATTACKS, Attack, flat_norm, normal_like, uniform_like
from engine.spec.attack_options import SearchOptions

SOUND_SEARCHES = ("scan",)  # engine.science.evaluate.descend_preview_curve is unsound: bench only, never stored


@ATTACKS.register("pgd_linf")
class PGDLinf(Attack):
    """PGD L∞: signed-gradient steps of ε·step_size, projected onto the ε-box and [0, 1].

    Option `search`: how a robust curve walks its ε grid; only `scan` (upwards, every ε attacks the
    examples still robust), the sound search. `descend` is refused: it may over-report robustness.
    """

    norm = "Linf"
    Options = SearchOptions
    playground_eps = 0.1

    def perturb(self, model, x, y, eps, generator=None):
        adv = x.clone()
        if self.random_start:
            adv = torch.clamp(adv + uniform_like(x, -eps, eps, generator), 0.0, 1.0)
        return iterate(self, model, x, y, adv, lambda a, grad, x0: self._step(a, grad, x0, eps))

    def _step(self, adv, grad, x, eps):
        adv = adv.detach() + self.relative_step * eps * grad.sign()
        delta = torch.clamp(adv - x, min=-eps, max=eps)
        return torch.clamp(x + delta, 0.0, 1.0)


@ATTACKS.register("pgd_l2")
class PGDL2(Attack):
    """PGD L2: normalised-gradient steps of ε·step_size, projected onto the L2 ball and [0, 1].

    Option `search`: how a robust curve walks its ε grid; only `scan` (upwards, every ε attacks the
    examples still robust), the sound search. `descend` is refused: it may over-report robustness.
    """

    norm = "L2"
    Options = SearchOptions
    playground_eps = 1.5

    def perturb(self, model, x, y, eps, generator=None):
        adv = x.clone()
        if self.random_start:
            noise = normal_like(x, generator)
            radius = uniform_like(x[:, :1, :1, :1], 0.0, 1.0, generator)
            adv = torch.clamp(adv + noise / flat_norm(noise) * radius * eps, 0.0, 1.0)
        return iterate(self, model, x, y, adv, lambda a, grad, x0: self._step(a, grad, x0, eps))

    def _step(self, adv, grad, x, eps):
        adv = adv.detach() + self.relative_step * eps * grad / (flat_norm(grad) + 1e-10)
        delta = adv - x
        factor = torch.clamp(eps / flat_norm(delta), max=1.0)
        return torch.clamp(x + delta * factor, 0.0, 1.0)


def iterate(attack: Attack, model, x: torch.Tensor, y: torch.Tensor, adv: torch.Tensor, step) -> torch.Tensor:
    """`attack.steps` PGD updates from `adv`; with `stop_when_fooled`, fooled examples leave the batch."""
    if not attack.stop_when_fooled:
        for _ in range(attack.steps):
            adv = step(adv, attack.input_gradient(model, adv, y), x)
        return adv.detach()
    adv, active = adv.detach().clone(), torch.arange(len(x), device=x.device)
    for _ in range(attack.steps):
        xa = adv[active].requires_grad_(True)
        logits = model(xa)
        still = logits.argmax(1) == y[active]
        if not still.any():
            break
        loss = F.cross_entropy(logits[still], y[active][still], reduction="sum")
        (grad,) = torch.autograd.grad(loss, xa)
        active = active[still]
        adv[active] = step(xa.detach()[still], grad[still], x[active]).detach()
    return adv
