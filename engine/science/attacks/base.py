"""Attack base class: the shared work (eval mode, frozen weights, input gradient, [0, 1] clamp)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from engine.registry import Registry
from engine.science.device import to_input
from engine.science.streams import ExampleStreams
from engine.spec.attack_options import Options as AttackOptions
from engine.spec.attack_options import parse_options, record_options

Randomness = torch.Generator | ExampleStreams | None
"""Where an attack's random draws come from: one generator for the batch, or one stream per example."""


class Attack:
    """An evasion attack on a classifier that takes inputs in [0, 1] and normalises inside.

    Subclasses set `norm` ("Linf", "L2", "L1" or "L0") and implement `perturb` (bounded attacks) or
    `distances` (minimal-distance attacks, `minimal = True`). Strengths are in the attack's norm:
    L∞ as a fraction of the [0, 1] range, L2 and L1 as raw norms, L0 as a count of pixels changed.
    `Options` is the model of the attack's extra parameters, with types, ranges and defaults (spec:
    `options: {...}`; engine.spec.attack_options); `self.opts` holds them validated, defaults filled.
    """

    norm: ClassVar[str] = "Linf"
    minimal: ClassVar[bool] = False
    certified: ClassVar[bool] = False  # a certificate (a lower bound), not an attack: see attacks/smoothing.py
    smoothed: ClassVar[bool] = False  # attacks the smoothed classifier and judges by its prediction
    Options: ClassVar[type[AttackOptions]] = AttackOptions
    playground_eps: ClassVar[float | None] = None  # the Playground's default ε; None: not offered there
    playground_steps: ClassVar[int] = 10  # iterations on the Playground, where an answer takes under a second
    stop_when_fooled: bool = False  # iterative attacks that honour it drop examples once fooled

    def __init__(self, steps: int = 10, relative_step: float = 0.25, random_start: bool = True, **options):
        self.steps = steps
        self.relative_step = relative_step
        self.random_start = random_start
        self.opts = parse_options(type(self).__name__, options, self.Options).model_dump()

    def protocol_warning(self) -> str | None:
        """A message when this configuration is weaker than the attack's published standard, else None."""
        return None

    def cut(self, x: torch.Tensor, adv: torch.Tensor, eps: float) -> torch.Tensor | None:
        """The found perturbation shrunk into the ε-ball (BAP's "cut"), or None where the norm has no cut."""
        delta = adv - x
        if self.norm == "L2":
            return torch.clamp(x + delta * torch.clamp(eps / (flat_norm(delta) + 1e-12), max=1.0), 0.0, 1.0)
        if self.norm == "Linf":
            return torch.clamp(x + delta.clamp(-eps, eps), 0.0, 1.0)
        return None

    def distances(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Minimal-distance attacks: (per-example distance, adversarial examples); inf where it failed."""
        raise NotImplementedError(f"{type(self).__name__} is a bounded attack; use perturb()")

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, generator: Randomness = None
    ) -> torch.Tensor:
        """Return adversarial examples within the ε-ball around x and inside [0, 1]."""
        raise NotImplementedError

    def certificates(self, model: Any, x: torch.Tensor, generator: torch.Generator) -> Any:
        """Certificates (`certified = True`): per image a label and a certified radius."""
        raise NotImplementedError(f"{type(self).__name__} is an attack; it certifies nothing")

    def labels(
        self, model: nn.Module, x: torch.Tensor, generator: Randomness = None, batch_size: int = 250
    ) -> torch.Tensor:
        """The labels of the classifier this attack targets, on the CPU: the model's argmax (an attack
        on a smoothed classifier answers with that classifier's prediction)."""
        model.eval()
        with torch.no_grad():
            out = [model(to_input(x[i : i + batch_size], model)).argmax(1).cpu() for i in range(0, len(x), batch_size)]
        return torch.cat(out) if out else torch.empty(0, dtype=torch.long)

    @staticmethod
    def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """∂ mean cross-entropy / ∂ x, without weight gradients."""
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x), y)
        (grad,) = torch.autograd.grad(loss, x)
        return grad


class AttackRegistry(Registry[type[Attack]]):
    """The attack registry: registering a class also files its `Options` model under its name, where the
    spec's work bound reads it (engine.spec.attack_options.record_options); an attack is one module."""

    def register(self, name: str) -> Callable[[type[Attack]], type[Attack]]:
        """Return a decorator that files an attack class under `name`, with its options model."""
        file = super().register(name)

        def decorate(cls: type[Attack]) -> type[Attack]:
            record_options(name, cls.Options)
            return file(cls)

        return decorate


ATTACKS = AttackRegistry("attack")


def uniform_like(x: torch.Tensor, low: float, high: float, generator: Randomness) -> torch.Tensor:
    """Uniform noise shaped like x: per example from its own stream, else from `generator` on the CPU."""
    if isinstance(generator, ExampleStreams):
        return generator.uniform(x.shape[1:], low, high).to(x.device, x.dtype)
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype)
    return (noise * (high - low) + low).to(x.device)


def normal_like(x: torch.Tensor, generator: Randomness) -> torch.Tensor:
    """Standard normal noise shaped like x: per example from its own stream, else from `generator`."""
    if isinstance(generator, ExampleStreams):
        return generator.normal(x.shape[1:]).to(x.device, x.dtype)
    return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)


def flat_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm, shaped (N, 1, 1, 1) for broadcasting."""
    return t.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (t.dim() - 1)))


def norm_distance(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example size of a perturbation in a norm: L∞, L2, L1, or L0 as pixels (any channel) changed."""
    flat = delta.flatten(1)
    if norm == "Linf":
        return flat.abs().max(dim=1).values
    if norm == "L2":
        return flat.norm(p=2, dim=1)
    if norm == "L1":
        return flat.abs().sum(dim=1)
    return (delta.abs() > 1e-8).any(dim=1).flatten(1).sum(dim=1).float()


def seed_from(generator: Randomness) -> int:
    """A seed drawn from `generator` (for libraries that use the global RNG, like torchattacks)."""
    if isinstance(generator, ExampleStreams):
        return generator.seed()
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item()) if generator else 0
