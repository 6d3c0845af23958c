"""Efficiency of one checkpoint: the E of AER, with ShrinkBench's definitions.

- compression ratio = all parameters / non-zero parameters;
- theoretical speed-up = dense FLOPs / sparse FLOPs, FLOPs counted by `torch.utils.flop_counter`
  for one input, each conv or linear layer's share scaled by its weight density;
- size = bytes of a sparse encoding: masked weights as a 1-bit mask plus their non-zero fp32
  values, every other tensor dense fp32;
- latency = wall time of a forward pass at batch 1 and batch 128 on this CPU, measured so that noise cannot
  pass for a speed-up: the checkpoint and its dense reference (and, for filter pruning, the physically
  smaller model) are timed in turn, round after round (a busy spell slows them alike); each round is the
  mean of a block of calls (torch.utils.benchmark, about 10 ms), each latency the fastest round (the
  least disturbed), stored with its spread (median / fastest round − 1). Masked (unstructured) sparsity is
  the dense computation: its latency equals the dense one within the spread;
- for filter pruning, the same for the physically smaller model (engine.science.pruning.shrink): its parameters,
  FLOPs, removed channels and latency, the speed-up that structured pruning really buys; and, on the
  deployment path a user would take, the dense and the smaller model exported to ONNX and timed in
  onnxruntime the same way (`onnx_dense_*`, `onnx_shrunk_*`);
- the *effective* size: a kept weight counts only if it lies on a path from the input to the
  output. A pruned filter silences every weight of the next layer that reads its channel, and a
  channel nothing reads makes the weights feeding it useless; neither does anything, yet the
  nominal count keeps them. `effective_params` (all parameters minus the conv and linear weights
  off every path, pruned or not), `effective_sparsity` (the share of prunable weights off every
  path) and `effective_compression` stand beside the nominal figures for every method.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from engine.science.data import KNOWN_INFO, DatasetInfo
from engine.science.device import to_input
from engine.science.models import build_model
from engine.science.pruning.graph_shrink import graph_shrink
from engine.science.pruning.masks import Masks
from engine.science.pruning.shrink import shrink
from engine.science.pruning.structured import dead_filters

# torch.utils.benchmark imports cpp_extension, which logs "No CUDA runtime is found" on CPU machines
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
from torch.utils import benchmark  # noqa: E402  (after the logger is quietened)


def example_pass_seconds(
    model_name: str, dataset: str, width: float | None = None, batch: int = 16, info: DatasetInfo | None = None
) -> float | None:
    """Seconds of one training example-pass (forward, backward and an SGD step, per image) of a model
    built for a built-in data set (or for the shape `info` read from a user's files), timed on this
    machine: the fastest of three steps after a warm-up. None where the shape is unknown."""
    info = info or KNOWN_INFO.get(dataset)
    if info is None:
        return None
    model = build_model(model_name, info, width).train()
    x = to_input(torch.rand(batch, info.channels, info.size, info.size), model)
    y = torch.arange(batch) % info.num_classes
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    times = []
    for _ in range(4):
        started = time.perf_counter()
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return min(times[1:]) / batch


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


LATENCY_ROUNDS = 5
BATCHES = (1, 128)


@dataclass(frozen=True)
class Latency:
    """Milliseconds of one forward pass (the fastest round) and the rounds' spread (median / fastest − 1)."""

    ms: float
    spread: float


def onnx_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    """The model as an ONNX file (torch.onnx's exporter, batch axis dynamic), traced on `example`."""
    # two images at least: traced on one, the exporter specialises the batch axis to 1 (a guard, not a Dim)
    example = example[:2].detach().cpu()
    example = example.expand(2, *example.shape[1:]).contiguous()
    batch = torch.export.Dim("batch", min=1, max=4096)
    with _quiet_exporter():
        program = torch.onnx.export(
            copy.deepcopy(model).cpu().eval(), (example,), dynamo=True, dynamic_shapes=({0: batch},), report=False
        )
    return program.model_proto.SerializeToString()


class OnnxModel:
    """A model exported to ONNX (torch.onnx's exporter, batch axis dynamic) and run by onnxruntime on the
    CPU at this process's thread count: the deployment path a user would take. Called like the model."""

    def __init__(self, model: nn.Module, example: torch.Tensor) -> None:
        self.serialized = onnx_bytes(model, example)
        self.sessions: dict[int, Any] = {}
        self.session = self.session_for(torch.get_num_threads())
        self.input = self.session.get_inputs()[0].name

    def session_for(self, threads: int) -> Any:
        """An onnxruntime session running on `threads` intra-op threads (built once per count)."""
        import onnxruntime  # noqa: PLC0415  only this deployment measurement needs it

        if threads not in self.sessions:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            # onnxruntime's threads spin-wait after each call by default, stealing the cores from whatever
            # is timed next (torch's own threads, in the interleaved rounds): they sleep instead
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.sessions[threads] = onnxruntime.InferenceSession(
                self.serialized, options, providers=["CPUExecutionProvider"]
            )
        return self.sessions[threads]

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits of a batch (a plain contiguous CPU tensor)."""
        array = batch.detach().cpu().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self.input: array})[0])


def _quiet_exporter() -> contextlib.redirect_stdout:
    """torch.onnx prints its progress; a run's log has no use for it."""
    return contextlib.redirect_stdout(io.StringIO())


def _timer(model: nn.Module | OnnxModel, inputs: torch.Tensor, threads: int) -> benchmark.Timer:
    """A timer of one forward pass on `threads` threads. An ONNX model is timed as a deployment calls it:
    its session's run on a ready NumPy array, without the tensor conversions of `OnnxModel.__call__`."""
    if isinstance(model, OnnxModel):
        feed = {model.input: inputs.detach().cpu().contiguous().numpy()}
        return benchmark.Timer("run(None, feed)", globals={"run": model.session_for(threads).run, "feed": feed})
    return benchmark.Timer(
        "model(batch)", globals={"model": model, "batch": to_input(inputs, model)}, num_threads=threads
    )


def thread_choices(batch: int) -> tuple[int, ...]:
    """The thread counts a model is timed at: one batch-1 pass of a small model is often fastest on one
    thread (splitting it costs more than it saves), so batch 1 also tries one; each model keeps its best."""
    threads = torch.get_num_threads()
    return (threads,) if batch > 1 or threads == 1 else (threads, 1)


def interleaved_latencies(
    models: list[nn.Module | OnnxModel],
    example: torch.Tensor,
    batch: int,
    rounds: int = LATENCY_ROUNDS,
    min_run_time: float = 0.01,
) -> list[Latency]:
    """Each model's latency at `batch`, the models timed in turn round after round (torch.utils.benchmark)
    at each of `thread_choices(batch)`: each round times a block of calls sized once, after a warm-up
    call, to last about `min_run_time`; per model its best thread count's fastest round (the least
    disturbed) and that count's spread: how far its typical (median) round lies above it (median /
    fastest − 1). Every model gets the same thread counts to choose from."""
    inputs = example[:1].repeat(batch, *[1] * (example.dim() - 1))
    choices = thread_choices(batch)
    timers = [_timer(m, inputs, threads) for m in models for threads in choices]
    means: list[list[float]] = [[] for _ in timers]
    with torch.inference_mode():
        blocks = [max(1, math.ceil(min_run_time / max(timer.timeit(1).mean, 1e-6))) for timer in timers]
        for _ in range(rounds):
            for timer, block, times in zip(timers, blocks, means):
                times.append(timer.timeit(block).mean * 1000)
    # a block the timer cannot resolve reads 0: floored, so no spread is ever infinite or NaN in the store
    measured = [Latency(max(min(t), 1e-9), statistics.median(t) / max(min(t), 1e-9) - 1) for t in means]
    per_model = [measured[i : i + len(choices)] for i in range(0, len(measured), len(choices))]
    return [min(options, key=lambda latency: latency.ms) for options in per_model]


def latency_columns(
    models: dict[str, nn.Module | OnnxModel], example: torch.Tensor, min_run_time: float
) -> dict[str, float]:
    """`{prefix}latency_ms_b{B}` and `{prefix}latency_spread_b{B}` for each named model (prefix → model),
    all of them timed in one interleaved measurement per batch size."""
    columns: dict[str, float] = {}
    for batch in BATCHES:
        measured = interleaved_latencies(list(models.values()), example, batch, min_run_time=min_run_time)
        for prefix, latency in zip(models, measured):
            columns[f"{prefix}latency_ms_b{batch}"] = latency.ms
            columns[f"{prefix}latency_spread_b{batch}"] = latency.spread
    return columns


def effective_masks(model: nn.Module, masks: Masks, example: torch.Tensor) -> Masks:
    """Per conv and linear layer, 1 where a weight is kept *and* lies on an input → output path.

    One forward and backward pass of a copy whose kept weights are 1, pruned ones 0 and BatchNorm the
    identity, on an all-ones input: every activation is ≥ 0, a channel is positive exactly where some
    path from the input reaches it, and the output's gradient reaches exactly the channels with a path
    to the output. A weight's gradient (upstream × its input) is then > 0 exactly where both hold.
    A channel also emits something while its bias, or its BatchNorm's output for a zero input
    (β − γμ/√(σ² + ε)), is non-zero, even with every weight of its filter pruned: such a constant is a
    source (1 in the probe), so the weights reading it count. (A negative constant that a ReLU then
    zeroes is counted too: the effective size errs towards more parameters, never fewer.) Layers
    without a mask count their non-zero weights as kept.
    """
    probe = copy.deepcopy(model).double().eval()
    layers = {n: m for n, m in probe.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    with torch.no_grad():
        for name, layer in layers.items():
            kept = masks[name] if name in masks else (layer.weight != 0)
            layer.weight.copy_(kept.to(layer.weight))
            if layer.bias is not None:
                layer.bias.copy_((layer.bias != 0).to(layer.bias))
        for module in probe.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                shift = _constant_output(module)
                _identity_norm(module)
                if module.affine:
                    module.bias.copy_((shift != 0).to(module.bias))
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


def _constant_output(norm: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """What an eval-mode BatchNorm emits per channel for a zero input: β − γ·μ / √(σ² + ε)."""
    channels = norm.num_features
    mean = norm.running_mean if norm.track_running_stats else torch.zeros(channels, dtype=torch.float64)
    var = norm.running_var if norm.track_running_stats else torch.ones(channels, dtype=torch.float64)
    gamma = norm.weight if norm.affine else torch.ones_like(mean)
    beta = norm.bias if norm.affine else torch.zeros_like(mean)
    return beta - gamma * mean / torch.sqrt(var + norm.eps)


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


def shrunk_model(model: nn.Module, masks: Masks, example: torch.Tensor) -> nn.Module | None:
    """The physically smaller model of a filter-pruned one, on the model's device (None if none): a chain
    shrunk layer by layer, a residual or branching network through Torch-Pruning's dependency graph."""
    small = shrink(model, masks) or graph_shrink(model, masks, example)
    return None if small is None else small.to(next(model.parameters()).device).eval()


def measure_shrunk(small: nn.Module, masks: Masks, example: torch.Tensor) -> dict[str, float]:
    """Parameters, FLOPs and removed channels of the physically smaller model (its latency: latency_columns)."""
    return {
        "shrunk_params": sum(p.numel() for p in small.parameters()),
        "shrunk_flops": layer_flops(small, example.to(next(small.parameters()).device))[""],
        "removed_channels": sum(int(dead_filters(m).sum()) for m in masks.values() if m.dim() == 4),
    }


def measure(model: nn.Module, masks: Masks, example: torch.Tensor) -> dict[str, float]:
    """Parameters, compression, FLOPs, theoretical speed-up and sparse size of a checkpoint (its latency:
    latency_columns, timed beside its dense reference)."""
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    pruned = sum(int((m == 0).sum()) for m in masks.values())
    flops = layer_flops(model, to_input(example, model))
    sparse_flops = flops[""] - sum(flops.get(name, 0) * float((m == 0).float().mean()) for name, m in masks.items())
    masked_numel = sum(m.numel() for m in masks.values())
    size = 4 * (params - masked_numel) + masked_numel / 8 + 4 * (masked_numel - pruned)
    return {
        "params": params,
        "nonzero_params": params - pruned,
        "compression_ratio": params / max(params - pruned, 1),
        "flops": flops[""],
        "sparse_flops": sparse_flops,
        "theoretical_speedup": flops[""] / max(sparse_flops, 1.0),
        "size_bytes": size,
    }
