"""Efficiency of one checkpoint: the E of AER, with ShrinkBench's definitions.

- compression ratio = all parameters / non-zero parameters;
- theoretical speed-up = dense FLOPs / sparse FLOPs, FLOPs counted by `torch.utils.flop_counter`
  for one input, each conv or linear layer's share scaled by its weight density;
- size = bytes of a sparse encoding: masked weights as a 1-bit mask plus their non-zero fp32
  values, every other tensor dense fp32;
- latency = median wall time of a forward pass at batch 1 and batch 128 (torch.utils.benchmark), on the CPU.
  Masked (unstructured) sparsity saves no CPU time: expect a latency ratio near 1;
- for filter pruning, the same for the physically smaller model (engine.science.pruning.shrink): its parameters,
  FLOPs, removed channels and latency, the speed-up that structured pruning really buys;
- the *effective* size: a kept weight counts only if it lies on a path from the input to the
  output. A pruned filter silences every weight of the next layer that reads its channel, and a
  channel nothing reads makes the weights feeding it useless; neither does anything, yet the
  nominal count keeps them. `effective_params` (all parameters minus the conv and linear weights
  off every path, pruned or not), `effective_sparsity` (the share of prunable weights off every
  path) and `effective_compression` stand beside the nominal figures for every method.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from engine.science.device import to_input
from engine.science.pruning.masks import Masks
from engine.science.pruning.shrink import shrink
from engine.science.pruning.structured import dead_filters

# torch.utils.benchmark imports cpp_extension, which logs "No CUDA runtime is found" on CPU machines
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
from torch.utils import benchmark  # noqa: E402  (after the logger is quietened)


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


def _median_ms(model: nn.Module, batch: torch.Tensor, min_run_time: float) -> float:
    """Median milliseconds of one forward pass: torch.utils.benchmark warms up, sizes blocks of calls
    to the timer's resolution and reports the median over blocks, at this process's thread count."""
    timer = benchmark.Timer(
        "model(batch)", globals={"model": model, "batch": batch}, num_threads=torch.get_num_threads()
    )
    with torch.inference_mode():
        return timer.blocked_autorange(min_run_time=min_run_time).median * 1000


def _latencies(model: nn.Module, example: torch.Tensor, min_run_time: float) -> tuple[float, float]:
    batch = example[:1].repeat(128, *[1] * (example.dim() - 1))
    return (
        _median_ms(model, to_input(example[:1], model), min_run_time),
        _median_ms(model, to_input(batch, model), min_run_time),
    )


def effective_masks(model: nn.Module, masks: Masks, example: torch.Tensor) -> Masks:
    """Per conv and linear layer, 1 where a weight is kept *and* lies on an input → output path.

    One forward and backward pass of a copy whose kept weights are 1, pruned ones 0, biases 0 and
    BatchNorm the identity, on an all-ones input: every activation is ≥ 0, a channel is positive
    exactly where some path from the input reaches it, and the output's gradient reaches exactly the
    channels with a path to the output. A weight's gradient (upstream × its input) is then > 0 exactly
    where both hold. Layers without a mask count their non-zero weights as kept.
    """
    probe = copy.deepcopy(model).double().eval()
    layers = {n: m for n, m in probe.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    with torch.no_grad():
        for name, layer in layers.items():
            kept = masks[name] if name in masks else (layer.weight != 0)
            layer.weight.copy_(kept.to(layer.weight))
            if layer.bias is not None:
                layer.bias.zero_()
        for module in probe.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                _identity_norm(module)
            elif type(module).__name__ == "Normalize":
                module.mean.zero_()
                module.std.fill_(1.0)
    ones = torch.ones_like(example[:1], dtype=torch.float64, device=next(probe.parameters()).device)
    weights = [layer.weight for layer in layers.values()]
    grads = torch.autograd.grad(probe(ones).sum(), weights, allow_unused=True)
    return {name: _on_path(layer.weight.detach(), grad) for (name, layer), grad in zip(layers.items(), grads)}


def _on_path(kept: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
    if grad is None:  # a layer the forward pass never used
        return torch.zeros_like(kept, dtype=torch.float32)
    return ((kept > 0) & (grad > 0)).float()


def _identity_norm(norm: nn.modules.batchnorm._BatchNorm) -> None:
    if norm.affine:
        norm.weight.fill_(1.0)
        norm.bias.zero_()
    if norm.track_running_stats:
        norm.running_mean.zero_()
        norm.running_var.fill_(1.0)
    norm.eps = 0.0


def measure_effective(model: nn.Module, masks: Masks, example: torch.Tensor) -> tuple[dict[str, float], dict[str, int]]:
    """Effective parameters, sparsity and compression, and each layer's effective kept weights."""
    effective = effective_masks(model, masks, example)
    counts = {name: int(m.sum()) for name, m in effective.items()}
    layers = dict(model.named_modules())
    params = sum(p.numel() for p in model.parameters())
    dead = sum(layers[name].weight.numel() - count for name, count in counts.items())
    prunable = sum(m.numel() for m in masks.values())
    live_prunable = sum(counts[name] for name in masks)
    effective_params = params - dead
    return (
        {
            "effective_params": effective_params,
            "effective_sparsity": 1.0 - live_prunable / prunable if prunable else 0.0,
            "effective_compression": params / max(effective_params, 1),
        },
        counts,
    )


def measure_shrunk(
    model: nn.Module, masks: Masks, example: torch.Tensor, min_run_time: float = 0.1
) -> dict[str, float]:
    """Parameters, FLOPs, removed channels and latency of the physically smaller model ({} if none)."""
    small = shrink(model, masks)
    if small is None:
        return {}
    device = next(model.parameters()).device
    small = small.to(device)
    b1, b128 = _latencies(small, example, min_run_time)
    return {
        "shrunk_params": sum(p.numel() for p in small.parameters()),
        "shrunk_flops": layer_flops(small, example.to(device))[""],
        "removed_channels": sum(int(dead_filters(m).sum()) for m in masks.values() if m.dim() == 4),
        "shrunk_latency_ms_b1": b1,
        "shrunk_latency_ms_b128": b128,
    }


def measure(model: nn.Module, masks: Masks, example: torch.Tensor, min_run_time: float = 0.1) -> dict[str, float]:
    """Parameters, compression, FLOPs, theoretical speed-up, sparse size and latency of a checkpoint."""
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    pruned = sum(int((m == 0).sum()) for m in masks.values())
    flops = layer_flops(model, to_input(example, model))
    sparse_flops = flops[""] - sum(flops.get(name, 0) * float((m == 0).float().mean()) for name, m in masks.items())
    masked_numel = sum(m.numel() for m in masks.values())
    size = 4 * (params - masked_numel) + masked_numel / 8 + 4 * (masked_numel - pruned)
    b1, b128 = _latencies(model, example, min_run_time)
    return {
        "params": params,
        "nonzero_params": params - pruned,
        "compression_ratio": params / max(params - pruned, 1),
        "flops": flops[""],
        "sparse_flops": sparse_flops,
        "theoretical_speedup": flops[""] / max(sparse_flops, 1.0),
        "size_bytes": size,
        "latency_ms_b1": b1,
        "latency_ms_b128": b128,
    }
