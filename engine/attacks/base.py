"""Attack base class: the shared work (eval mode, frozen weights, input gradient, [0, 1] clamp)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from engine.registry import Registry


class Attack:
    """An evasion attack on a classifier that takes inputs in [0, 1] and normalises inside.

    Subclasses set `norm` ("Linf" or "L2") and implement `perturb`. Strengths are in the
    attack's norm: L∞ as a fraction of the [0, 1] range, L2 as a raw norm.
    """

    norm: ClassVar[str] = "Linf"

    def __init__(self, steps: int = 10, relative_step: float = 0.25, random_start: bool = True):
        self.steps = steps
        self.relative_step = relative_step
        self.random_start = random_start

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Return adversarial examples within the ε-ball around x and inside [0, 1]."""
        raise NotImplementedError

    @staticmethod
    def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """∂ mean cross-entropy / ∂ x, without weight gradients."""
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x), y)
        (grad,) = torch.autograd.grad(loss, x)
        return grad


ATTACKS: Registry[type[Attack]] = Registry("attack")


def uniform_like(x: torch.Tensor, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform noise shaped like x, drawn from `generator` on the CPU for reproducibility."""
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype)
    return (noise * (high - low) + low).to(x.device)


def flat_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm, shaped (N, 1, 1, 1) for broadcasting."""
    return t.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (t.dim() - 1)))
