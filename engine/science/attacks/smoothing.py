"""Randomized smoothing in the attack registry: a certificate and an attack on the smoothed classifier.

`smoothing` is not an attack: it certifies (Cohen et al. 2019) and its curve is certified accuracy
over the L2 radius grid, a lower bound on the smoothed classifier's robust accuracy (with
probability 1 − α per image). `smooth_pgd_l2` attacks that same smoothed classifier (SmoothAdv PGD,
Salman et al. 2019) and judges each example by the smoothed classifier's own prediction, so its
curve is an upper bound on the same quantity: certified ≤ empirical at every radius, and a crossing
means the attack is weak. Attacks on the base model (pgd_l2) bound a different classifier.
"""

from __future__ import annotations

import math

import torch

from engine.science.attacks.base import ATTACKS, Attack, flat_norm, uniform_like
from engine.science.certify import Certificates, SoftSmoothed, certify, majority
from engine.spec.runspec import SAMPLED_DEFAULTS


def check_sampling(options: dict, name: str) -> None:
    """Refuse out-of-range sampling options, naming the option."""
    sigma, alpha = options["sigma"], options.get("alpha", 0.001)
    if isinstance(sigma, str) or not (math.isfinite(sigma) and 0 < sigma <= 4):
        raise ValueError(f"options.sigma: must be a number in (0, 4] for {name}, not {sigma!r}")
    if isinstance(alpha, str) or not 0 < alpha < 0.5:
        raise ValueError(f"options.alpha: must be a number in (0, 0.5) for {name}, not {alpha!r}")
    for key in ("n0", "n", "samples", "batch"):
        if key in options and not (isinstance(options[key], int) and 1 <= options[key] <= 1_000_000):
            raise ValueError(f"options.{key}: must be a whole number from 1 to 1,000,000, not {options[key]!r}")


@ATTACKS.register("smoothing")
class Smoothing(Attack):
    """Randomized-smoothing certificate (Cohen et al. 2019): certified L2 accuracy of the smoothed
    classifier at every radius of `eps`, abstentions counted wrong; its ε = 0 point is the smoothed
    classifier's clean accuracy. Options: sigma (noise σ, 0.25), n0 (selection samples, 100),
    n (estimation samples, 1000), alpha (failure probability, 0.001), batch (noisy copies per pass)."""

    norm = "L2"
    certified = True
    options = dict(SAMPLED_DEFAULTS["smoothing"])

    @classmethod
    def check_options(cls, options: dict) -> None:
        check_sampling(options, "smoothing")

    def certificates(self, model, x: torch.Tensor, generator: torch.Generator) -> Certificates:
        """CERTIFY on every image of `x` (CPU tensors); `model` a torch model or a forward callable."""
        o = self.opts
        return certify(
            model, x, float(o["sigma"]), int(o["n0"]), int(o["n"]), float(o["alpha"]), generator, int(o["batch"])
        )

    def perturb(self, model, x, y, eps, generator=None):
        raise NotImplementedError("smoothing certifies; it crafts no adversarial examples")


@ATTACKS.register("smooth_pgd_l2")
class SmoothPGDL2(Attack):
    """PGD L2 on the smoothed classifier (SmoothAdv, Salman et al. 2019): each step follows the gradient
    of the mean softmax over `samples` fresh noise draws; an example counts as robust while the smoothed
    classifier's majority vote over n noisy copies is still right (no abstention: a close vote is not
    counted as a break). The empirical partner of `smoothing`. Options: sigma (0.25), samples (8), n (100)."""

    norm = "L2"
    smoothed = True
    options = dict(SAMPLED_DEFAULTS["smooth_pgd_l2"])

    @classmethod
    def check_options(cls, options: dict) -> None:
        check_sampling(options, "smooth_pgd_l2")

    def perturb(self, model, x, y, eps, generator=None):
        soft = SoftSmoothed(model, float(self.opts["sigma"]), int(self.opts["samples"]), generator)
        adv = x.clone()
        if self.random_start:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            adv = torch.clamp(
                adv + noise / flat_norm(noise) * uniform_like(x[:, :1, :1, :1], 0, 1, generator) * eps, 0, 1
            )
        for _ in range(self.steps):  # every step: the smoothed decision is only read at the end
            grad = self.input_gradient(soft, adv, y)
            adv = adv.detach() + self.relative_step * eps * grad / (flat_norm(grad) + 1e-10)
            delta = adv - x
            adv = torch.clamp(x + delta * torch.clamp(eps / flat_norm(delta), max=1.0), 0.0, 1.0)
        return adv.detach()

    def labels(self, model, x, generator=None, batch_size=250):
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        return majority(model, x, float(self.opts["sigma"]), int(self.opts["n"]), gen, batch_size * 4)
