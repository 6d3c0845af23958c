"""Structured pruning's real speed-up: half the conv filters removed, latency against the dense model.

Eager PyTorch (the engine's layout, channels_last) and the deployment path (both models exported to
ONNX and run by onnxruntime), all four timed in turn round after round by the engine's own
measurement (engine.science.efficiency.interleaved_latencies: the fastest of the rounds, with the
spread), so that drift of the machine reaches every model alike.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from engine.science.data import DatasetInfo


def flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward pass (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return float(counter.get_total_flops())


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
    dense = prepare_model(build_model(model_name, info), torch.device("cpu")).eval()
    criterion = METHODS.get("filter_layer")()

    def pruned(removed: float) -> tuple[torch.nn.Module, torch.nn.Module]:
        """The dense model with `removed` of each conv layer's filters masked, and physically removed."""
        masked = copy.deepcopy(dense)
        layers = prunable_layers(masked, False, criterion.layer_kinds)
        masks = criterion.select(layers, removed, None, torch.Generator())
        apply_masks(layers, masks)
        silence_dead_channels(layers, masks, norm_followers(masked))
        small = shrink(masked, masks)
        assert small is not None, f"{model_name} is not a chain model: nothing to shrink"
        return masked, prepare_model(small, torch.device("cpu")).eval()

    model, small = pruned(fraction)
    x = torch.rand(64, 1, 28, 28)
    # the same layers with about 3 % of their filters: what one call costs in eager PyTorch beside its
    # arithmetic (Python, dispatch, allocation), the floor no pruning of this architecture goes below
    floor = pruned(0.97)[1]
    models: dict[str, Any] = {
        "dense": dense,
        "shrunk": small,
        "floor": floor,
        "onnx_dense": OnnxModel(dense, x),
        "onnx_shrunk": OnnxModel(small, x),
    }
    with torch.no_grad():
        same = float((small(x) - model(x)).abs().max())
        onnx_same = float((models["onnx_shrunk"](x) - small(x)).abs().max())
    result: dict[str, Any] = {
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
    # eager batch 1 at best: the call's fixed cost (the floor model's latency) plus the dense model's
    # arithmetic time scaled by the FLOPs the smaller model keeps
    kept = flops(small, x[:1]) / flops(dense, x[:1])
    fixed, dense_ms = result["floor_ms_b1"], result["dense_ms_b1"]
    result["flops_kept"] = round(kept, 3)
    result["eager_bound_speedup_b1"] = round(dense_ms / (fixed + (dense_ms - fixed) * kept), 2)
    # a structured speed-up's ideal is the FLOPs it removes; the faster of eager and ONNX against it
    result["flop_ideal_speedup"] = round(1 / kept, 2)
    result["best_speedup_b128"] = max(result["speedup_b128"], result["onnx_speedup_b128"])
    result["best_over_ideal_b128"] = round(result["best_speedup_b128"] * kept, 3)
    result["max_spread"] = max(value for key, value in result.items() if "_spread_" in key)
    return result
