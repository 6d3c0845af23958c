"""The physically smaller model of a filter-pruned network: pruned filters removed, not masked.

Works on chain models (an nn.Sequential of conv, BatchNorm, activation, pooling, flatten and
linear layers, nested Sequentials allowed): every conv keeps only its live filters, the layer
after it only the matching input channels (or, after a flatten, the matching features). Because
a pruned filter's bias and BatchNorm are held at zero (engine.science.pruning.structured), the smaller model
computes the same outputs as the masked one; the tests check it. Other architectures (residual
blocks) return None: their latency is measured on the masked model only.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from engine.science.pruning.masks import Masks
from engine.science.pruning.structured import dead_filters

PASS_THROUGH = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Identity, nn.Dropout)


def _leaves(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    out = []
    for name, child in module.named_children():
        full = f"{prefix}{name}"
        out += _leaves(child, f"{full}.") if isinstance(child, nn.Sequential) else [(full, child)]
    return out


def _conv(conv: nn.Conv2d, keep_out: torch.Tensor, keep_in: torch.Tensor | None) -> nn.Conv2d:
    weight = conv.weight.detach()[keep_out]
    if keep_in is not None:
        weight = weight[:, keep_in]
    new = nn.Conv2d(
        weight.shape[1],
        weight.shape[0],
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    with torch.no_grad():
        new.weight.copy_(weight)
        if conv.bias is not None:
            new.bias.copy_(conv.bias.detach()[keep_out])
    return new


def _norm(norm: nn.BatchNorm2d, keep: torch.Tensor) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(len(keep), norm.eps, norm.momentum, norm.affine, norm.track_running_stats)
    with torch.no_grad():
        if norm.affine:
            new.weight.copy_(norm.weight[keep])
            new.bias.copy_(norm.bias[keep])
        if norm.track_running_stats:
            new.running_mean.copy_(norm.running_mean[keep])
            new.running_var.copy_(norm.running_var[keep])
            new.num_batches_tracked.copy_(norm.num_batches_tracked)
    return new


def _linear(linear: nn.Linear, keep_in: torch.Tensor | None) -> nn.Linear:
    weight = linear.weight.detach() if keep_in is None else linear.weight.detach()[:, keep_in]
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=linear.bias is not None)
    with torch.no_grad():
        new.weight.copy_(weight)
        if linear.bias is not None:
            new.bias.copy_(linear.bias.detach())
    return new


def shrink(model: nn.Module, masks: Masks) -> nn.Module | None:
    """A smaller copy of a chain model without its fully pruned filters, or None if not a chain."""
    if not isinstance(model, nn.Sequential):
        return None
    model = copy.deepcopy(model).cpu()  # Module.cpu() moves in place: never move the caller's model
    layers: list[nn.Module] = []
    keep: torch.Tensor | None = None  # live channels (or features after a flatten) of the activation
    channels = None
    for name, module in _leaves(model):
        if isinstance(module, nn.Conv2d):
            if module.groups != 1:
                return None
            mask = masks.get(name)
            live = (
                torch.arange(module.out_channels) if mask is None else (~dead_filters(mask.cpu())).nonzero().flatten()
            )
            if len(live) == 0:  # a fully pruned layer still passes on one (silenced, all-zero) channel
                live = torch.zeros(1, dtype=torch.long)
            layers.append(_conv(module.cpu(), live, keep))
            keep, channels = live, module.out_channels
        elif isinstance(module, nn.BatchNorm2d):
            layers.append(_norm(module.cpu(), keep if keep is not None else torch.arange(module.num_features)))
        elif isinstance(module, nn.Flatten):
            layers.append(nn.Flatten())
            keep = None if keep is None else ("flatten", keep, channels)
        elif isinstance(module, nn.Linear):
            if isinstance(keep, tuple):
                _, live, total = keep
                per_channel = module.in_features // total
                keep = (live[:, None] * per_channel + torch.arange(per_channel)).flatten()
            layers.append(_linear(module.cpu(), keep))
            keep = None
        elif isinstance(module, PASS_THROUGH) or type(module).__name__ == "Normalize":
            layers.append(copy.deepcopy(module).cpu())
        else:
            return None
    return nn.Sequential(*layers).eval()
