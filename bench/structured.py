"""Structured pruning's real speed-up: half the conv filters removed, latency against the dense model.

Eager PyTorch (the engine's layout, channels_last) and the deployment path (both models exported to
ONNX and run by onnxruntime), all four timed in turn round after round by the engine's own
measurement (engine.science.efficiency.interleaved_latencies: the fastest of the rounds, with the
spread), so that drift of the machine reaches every model alike.
"""

from __future__ import annotations

import copy

import torch

from engine.science.data import DatasetInfo


def run(fraction: float = 0.5, model_name: str = "small_cnn", rounds: int = 15) -> dict:
    """CPU latency at batch 1 and 128 of the dense model and the physically smaller one, eager and ONNX."""
    from engine.science.device import prepare_model
    from engine.science.efficiency import OnnxModel, interleaved_latencies
    from engine.science.models import build_model
    from engine.science.pruning.masks import apply_masks, prunable_layers
    from engine.science.pruning.methods import METHODS
    from engine.science.pruning.shrink import shrink
    from engine.science.pruning.structured import norm_followers, silence_dead_channels

    info = DatasetInfo(1, 28, 10, (0.5,), (0.25,), tuple(str(i) for i in range(10)))
    torch.manual_seed(0)
    model = prepare_model(build_model(model_name, info), torch.device("cpu")).eval()
    dense = copy.deepcopy(model)
    criterion = METHODS.get("filter_layer")()
    layers = prunable_layers(model, False, criterion.layer_kinds)
    masks = criterion.select(layers, fraction, None, torch.Generator())
    apply_masks(layers, masks)
    silence_dead_channels(layers, masks, norm_followers(model))
    small = prepare_model(shrink(model, masks), torch.device("cpu")).eval()
    x = torch.rand(64, 1, 28, 28)
    models = {"dense": dense, "shrunk": small, "onnx_dense": OnnxModel(dense, x), "onnx_shrunk": OnnxModel(small, x)}
    with torch.no_grad():
        same = float((small(x) - model(x)).abs().max())
        onnx_same = float((models["onnx_shrunk"](x) - small(x)).abs().max())
    result = {
        "model": model_name,
        "filters_removed": fraction,
        "params": sum(p.numel() for p in model.parameters()),
        "shrunk_params": sum(p.numel() for p in small.parameters()),
        "max_output_diff": same,
        "onnx_max_output_diff": onnx_same,
    }
    for batch in (1, 128):
        timed = interleaved_latencies(list(models.values()), x, batch, rounds=rounds, min_run_time=0.02)
        latency = dict(zip(models, timed))
        for name, measured in latency.items():
            result[f"{name}_ms_b{batch}"] = round(measured.ms, 3)
            result[f"{name}_spread_b{batch}"] = round(measured.spread, 3)
        result[f"speedup_b{batch}"] = round(latency["dense"].ms / latency["shrunk"].ms, 2)
        result[f"onnx_speedup_b{batch}"] = round(latency["onnx_dense"].ms / latency["onnx_shrunk"].ms, 2)
    result["max_spread"] = max(value for key, value in result.items() if "_spread_" in key)
    return result
