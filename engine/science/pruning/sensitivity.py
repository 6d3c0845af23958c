"""Module Robustness Sensitivity (MRS) and MRPF (Bai et al. 2024, arXiv:2410.15176).

The paper's exact formula was not available; this is our documented reading, after RiFT's Module
Robust Criticality (Zhu et al. 2023), which the paper builds on:

    MRS(l) = max over ‖ΔW_l‖₂ ≤ radius · ‖W_l‖₂ of L_adv(W + ΔW_l) − L_adv(W)

on a fixed set of PGD-10 adversarial examples. As RiFT's `layer_sharpness`: `ascent_steps` epochs,
each a pass of mini-batch gradient-ascent steps (SGD, lr 1, batches of `batch_size`, shuffled) on
layer l's weights alone, then one projection back into the relative ball and the loss on the whole
set; MRS keeps the largest loss seen. (RiFT uses batches of 512 over a whole training set; our
probes hold a few hundred examples, hence smaller batches so that an epoch is several steps.)
Each probe also records its *reach*: ‖ΔW‖ / radius where the loss peaked, 1 on the ball's edge.
A reach well below 1 means the ascent stalled inside the ball, so MRS there reflects the size of
the gradient more than the worst case. Only the layer's kept (unpruned) weights move, and its
weights are restored bit for bit after its probe. MRS ≥ 0 since ΔW = 0 is allowed.

MRPF: MRS → per-layer pruning ratios p_l = clip(λ / MRS_l, p_min, p_max), λ chosen so that
Σ n_l p_l = P · N (more sensitive layers are pruned less), then filter pruning of each layer to
its ratio and adversarial fine-tuning (the run's fine-tuning mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.report.ratios import ratios_from_sensitivity
from engine.science.attacks.pgd import PGDLinf
from engine.science.device import to_input
from engine.science.pruning.masks import METHODS, Layers, Masks, PruneContext, prunable_layers
from engine.science.pruning.structured import Structured, expand_groups
from engine.spec.runspec import MRSSpec


def adversarial_set(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: MRSSpec, generator: torch.Generator
) -> torch.Tensor:
    """The fixed PGD-10 L∞ examples (ε = spec.eps) the probe climbs the loss on."""
    model.eval()
    return PGDLinf(steps=10, relative_step=0.25).perturb(model, x, y, spec.eps, generator).detach()


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


@dataclass(frozen=True)
class LayerProbe:
    """One layer's MRS (the largest adversarial-loss rise found) and how far into its ball the probe got."""

    mrs: float
    reach: float  # ‖ΔW‖ / radius where the loss peaked (0 if it never rose)


def layer_sensitivity(
    model: nn.Module,
    layer: nn.Module,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    spec: MRSSpec,
    mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> LayerProbe:
    """MRS of one layer: the largest adversarial-loss rise within the relative weight ball (RiFT's ascent)."""
    weight = layer.weight
    original = weight.detach().clone()
    radius = spec.radius * float(original.norm())
    keep = torch.ones_like(original) if mask is None else mask.to(original)
    generator = generator or torch.Generator().manual_seed(0)
    with torch.no_grad():
        start = float(_loss(model, x_adv, y))
    best, reach, delta = start, 0.0, torch.zeros_like(original)
    try:
        for _ in range(spec.ascent_steps):
            for idx in torch.randperm(len(x_adv), generator=generator).split(spec.batch_size):
                idx = idx.to(x_adv.device)
                with torch.enable_grad():
                    (grad,) = torch.autograd.grad(_loss(model, x_adv[idx], y[idx]), weight)
                delta = delta + spec.lr * grad * keep
                with torch.no_grad():
                    weight.copy_(original + delta)
            size = float(delta.norm())
            if size > radius:
                delta = delta * (radius / size)
            with torch.no_grad():
                weight.copy_(original + delta)
                loss = float(_loss(model, x_adv, y))
            if loss > best:
                best, reach = loss, min(float(delta.norm()) / radius, 1.0) if radius > 0 else 0.0
    finally:
        with torch.no_grad():
            weight.copy_(original)
    return LayerProbe(best - start, reach)


def sensitivity(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: MRSSpec,
    generator: torch.Generator,
    masks: Masks | None = None,
    layers: Layers | None = None,
) -> dict[str, LayerProbe]:
    """MRS and reach of every conv and linear layer (or of `layers`) on `spec.n_samples` examples of (x, y)."""
    model.eval()
    device = next(model.parameters()).device
    x, y = to_input(x[: spec.n_samples], model), y[: spec.n_samples].to(device)
    x_adv = adversarial_set(model, x, y, spec, generator)
    layers = layers if layers is not None else prunable_layers(model, include_classifier=True)
    masks = masks or {}
    return {
        name: layer_sensitivity(model, layer, x_adv, y, spec, masks.get(name), generator)
        for name, layer in layers.items()
    }


FILTER_FLOOR = 4
"""[inf] MRPF keeps at least this many filters in every conv layer (our reading: a ratio that empties a
layer cuts the network, and the paper's ratios never go there)."""


@METHODS.register("mrpf")
class MRPF(Structured):
    """MRPF: per-layer filter-pruning ratios from Module Robustness Sensitivity (higher MRS, pruned less).

    At each pruning step, MRS of every conv layer is probed on training examples (prune.mrs), mapped
    to ratios hitting the step's global sparsity (every layer keeping at least FILTER_FLOOR filters, [inf]),
    and each layer loses its lowest-L1 filters.
    """

    granularity = "filter"
    scope = "layer"

    def select(self, layers, sparsity, previous, generator, context: PruneContext | None = None) -> Masks:
        if context is None:
            ratios = {name: sparsity for name in layers}
        else:
            x, y = context.train
            idx = torch.randperm(len(x), generator=generator)[: context.spec.mrs.n_samples]
            probes = sensitivity(context.model, x[idx], y[idx], context.spec.mrs, generator, previous, layers)
            mrs = {name: probe.mrs for name, probe in probes.items()}
            sizes = {name: layer.weight.numel() for name, layer in layers.items()}
            caps = {name: min(0.95, 1 - FILTER_FLOOR / layer.weight.shape[0]) for name, layer in layers.items()}
            ratios = ratios_from_sensitivity(mrs, sizes, sparsity, p_max=caps)
            context.notes["ratios"] = ratios
            context.notes["ratio_mrs"] = mrs  # the sensitivities that set the ratios, before this prune
        return ratio_filter_masks(layers, ratios, previous, self, generator)


def ratio_filter_masks(
    layers: Layers,
    ratios: dict[str, float],
    previous: Masks | None,
    criterion: Structured,
    generator: torch.Generator,
) -> Masks:
    """Each layer pruned (lowest-L1 filters first, nested in `previous`) to its own ratio."""
    weights = {name: layer.weight.detach() for name, layer in layers.items()}
    scores = criterion.group_scores(weights, generator)
    masks = {}
    for name, s in scores.items():
        if previous:
            s = s.masked_fill(previous[name].to(s.device).flatten(1).sum(1) == 0, float("-inf"))
        keep = torch.ones_like(s)
        already = int((s == float("-inf")).sum())
        count = max(round(ratios[name] * s.numel()), already)
        keep[torch.topk(s, k=count, largest=False).indices] = 0.0
        masks[name] = expand_groups(keep, weights[name])
    return masks
