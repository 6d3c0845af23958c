"""Randomized smoothing in the attack registry: a certificate and an attack on the smoothed classifier.

`smoothing` is not an attack: it certifies (Cohen et al. 2019) and its curve is certified accuracy
over the L2 radius grid, a lower bound on the smoothed classifier's robust accuracy (with
probability 1 − α per image). `smooth_pgd_l2` attacks that same smoothed classifier (SmoothAdv PGD,
Salman et al. 2019) and judges each example by the smoothed classifier's own prediction (PREDICT),
so its curve estimates an upper bound on the same quantity: certified ≤ empirical at every radius, and a crossing
means the attack is weak. Attacks on the base model (pgd_l2) bound a different classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.science.attacks.base import ATTACKS, Attack, Randomness, flat_norm, normal_like
from engine.science.certify import Certificates, certify, fast_forward, predict
from engine.science.streams import ExampleStreams
from engine.spec.attack_options import SmoothingOptions, SmoothPGDOptions


@ATTACKS.register("smoothing")
class Smoothing(Attack):
    """Randomized-smoothing certificate (Cohen et al. 2019): certified L2 accuracy of the smoothed
    classifier at every radius of `eps`, abstentions counted wrong; its ε = 0 point is the smoothed
    classifier's clean accuracy. Options: sigma (noise σ, 0.25), n0 (selection samples, 100),
    n (estimation samples, 1000), alpha (failure probability, 0.001), batch (noisy copies per pass)."""

    norm = "L2"
    certified = True
    Options = SmoothingOptions

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
    """SmoothAdv's PGD on the smoothed classifier (Salman et al. 2019, arXiv:1906.04584), as its code
    runs it (`attacks.py` PGD_L2 with several noise vectors, `predict.py`):

    - `samples` Gaussian noise vectors (σ) per example, drawn once and reused at every step (SmoothAdv's
      m_test; its attack runs use up to 32);
    - the perturbation starts at zero (SmoothAdv's multi-noise attack ignores `random_start`);
    - each step moves by ε·step_size along the normalised gradient of the cross-entropy of the mean
      softmax over the noisy copies (a random direction where that gradient is zero), clips x + δ to
      [0, 1], then scales δ back into the ε-ball; SmoothAdv's step is 2ε/steps, this attack's default;
    - the result is judged by PREDICT (n noisy copies, α): an abstention counts as wrong.

    The empirical partner of `smoothing`: certified accuracy must not lie above it. Options: sigma
    (0.25), samples (32), n (1000, SmoothAdv's README), alpha (0.001)."""

    norm = "L2"
    smoothed = True
    Options = SmoothPGDOptions

    def perturb(self, model, x, y, eps, generator=None):
        sigma, samples = float(self.opts["sigma"]), int(self.opts["samples"])
        noise = _noise(x, samples, generator) * sigma  # (N, samples, C, H, W), fixed for every step
        delta = torch.zeros_like(x)
        for _ in range(self.steps):
            grad = self._gradient(model, x, delta, noise, y)
            norms = flat_norm(grad)
            fallback = normal_like(x, generator)  # drawn every step, so a row's draws never depend on others
            grad = torch.where(norms > 0, grad / norms.clamp_min(1e-30), fallback)
            delta = delta + self.relative_step * eps * grad
            delta = torch.clamp(x + delta, 0.0, 1.0) - x
            delta = delta * torch.clamp(eps / (flat_norm(delta) + 1e-12), max=1.0)
        return (x + delta).detach()

    @staticmethod
    def _gradient(model, x, delta, noise, y):
        """∂ CE(log mean softmax over the noisy copies, y) / ∂ δ, per example."""
        delta = delta.detach().requires_grad_(True)
        copies = (x + delta).unsqueeze(1) + noise  # (N, samples, C, H, W)
        logits = model(copies.flatten(0, 1))
        mean = torch.softmax(logits, dim=1).view(len(x), noise.shape[1], -1).mean(dim=1)
        loss = F.nll_loss(mean.clamp_min(1e-20).log(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, delta)
        return grad

    def labels(self, model, x, generator=None, batch_size=250):
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        o = self.opts
        forward = self._fast_forward(model, x)
        return predict(forward, x.cpu(), float(o["sigma"]), int(o["n"]), float(o["alpha"]), gen, batch_size * 4)

    def _fast_forward(self, model, x):
        """PREDICT's many noisy copies through ONNX Runtime where the model exports (engine.science.certify.
        fast_forward: the same function, about 3× faster on the CPU), exported once per model and attack."""
        cached = getattr(self, "_forward", None)
        if cached is None or cached[0] is not model:
            self._forward = (model, fast_forward(model, x[:2].cpu()))
        return self._forward[1]


def _noise(x: torch.Tensor, samples: int, generator: Randomness) -> torch.Tensor:
    """(N, samples, *x.shape[1:]) standard normal noise: per example from its stream where given."""
    if isinstance(generator, ExampleStreams):
        return generator.normal((samples, *x.shape[1:])).to(x.device, x.dtype)
    shape = (len(x), samples, *x.shape[1:])
    return torch.randn(shape, generator=generator, dtype=x.dtype).to(x.device)
