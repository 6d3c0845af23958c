"""The attack playground: a few images of a cached checkpoint attacked live (well under a second).

Pure computation on a loaded model: no store writes. The dense model is the run's step 0, so the
same adversarial images (crafted on the pruned model) can be shown to both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.science.attacks import ATTACKS
from engine.science.device import to_input


def playground_attacks() -> dict[str, tuple[float, str]]:
    """The attacks the Playground offers (those whose class sets `playground_eps`), L∞ first: name →
    (default ε, norm)."""
    offered = {name: ATTACKS.get(name) for name in ATTACKS.names() if ATTACKS.get(name).playground_eps is not None}
    ranked = sorted(offered, key=lambda name: (offered[name].norm != "Linf", name != "pgd_linf", name))
    return {name: (float(offered[name].playground_eps or 0.0), offered[name].norm) for name in ranked}


@dataclass(frozen=True)
class Example:
    """One image attacked: arrays in [0, 1] (H, W) or (H, W, C) and each model's top-3 guesses."""

    index: int
    label: int
    clean: np.ndarray
    adversarial: np.ndarray
    perturbation: np.ndarray  # adversarial − clean, unscaled
    pruned_top3: list[tuple[int, float]]  # (class, probability) on the adversarial image
    dense_top3: list[tuple[int, float]]
    pruned_clean_top3: list[tuple[int, float]]


def _image(t: torch.Tensor) -> np.ndarray:
    array = t.detach().cpu().float().numpy()
    return array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0))


@torch.no_grad()
def top3(model: torch.nn.Module, x: torch.Tensor) -> list[list[tuple[int, float]]]:
    """The three most probable classes of each image, with their probabilities."""
    probs = torch.softmax(model(to_input(x, model)), dim=1)
    values, classes = probs.topk(min(3, probs.shape[1]), dim=1)
    return [[(int(c), float(v)) for c, v in zip(cs, vs)] for cs, vs in zip(classes.cpu(), values.cpu())]


def attack_examples(
    pruned: torch.nn.Module,
    dense: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: str,
    eps: float,
    indices: list[int],
    seed: int = 0,
) -> list[Example]:
    """Attack the chosen images on the pruned model at ε; report both models' guesses."""
    if attack not in playground_attacks():
        raise ValueError(f"attack: choose from {list(playground_attacks())}")
    xs, ys = x[indices], y[indices]
    device = next(pruned.parameters()).device
    xb, yb = to_input(xs, pruned), ys.to(device)
    kind = ATTACKS.get(attack)
    method = kind(steps=kind.playground_steps, relative_step=0.25)
    generator = torch.Generator().manual_seed(seed)
    if method.minimal:
        adv = method.cut(xb, method.distances(pruned, xb, yb, generator)[1], eps) if eps > 0 else xb
    else:
        adv = method.perturb(pruned, xb, yb, eps, generator) if eps > 0 else xb
    if adv is None:
        raise ValueError(f"attack: {attack} has no ε-ball to cut its examples to")
    adv = adv.detach().cpu()
    guesses, dense_guesses, clean_guesses = top3(pruned, adv), top3(dense, adv), top3(pruned, xs)
    return [
        Example(int(i), int(label), _image(c), _image(a), _image(a - c), g, d, cg)
        for i, label, c, a, g, d, cg in zip(indices, ys, xs, adv, guesses, dense_guesses, clean_guesses)
    ]
