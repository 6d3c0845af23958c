"""FLOPs, compression and speed-up with ShrinkBench's definitions."""

import pytest


def test_flops_follow_the_weight_density():
    from engine.science.data import load_dataset
    from engine.science.efficiency import layer_flops, measure
    from engine.science.models import build_model
    from engine.science.pruning.masks import METHODS, apply_masks, compute_masks, prunable_layers

    data = load_dataset("synthetic")
    model = build_model("mlp", data.info)
    flops = layer_flops(model, data.x_test[:1])
    assert flops["fc1"] == 2 * 256 * 256 and flops[""] == flops["fc1"] + flops["fc2"] + flops["fc3"]
    layers = prunable_layers(model)
    masks = compute_masks(layers, 0.5, METHODS.get("layer_magnitude")())
    apply_masks(layers, masks)
    cost = measure(model, masks, data.x_test[:1], min_run_time=0.01)
    assert cost["sparse_flops"] == pytest.approx(flops[""] - 0.5 * (flops["fc1"] + flops["fc2"]), rel=1e-6)
