"""The physically smaller model of a filter-pruned residual or branching network, through Torch-Pruning's
dependency graph (Fang et al., CVPR 2023).

The project's own criteria chose which filters are dead (their weights, bias and BatchNorm held at zero);
this module only removes them. Channels that the graph couples — the outputs of every convolution added
into one residual stream, or concatenated — are one group: a channel goes only when it is dead in every
convolution that writes it, so the smaller model computes what the masked one does (the tests compare
outputs). A channel alive in any coupled convolution stays in all of them.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from engine.science.pruning.masks import Masks
from engine.science.pruning.structured import dead_filters


def _index(idx) -> int:
    """Torch-Pruning's index (an int, or a hybrid index carrying `.idx`)."""
    return int(getattr(idx, "idx", idx))


def graph_shrink(model: nn.Module, masks: Masks, example: torch.Tensor) -> nn.Module | None:
    """A smaller copy of `model` without the filters dead in every coupled convolution; None when the graph
    cannot be traced or nothing can go."""
    import torch_pruning as tp  # noqa: PLC0415  the dependency graph: only when a residual network is shrunk

    if any(isinstance(m, nn.Conv2d) and m.groups != 1 for m in model.modules()):
        return None  # grouped and depthwise convolutions couple in and out channels: not shrunk here
    small = copy.deepcopy(model).cpu().eval()
    names = {module: name for name, module in small.named_modules()}
    try:
        graph = tp.DependencyGraph().build_dependency(small, example_inputs=example.cpu()[:1])
    except Exception:  # noqa: BLE001 - an untraceable model keeps its masked latency only
        return None
    dead = {n: set(dead_filters(m.cpu()).nonzero().flatten().tolist()) for n, m in masks.items() if m.dim() == 4}
    done: set[str] = set()  # convolutions whose output channels a group already pruned
    removed = 0
    for name, candidates in sorted(dead.items()):
        conv = small.get_submodule(name)
        if name in done or not candidates:
            continue
        group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=sorted(candidates))
        writers = _writers(group, names)
        done |= set(writers)
        removable = _dead_in_every_writer(writers, dead, sorted(candidates))
        removable = removable[: conv.out_channels - 1]  # a layer keeps one (silenced) channel, as the chain shrink does
        if removable:
            graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=removable).prune()
            removed += len(removable)
    return small.eval() if removed and _same_outputs(model, small, example) else None


def _same_outputs(model: nn.Module, small: nn.Module, example: torch.Tensor) -> bool:
    """Whether the smaller model computes what the masked one does (a guard: otherwise none is reported)."""
    with torch.no_grad():
        try:
            expected = model.eval()(example.to(next(model.parameters()).device)).cpu()
            return bool(torch.allclose(small(example.cpu()), expected, rtol=1e-4, atol=1e-5))
        except RuntimeError:
            return False


def _writers(group, names: dict) -> dict[str, list[int]]:
    """Each convolution whose output channels the group prunes, with the channels it prunes there (in the
    order of the group's root indices)."""
    import torch_pruning as tp  # noqa: PLC0415  the dependency graph: only when a residual network is shrunk

    return {
        names.get(dep.target.module, ""): [_index(idx) for idx in idxs]
        for dep, idxs in group.items
        if dep.handler == tp.prune_conv_out_channels and isinstance(dep.target.module, nn.Conv2d)
    }


def _dead_in_every_writer(writers: dict[str, list[int]], dead: dict[str, set[int]], candidates: list[int]) -> list[int]:
    """The candidates that every convolution writing the same channels has dead too."""
    keep = set(range(len(candidates)))
    for name, channels in writers.items():
        keep &= {i for i, channel in enumerate(channels) if channel in dead.get(name, set())}
    return [candidates[i] for i in sorted(keep)]
