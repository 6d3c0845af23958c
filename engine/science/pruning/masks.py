"""Pruning criteria (registered), exact-count masks, and mask bookkeeping.

Sparsity is the fraction of zero weights among prunable weights: conv and linear weights, the
final classifier only when the spec says so, biases and norm layers never. An unstructured mask
keeps exactly `n - round(s * n)` weights (per layer, or over all prunable weights for a global
criterion), the same count `torch.nn.utils.prune` uses, and masks only grow: a pruned weight
stays pruned. Structured criteria (engine.science.pruning.structured) prune whole filters or kernels of conv
layers; criteria that train (HYDRA, MRPF) override `select`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from engine.registry import Registry
from engine.science.models import classifier_name

Masks = dict[str, torch.Tensor]
Weighted = nn.Conv2d | nn.Linear
"""The layers whose weights pruning masks."""
Layers = dict[str, Weighted]


@dataclass
class PruneContext:
    """What a criterion that trains or probes may use: the model, training tensors, loss and spec."""

    model: nn.Module
    train: tuple[torch.Tensor, torch.Tensor]
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
    spec: Any  # the run's PruneSpec
    optimizer: str = "adam"
    report: Callable[[int, int], None] = lambda done, total: None
    notes: dict[str, Any] = field(default_factory=dict)  # what the criterion wants stored (e.g. MRS)
    augment: str | None = None  # the training batches' augmentation (engine.science.training.augment_batch)


class Criterion:
    """A pruning criterion: an importance score per weight, ranked globally or per layer."""

    scope: Literal["global", "layer"] = "layer"
    granularity: Literal["weight", "kernel", "filter"] = "weight"
    layer_kinds: tuple[type[Weighted], ...] = (nn.Conv2d, nn.Linear)

    def scores(self, weights: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Importance of every weight (higher is kept)."""
        raise NotImplementedError

    def select(
        self,
        layers: Layers,
        sparsity: float,
        previous: Masks | None,
        generator: torch.Generator,
        context: PruneContext | None = None,
    ) -> Masks:
        """The masks of one pruning step (criteria that train or probe override this)."""
        return compute_masks(layers, sparsity, self, previous, generator)


METHODS: Registry[type[Criterion]] = Registry("pruning method")


@METHODS.register("global_magnitude")
class GlobalMagnitude(Criterion):
    """Global magnitude: one |w| threshold across all prunable layers (Han et al. 2015)."""

    scope = "global"

    def scores(self, weights, generator):
        return {name: w.abs() for name, w in weights.items()}


@METHODS.register("layer_magnitude")
class LayerMagnitude(Criterion):
    """Layer-wise magnitude: every prunable layer pruned to the same sparsity by |w|."""

    scope = "layer"

    def scores(self, weights, generator):
        return {name: w.abs() for name, w in weights.items()}


@METHODS.register("random")
class RandomCriterion(Criterion):
    """Random (per layer): a seeded random score per weight; the baseline every method must beat."""

    scope = "layer"

    def scores(self, weights, generator):
        return {name: torch.rand(w.shape, generator=generator).to(w.device) for name, w in weights.items()}


def prunable_layers(
    model: nn.Module, include_classifier: bool = False, kinds: tuple[type[Weighted], ...] = (nn.Conv2d, nn.Linear)
) -> Layers:
    """Layers of `kinds` whose weights may be pruned, by module name, in model order."""
    head = classifier_name(model)
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, kinds) and (include_classifier or name != head)
    }


def _smallest(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the `count` lowest scores of a flat tensor (as torch.nn.utils.prune picks)."""
    if count == 0:
        return torch.empty(0, dtype=torch.long, device=scores.device)
    return torch.topk(scores, k=count, largest=False).indices


def compute_masks(
    layers: Layers,
    sparsity: float,
    criterion: Criterion,
    previous: Masks | None = None,
    generator: torch.Generator | None = None,
) -> Masks:
    """Masks (1 = kept) reaching `sparsity` exactly, nested inside `previous` masks."""
    generator = generator or torch.Generator().manual_seed(0)
    weights = {name: layer.weight.detach() for name, layer in layers.items()}
    scores = criterion.scores(weights, generator)
    if previous:
        # already-pruned weights rank below everything, so masks are nested
        scores = {n: s.masked_fill(previous[n].to(s.device) == 0, float("-inf")) for n, s in scores.items()}
    if criterion.scope == "global":
        flat = torch.cat([s.reshape(-1) for s in scores.values()])
        keep = torch.ones_like(flat)
        keep[_smallest(flat, round(sparsity * flat.numel()))] = 0.0
        return _split(keep, weights)
    masks = {}
    for name, s in scores.items():
        keep = torch.ones(s.numel(), device=s.device)
        keep[_smallest(s.reshape(-1), round(sparsity * s.numel()))] = 0.0
        masks[name] = keep.view_as(s)
    return masks


def _split(flat: torch.Tensor, like: dict[str, torch.Tensor]) -> Masks:
    out, start = {}, 0
    for name, w in like.items():
        out[name] = flat[start : start + w.numel()].view_as(w).clone()
        start += w.numel()
    return out


@torch.no_grad()
def apply_masks(layers: Layers, masks: Masks) -> None:
    """Zero the pruned weights in place (called after every optimiser step)."""
    for name, mask in masks.items():
        weight = layers[name].weight
        weight.mul_(mask.to(device=weight.device, dtype=weight.dtype))


def dense_masks(layers: Layers) -> Masks:
    """All-ones masks: the dense model."""
    return {name: torch.ones_like(layer.weight) for name, layer in layers.items()}


def overall_sparsity(masks: Masks) -> float:
    """Fraction of pruned weights over all masked layers."""
    total = sum(m.numel() for m in masks.values())
    zeros = sum(int((m == 0).sum()) for m in masks.values())
    return zeros / total if total else 0.0


def layer_table(model: nn.Module, masks: Masks) -> list[dict]:
    """One row per conv/linear layer: parameters, non-zero count, sparsity, prunable flag."""
    rows = []
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        numel = module.weight.numel()
        nonzero = int((masks[name] != 0).sum()) if name in masks else int((module.weight != 0).sum())
        rows.append(
            {
                "layer": name,
                "kind": type(module).__name__,
                "numel": numel,
                "nonzero": nonzero,
                "sparsity": 1.0 - nonzero / numel,
                "prunable": name in masks,
            }
        )
    return rows
