"""HYDRA (Sehwag et al. 2020, arXiv:2002.10509; inspire-group/hydra `models/layers.py`).

Every prunable layer gets an importance score per weight, initialised as
s = √(6 / fan_in) · W / max|W| (so the first mask is exactly the per-layer magnitude mask). The
forward pass uses W ⊙ m, m = 1 on the top-k |s| of each layer (k the kept fraction, the same in
every layer). As in HYDRA's `GetSubnet.apply(self.popup_scores.abs(), k)`, the mask is computed
from |s| and the backward pass is straight-through *to |s|*, so autograd multiplies by sign(s):
∂L/∂s = ∂L/∂(W ⊙ m) · W · sign(s). Pruned weights still get gradients and may come back.

In the prune phase every conv and linear weight and bias is frozen (HYDRA's `freeze_vars`), while
BatchNorm's affine parameters keep learning unless `prune.freeze_bn` is set, as in HYDRA; scores
and BatchNorm learn by SGD (momentum 0.9, weight decay 1e-4, HYDRA's defaults) with a cosine
schedule on the fine-tuning loss. The final mask then goes to the ordinary masked fine-tuning (the
fine-tune phase, scores frozen). With a cumulative schedule a weight that re-enters comes back at
zero: use one_shot schedules.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from engine.science.device import to_input
from engine.science.pruning.masks import METHODS, Criterion, Layers, Masks, PruneContext
from engine.science.training import augment_batch, index_batches


def scaled_init(weight: torch.Tensor) -> torch.Tensor:
    """HYDRA's score initialisation √(6 / fan_in) · W / max|W| (per layer)."""
    fan_in = weight[0].numel()
    return math.sqrt(6.0 / fan_in) * weight / weight.abs().max().clamp_min(1e-12)


def top_k_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """1 on the kept |scores| of one layer: `round(sparsity · n)` entries are zeroed, as in prune.py."""
    flat = torch.ones(scores.numel(), device=scores.device)
    count = math.floor(sparsity * scores.numel() + 1e-9)  # HYDRA zeroes int((1 - k) · n)
    if count:
        flat[torch.topk(scores.abs().reshape(-1), k=count, largest=False).indices] = 0.0
    return flat.view_as(scores)


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, sparsity):
        return top_k_mask(scores, sparsity)

    @staticmethod
    def backward(ctx, grad):
        return grad, None  # straight through to |s|; autograd's abs() then applies sign(s)


SCORE_WEIGHT_DECAY = 1e-4  # HYDRA's --wd default, applied to the scores (and BatchNorm) in the prune phase
SCORE_MOMENTUM = 0.9


class ScoredWeight(nn.Module):
    """Parametrisation W ↦ W ⊙ topk(|s|), straight-through to |s| (hence ∂L/∂s carries sign(s))."""

    def __init__(self, weight: torch.Tensor, sparsity: float):
        super().__init__()
        self.scores = nn.Parameter(scaled_init(weight.detach()).clone())
        self.sparsity = sparsity

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * _StraightThrough.apply(self.scores.abs(), self.sparsity)


@METHODS.register("lwm")
class LeastWeightMagnitude(Criterion):
    """LWM (HYDRA's baseline): per-layer magnitude, one shot, then robust fine-tuning (Sehwag et al. 2020).

    Exactly HYDRA's scaled initialisation sent straight to fine-tuning (same top-k count); use it
    with a one_shot schedule and an adversarial fine-tuning mode to compare with `hydra` on one base.
    """

    scope = "layer"

    def select(self, layers, sparsity, previous, generator, context=None) -> Masks:
        scores = {n: scaled_init(layer.weight.detach()) for n, layer in layers.items()}
        if previous:
            scores = {n: s.abs().masked_fill(previous[n].to(s.device) == 0, 0.0) for n, s in scores.items()}
        return {n: top_k_mask(s, sparsity) for n, s in scores.items()}


@METHODS.register("hydra")
class Hydra(Criterion):
    """HYDRA: learn per-weight importance scores under the fine-tuning loss, then keep the top-k per layer.

    Prune phase: `prune.score_steps` batches of SGD (lr `prune.score_lr`, cosine) on the scores only;
    then the ordinary fine-tune phase on the surviving weights. Pair with an adversarial mode.
    """

    scope = "layer"

    def select(self, layers, sparsity, previous, generator, context: PruneContext | None = None) -> Masks:
        scores = optimise_scores(layers, sparsity, generator, context) if context else None
        if scores is None:
            return {n: top_k_mask(scaled_init(layer.weight.detach()), sparsity) for n, layer in layers.items()}
        return {n: top_k_mask(s, sparsity) for n, s in scores.items()}


def optimise_scores(
    layers: Layers, sparsity: float, generator: torch.Generator, context: PruneContext
) -> dict[str, torch.Tensor] | None:
    """The prune phase: train the scores (and BatchNorm affine, unless frozen) with every conv and
    linear weight frozen; return the final scores. BatchNorm's changes stay in the model."""
    steps, model = context.spec.score_steps, context.model
    if steps == 0:
        return None
    trainable = [] if context.spec.freeze_bn else norm_parameters(model)
    frozen = [p for p in model.parameters() if p.requires_grad and not any(p is q for q in trainable)]
    for p in frozen:
        p.requires_grad_(False)
    for layer in layers.values():
        parametrize.register_parametrization(layer, "weight", ScoredWeight(layer.weight, sparsity))
    try:
        scores = [layer.parametrizations.weight[0].scores for layer in layers.values()]
        _train_scores(model, scores + trainable, steps, generator, context)
        return {n: layer.parametrizations.weight[0].scores.detach().clone() for n, layer in layers.items()}
    finally:
        for layer in layers.values():
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
        for p in frozen:
            p.requires_grad_(True)


def norm_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The affine parameters of every BatchNorm layer (HYDRA leaves them trainable while pruning)."""
    return [
        p
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        for p in m.parameters(recurse=False)
        if p.requires_grad
    ]


def _train_scores(
    model: nn.Module, params: list[torch.Tensor], steps: int, generator: torch.Generator, context: PruneContext
) -> None:
    x, y = context.train
    opt = torch.optim.SGD(params, lr=context.spec.score_lr, momentum=SCORE_MOMENTUM, weight_decay=SCORE_WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    batches = index_batches(len(x), context.spec.batch_size, generator)
    device = next(iter(params)).device
    model.train()
    for i in range(steps):
        idx = next(batches)
        opt.zero_grad(set_to_none=True)
        inputs = to_input(augment_batch(x[idx], context.augment, generator), model)
        context.loss(model, inputs, y[idx].to(device)).backward()
        opt.step()
        schedule.step()
        context.report(i + 1, steps)
    model.eval()
