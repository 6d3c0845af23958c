"""Efficiency of one checkpoint: the E of AER, with ShrinkBench's definitions.

- compression ratio = all parameters / non-zero parameters;
- theoretical speed-up = dense FLOPs / sparse FLOPs, FLOPs counted by `torch.utils.flop_counter`
  for one input, each conv or linear layer's share scaled by its weight density;
- size = bytes of a sparse encoding: masked weights as a 1-bit mask plus their non-zero fp32
  values, every other tensor dense fp32;
- latency = median wall time of repeated forward passes at batch 1 and batch 128, on the CPU.
  Masked (unstructured) sparsity saves no CPU time: expect a latency ratio near 1;
- for filter pruning, the same for the physically smaller model (engine.shrink): its parameters,
  FLOPs, removed channels and latency, the speed-up that structured pruning really buys.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from engine.device import to_input
from engine.pruning import Masks
from engine.shrink import shrink
from engine.structured import dead_filters


def layer_flops(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """FLOPs of one forward pass of one input, per conv/linear module name (plus '' for the total)."""
    root = type(model).__name__
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(example[:1])
    counts = counter.get_flop_counts()
    flops = {"": int(counter.get_total_flops())}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            flops[name] = int(sum(counts.get(f"{root}.{name}", {}).values()))
    return flops


def _median_ms(model: nn.Module, batch: torch.Tensor, repeats: int) -> float:
    times = []
    with torch.inference_mode():
        model(batch)  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            model(batch)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _latencies(model: nn.Module, example: torch.Tensor, repeats: int) -> tuple[float, float]:
    batch = example[:1].repeat(128, *[1] * (example.dim() - 1))
    return (_median_ms(model, to_input(example[:1], model), repeats * 3),
            _median_ms(model, to_input(batch, model), repeats))


def measure_shrunk(model: nn.Module, masks: Masks, example: torch.Tensor, repeats: int = 10) -> dict[str, float]:
    """Parameters, FLOPs, removed channels and latency of the physically smaller model ({} if none)."""
    small = shrink(model, masks)
    if small is None:
        return {}
    device = next(model.parameters()).device
    small = small.to(device)
    b1, b128 = _latencies(small, example, repeats)
    return {"shrunk_params": sum(p.numel() for p in small.parameters()),
            "shrunk_flops": layer_flops(small, example.to(device))[""],
            "removed_channels": sum(int(dead_filters(m).sum()) for m in masks.values() if m.dim() == 4),
            "shrunk_latency_ms_b1": b1, "shrunk_latency_ms_b128": b128}


def measure(model: nn.Module, masks: Masks, example: torch.Tensor, repeats: int = 10) -> dict[str, float]:
    """Parameters, compression, FLOPs, theoretical speed-up, sparse size and latency of a checkpoint."""
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    pruned = sum(int((m == 0).sum()) for m in masks.values())
    flops = layer_flops(model, to_input(example, model))
    sparse_flops = flops[""] - sum(flops.get(name, 0) * float((m == 0).float().mean()) for name, m in masks.items())
    masked_numel = sum(m.numel() for m in masks.values())
    size = 4 * (params - masked_numel) + masked_numel / 8 + 4 * (masked_numel - pruned)
    b1, b128 = _latencies(model, example, repeats)
    return {
        "params": params, "nonzero_params": params - pruned, "compression_ratio": params / max(params - pruned, 1),
        "flops": flops[""], "sparse_flops": sparse_flops, "theoretical_speedup": flops[""] / max(sparse_flops, 1.0),
        "size_bytes": size, "latency_ms_b1": b1, "latency_ms_b128": b128,
    }
