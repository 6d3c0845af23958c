"""Masks: exact sparsity, nesting, agreement with torch.nn.utils.prune, masks surviving training."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from engine.science.pruning.masks import (
    METHODS,
    apply_masks,
    compute_masks,
    dense_masks,
    layer_table,
    overall_sparsity,
    prunable_layers,
)
from engine.science.training import train_steps

UNSTRUCTURED = ["global_magnitude", "layer_magnitude", "random"]


@pytest.fixture
def model(synthetic):
    from engine.science.models import build_model

    torch.manual_seed(0)
    return build_model("lenet5", synthetic.info)


@pytest.mark.parametrize("method", UNSTRUCTURED)
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.9, 0.99])
def test_achieved_sparsity_equals_the_target(model, method, sparsity):
    layers = prunable_layers(model)
    masks = compute_masks(layers, sparsity, METHODS.get(method)())
    if METHODS.get(method).scope == "global":
        total = sum(m.numel() for m in masks.values())
        assert sum(int((m == 0).sum()) for m in masks.values()) == round(sparsity * total)
    else:
        for mask in masks.values():
            assert int((mask == 0).sum()) == round(sparsity * mask.numel())


def test_classifier_is_left_alone_unless_asked(model):
    assert "fc3" not in prunable_layers(model)
    assert "fc3" in prunable_layers(model, include_classifier=True)


def test_global_magnitude_equals_torch_global_unstructured(model):
    reference = copy.deepcopy(model)
    ours = compute_masks(prunable_layers(model), 0.7, METHODS.get("global_magnitude")())
    ref_layers = prunable_layers(reference)
    torch_prune.global_unstructured(
        [(m, "weight") for m in ref_layers.values()], pruning_method=torch_prune.L1Unstructured, amount=0.7
    )
    for name, module in ref_layers.items():
        assert torch.equal(ours[name], module.get_buffer("weight_mask")), name


def test_layer_magnitude_equals_torch_l1_unstructured(model):
    layers = prunable_layers(model)
    ours = compute_masks(layers, 0.6, METHODS.get("layer_magnitude")())
    for name, module in layers.items():
        reference = torch_prune.L1Unstructured(amount=0.6).compute_mask(
            module.weight.detach(), torch.ones_like(module.weight)
        )
        assert torch.equal(ours[name], reference), name


def test_global_and_layer_magnitude_coincide_for_one_layer():
    layer = {"only": nn.Linear(20, 30)}
    a = compute_masks(layer, 0.55, METHODS.get("global_magnitude")())
    b = compute_masks(layer, 0.55, METHODS.get("layer_magnitude")())
    assert torch.equal(a["only"], b["only"])


def test_random_pruning_is_reproducible_with_a_seed(model):
    layers = prunable_layers(model)
    make = lambda seed: compute_masks(
        layers, 0.5, METHODS.get("random")(), generator=torch.Generator().manual_seed(seed)
    )
    assert all(torch.equal(a, b) for a, b in zip(make(3).values(), make(3).values()))
    assert not all(torch.equal(a, b) for a, b in zip(make(3).values(), make(4).values()))


@pytest.mark.parametrize("method", UNSTRUCTURED)
def test_cumulative_masks_are_nested(model, method):
    layers = prunable_layers(model)
    criterion, masks = METHODS.get(method)(), None
    history = []
    for target in (0.3, 0.6, 0.9):
        masks = compute_masks(layers, target, criterion, masks, torch.Generator().manual_seed(1))
        apply_masks(layers, masks)
        with torch.no_grad():  # weights drift during fine-tuning; pruned ones must stay pruned
            for layer in layers.values():
                layer.weight.add_(0.01 * torch.randn_like(layer.weight) * (layer.weight != 0))
        history.append(masks)
    for earlier, later in zip(history, history[1:]):
        for name in earlier:
            assert not bool(((earlier[name] == 0) & (later[name] == 1)).any()), name


def test_pruned_weights_stay_zero_through_training(synthetic):
    from engine.science.models import build_model

    torch.manual_seed(0)
    model = build_model("small_cnn", synthetic.info)
    layers = prunable_layers(model)
    masks = compute_masks(layers, 0.8, METHODS.get("global_magnitude")())
    apply_masks(layers, masks)
    train_steps(
        model,
        synthetic.x_train,
        synthetic.y_train,
        steps=5,
        batch_size=32,
        lr=1e-2,
        generator=torch.Generator().manual_seed(0),
        masked=(layers, masks),
    )
    for name, layer in layers.items():
        assert bool((layer.weight[masks[name] == 0] == 0).all()), name
    assert overall_sparsity(masks) == pytest.approx(0.8, abs=1e-5)


def test_layer_table_reports_every_conv_and_linear(model):
    layers = prunable_layers(model)
    masks = compute_masks(layers, 0.5, METHODS.get("layer_magnitude")())
    table = {row["layer"]: row for row in layer_table(model, masks)}
    assert set(table) == {"features.conv1", "features.conv2", "fc1", "fc2", "fc3"}
    assert table["fc3"]["prunable"] is False and table["fc3"]["sparsity"] == 0.0
    assert table["fc1"]["sparsity"] == pytest.approx(0.5, abs=1 / table["fc1"]["numel"])
    assert overall_sparsity(dense_masks(layers)) == 0.0


@pytest.mark.parametrize("method", ["filter_layer", "filter_random", "kernel_layer", "kernel_random"])
def test_per_layer_structured_pruning_never_empties_a_conv_layer_and_spreads_what_it_cannot_take(synthetic, method):
    """LeNet-5's conv1 has six filters: 93.75 % of six rounds to all six, which cut the network from 16×
    on. Every conv layer keeps a group; what conv1 cannot give, conv2 takes while it can."""
    from engine.science.models import build_model
    from engine.science.pruning.methods import METHODS
    from engine.science.pruning.structured import LAYER_FLOOR

    model = build_model("lenet5", synthetic.info)
    criterion = METHODS.get(method)()
    layers = prunable_layers(model, False, criterion.layer_kinds)
    total = sum(layer.weight.numel() for layer in layers.values())
    for sparsity in (0.5, 0.875, 0.9375, 0.984375):
        masks = criterion.select(layers, sparsity, None, torch.Generator().manual_seed(0))
        dims = (1, 2, 3) if criterion.granularity == "filter" else (2, 3)
        for name, mask in masks.items():
            assert int((mask.sum(dim=dims) > 0).sum()) >= LAYER_FLOOR, (sparsity, name)
        achieved = 1 - sum(float(m.sum()) for m in masks.values()) / total
        if sparsity <= 0.875:
            assert achieved == pytest.approx(sparsity, abs=0.01)
        assert achieved <= sparsity + 0.01
    at_16 = criterion.select(layers, 0.9375, None, torch.Generator().manual_seed(0))
    assert 1 - sum(float(m.sum()) for m in at_16.values()) / total > 0.925  # conv2 took conv1's share
