"""Structured pruning's real speed-up: half the conv filters removed, latency against the dense model."""

from __future__ import annotations

import torch

from engine.datasets import DatasetInfo


def run(fraction: float = 0.5, model_name: str = "small_cnn") -> dict:
    """Median CPU latency at batch 1 and 128 of the dense, masked and physically smaller models."""
    from engine.methods import METHODS
    from engine.models import build_model
    from engine.pruning import apply_masks, prunable_layers
    from engine.shrink import shrink
    from engine.structured import norm_followers, silence_dead_channels
    from engine.device import prepare_model

    info = DatasetInfo(1, 28, 10, (0.5,), (0.25,), tuple(str(i) for i in range(10)))
    torch.manual_seed(0)
    model = prepare_model(build_model(model_name, info), torch.device("cpu")).eval()
    dense_b1, dense_b128 = _latency(model)
    criterion = METHODS.get("filter_layer")()
    layers = prunable_layers(model, False, criterion.layer_kinds)
    masks = criterion.select(layers, fraction, None, torch.Generator())
    apply_masks(layers, masks)
    silence_dead_channels(layers, masks, norm_followers(model))
    small = prepare_model(shrink(model, masks), torch.device("cpu")).eval()
    small_b1, small_b128 = _latency(small)
    x = torch.rand(64, 1, 28, 28)
    with torch.no_grad():
        same = float((small(x) - model(x)).abs().max())
    return {"model": model_name, "filters_removed": fraction, "params": sum(p.numel() for p in model.parameters()),
            "shrunk_params": sum(p.numel() for p in small.parameters()), "max_output_diff": same,
            "dense_ms_b1": round(dense_b1, 3), "shrunk_ms_b1": round(small_b1, 3),
            "dense_ms_b128": round(dense_b128, 2), "shrunk_ms_b128": round(small_b128, 2),
            "speedup_b1": round(dense_b1 / small_b1, 2), "speedup_b128": round(dense_b128 / small_b128, 2)}


def _latency(model) -> tuple[float, float]:
    from engine.efficiency import _median_ms
    from engine.device import to_input

    one, batch = torch.rand(1, 1, 28, 28), torch.rand(128, 1, 28, 28)
    return _median_ms(model, to_input(one, model), 200), _median_ms(model, to_input(batch, model), 30)
