"""DeepFool (Moosavi-Dezfooli et al. 2016, arXiv:1511.04599). Minimal L2; x in [0, 1].

Batched over examples. Each step linearises every class boundary at the current point and moves
towards the nearest one. As in the paper and Foolbox, the steps accumulate and the overshoot
scales their sum (x' = clip(x + (1 + overshoot) · Σ r_i)); torchattacks instead restarts every
step from the clipped point, which stalls on images with many pixels at 0 or 1 (on Fashion-MNIST
it left 37 % of inputs unbroken after 50 steps). Directions that would push a pixel out of
[0, 1] are dropped before linearising, so the attack moves only where it can. Where no pixel sits
on the box the first step equals torchattacks'; the tests check that, and the fooling rate.

A boundary whose linearisation has a zero input gradient (a dead or constant model: every conv
filter pruned, say) cannot be reached by a step: it is skipped, and an example with no reachable
boundary gets a zero step and stays "not fooled" (distance ∞) instead of the 0/0 = NaN step that
would count it as fooled at distance NaN.

`distances(..., y)` measures the distance from the class `y`: the true label in evaluation (only
correctly classified examples are attacked there, so it is also the prediction). BAP's training
passes the model's own prediction instead, as the cleverhans DeepFool in BAP's code does
(`original = current`): a misclassified training example then still gets a distance.
"""

from __future__ import annotations

import torch

from engine.science.attacks.base import ATTACKS, Attack, norm_distance
from engine.spec.attack_options import DeepFoolOptions


@ATTACKS.register("deepfool")
class DeepFool(Attack):
    """DeepFool: minimal L2 perturbation to the nearest linearised class boundary (unbounded).

    One run gives each example's distance; robust accuracy at any ε is read off those distances.
    Options: overshoot (0.02). `steps` is the iteration cap (50 is usual).
    """

    norm = "L2"
    minimal = True
    playground_eps = 1.5
    playground_steps = 50
    Options = DeepFoolOptions

    def distances(self, model, x, y, generator=None):
        adv, active = x.clone(), torch.ones(len(x), dtype=torch.bool, device=x.device)
        total = torch.zeros_like(x)
        for _ in range(self.steps):
            idx = active.nonzero().flatten()
            if len(idx) == 0:
                break
            xa = adv[idx].detach().requires_grad_(True)
            logits = model(xa)
            still = logits.argmax(1) == y[idx]
            active[idx[~still]] = False
            if not still.any():
                break
            step, movable = self._step(logits, xa, y[idx])
            active[idx[still & ~movable]] = False  # no boundary reachable: it can never move
            still &= movable
            keep = idx[still]
            total[keep] += step[still]
            adv[keep] = torch.clamp(x[keep] + (1 + self.opts["overshoot"]) * total[keep], 0.0, 1.0)
        with torch.no_grad():
            fooled = model(adv).argmax(1) != y
        dist = norm_distance(adv - x, "L2")
        return torch.where(fooled, dist, torch.full_like(dist, float("inf"))), adv

    @staticmethod
    def _step(logits: torch.Tensor, xa: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The DeepFool move of every example towards its nearest linearised wrong class, and whether it
        can move at all (False where every wrong class has a zero gradient difference: the step is 0)."""
        n, classes = logits.shape
        grads = torch.stack(
            [torch.autograd.grad(logits[:, k].sum(), xa, retain_graph=k + 1 < classes)[0] for k in range(classes)],
            dim=1,
        )  # (N, K, C, H, W): examples are independent
        rows = torch.arange(n, device=logits.device)
        f_prime = (logits - logits[rows, labels][:, None]).detach()
        w_prime = grads - grads[rows, labels][:, None]
        # box constraint: pixels already at 0 (1) cannot move down (up); linearise in the directions left
        point = xa.detach()[:, None]
        w_prime = w_prime.masked_fill(((point <= 0) & (w_prime < 0)) | ((point >= 1) & (w_prime > 0)), 0.0)
        w_norm = w_prime.flatten(2).norm(dim=2)
        reachable = w_norm > 0
        reachable[rows, labels] = False
        value = torch.where(reachable, f_prime.abs() / w_norm.clamp_min(1e-30), torch.full_like(w_norm, float("inf")))
        hat = value.argmin(dim=1)
        movable = reachable[rows, hat]
        w_hat = w_prime[rows, hat]
        scale = torch.where(
            movable, f_prime[rows, hat].abs() / w_norm[rows, hat].clamp_min(1e-30) ** 2, torch.zeros_like(w_norm[:, 0])
        )
        return (scale.view(-1, *([1] * (w_hat.dim() - 1))) * w_hat).detach(), movable
