"""Residual networks shrink too: Torch-Pruning's dependency graph removes the filters the project's own
criterion killed, coupled channels together, and the smaller model computes what the masked one does."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.science.data import DatasetInfo
from engine.science.efficiency import shrunk_model
from engine.science.models import build_model
from engine.science.pruning.graph_shrink import graph_shrink
from engine.science.pruning.masks import apply_masks, prunable_layers
from engine.science.pruning.methods import METHODS
from engine.science.pruning.structured import norm_followers, silence_dead_channels

CIFAR = DatasetInfo(3, 32, 10, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), tuple(str(i) for i in range(10)))


def filter_pruned(name: str, width: float | None, sparsity: float = 0.6):
    """A model with trained-looking BatchNorm statistics, filter-pruned and silenced like a checkpoint."""
    torch.manual_seed(0)
    model = build_model(name, CIFAR, width).eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):  # non-trivial statistics: a wrong removal would show
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    criterion = METHODS.get("filter_global")()
    layers = prunable_layers(model, False, criterion.layer_kinds)
    masks = criterion.select(layers, sparsity, None, torch.Generator().manual_seed(0))
    apply_masks(layers, masks)
    silence_dead_channels(layers, masks, norm_followers(model))
    return model, masks


@pytest.mark.parametrize(("name", "width"), [("resnet8", None), ("torchvision:resnet18", 0.25)])
def test_a_residual_network_becomes_physically_smaller_with_the_masked_models_outputs(name, width):
    model, masks = filter_pruned(name, width)
    x = torch.rand(16, 3, 32, 32)
    small = shrunk_model(model, masks, x)
    assert small is not None
    assert small is not None
    params = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in small.parameters()) < 0.8 * params
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5, rtol=1e-4)


def test_a_channel_alive_in_one_branch_of_a_residual_addition_stays_in_all():
    from engine.science.pruning.masks import dense_masks

    model, _ = filter_pruned("resnet8", None, sparsity=0.0)
    layers = prunable_layers(model, False, (nn.Conv2d,))
    masks = dense_masks(layers)
    killed = {"stem.0": [0, 1, 2, 3], "layer1.conv2": [2, 3, 4, 5], "layer1.conv1": [7, 8]}
    for name, filters in killed.items():
        masks[name][filters] = 0
    apply_masks(layers, masks)
    silence_dead_channels(layers, masks, norm_followers(model))
    x = torch.rand(8, 3, 32, 32)
    small = graph_shrink(model, masks, x)
    # layer1's stream (identity shortcut) is written by the stem and by layer1.conv2: only 2 and 3 are dead in both
    assert small.stem[0].out_channels == small.layer1.conv2.out_channels == 14
    assert small.layer1.conv1.out_channels == 14  # not coupled: both dead filters go
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5, rtol=1e-4)


def test_depthwise_networks_are_left_to_the_masked_latency():
    model, masks = filter_pruned("torchvision:mobilenet_v2", 0.5)
    assert graph_shrink(model, masks, torch.rand(2, 3, 32, 32)) is None
