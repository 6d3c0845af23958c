"""Surface evaluation at the speed of the machine, against the torchattacks loop a user would write.

Both evaluate the same checkpoints on the same 1,000 Fashion-MNIST test images with PGD-10 L∞ at
8 budgets. The baseline runs torchattacks' PGD on every image at every ε, model in the default
layout. Ours is the engine's `robust_curve`: channels_last, clean predictions under no_grad,
misclassified images never attacked, and each ε attacking only the images still robust at the
previous one (an example broken inside a smaller ball stays broken in every larger one).
Achieved GFLOP/s counts FLOPs with `torch.utils.flop_counter` and is set against an fp32 matmul
peak measured in the same run.
"""

from __future__ import annotations

import copy
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

EPS = [0.0, 0.005, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1]


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """fp32 matmul GFLOP/s on this machine (median of `repeats`)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times) / 1e9


def checkpoints(sparsities: tuple[float, ...] = (0.0, 0.9), epochs: int = 1):
    """A small CNN trained on Fashion-MNIST, then magnitude-pruned (one shot) to each sparsity."""
    from engine.datasets import load_dataset
    from engine.device import prepare_model
    from engine.methods import METHODS
    from engine.models import build_model
    from engine.pruning import apply_masks, compute_masks, prunable_layers
    from engine.training import train_steps

    data = load_dataset("fashion_mnist")
    torch.manual_seed(0)
    model = prepare_model(build_model("small_cnn", data.info), torch.device("cpu"))
    train_steps(model, data.x_train, data.y_train, steps=epochs * math.ceil(len(data.x_train) / 128), batch_size=128,
                lr=1e-3, generator=torch.Generator().manual_seed(0))
    models = []
    for sparsity in sparsities:
        pruned = copy.deepcopy(model)
        layers = prunable_layers(pruned)
        apply_masks(layers, compute_masks(layers, sparsity, METHODS.get("global_magnitude")()))
        models.append(pruned.eval())
    return models, data.x_test[:1000], data.y_test[:1000]


def per_example_flops(model, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """FLOPs per example of a forward pass, and of a forward pass plus the input gradient."""
    model = copy.deepcopy(model)
    for p in model.parameters():
        p.requires_grad_(False)  # as in the attack: gradients for the input only
    with FlopCounterMode(display=False) as forward, torch.no_grad():
        model(x)
    with FlopCounterMode(display=False) as step:
        xb = x.clone().requires_grad_(True)
        F.cross_entropy(model(xb), y).backward()
    return forward.get_total_flops() / len(x), step.get_total_flops() / len(x)


class ExampleCounter:
    """Counts the examples a model sees, with and without autograd (a forward pre-hook)."""

    def __init__(self, model):
        self.with_grad = self.without_grad = 0
        self.handle = model.register_forward_pre_hook(self)

    def __call__(self, module, args):
        if torch.is_grad_enabled():
            self.with_grad += len(args[0])
        else:
            self.without_grad += len(args[0])

    def flops(self, forward: float, step: float) -> float:
        """Total FLOPs of what was counted, given the per-example costs."""
        self.handle.remove()
        return self.with_grad * step + self.without_grad * forward


def torchattacks_loop(model, x, y, batch_size: int = 250) -> dict[float, float]:
    """Robust accuracy per ε the plain way: torchattacks PGD-10 on every image at every ε."""
    import torchattacks

    plain = model  # as a user has it: the default (contiguous) layout
    accuracy = {}
    for eps in EPS:
        correct = 0
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size].contiguous(), y[start : start + batch_size]
            if eps > 0:
                xb = torchattacks.PGD(plain, eps=eps, alpha=eps / 4, steps=10, random_start=True)(xb, yb)
            with torch.no_grad():
                correct += int((plain(xb).argmax(1) == yb).sum())
        accuracy[eps] = correct / len(x)
    return accuracy


def ours(model, x, y) -> dict[float, float]:
    """Robust accuracy per ε through the engine."""
    from engine.evaluate import robust_curve
    from engine.spec import AttackSpec

    points = robust_curve(model, x, y, AttackSpec(name="pgd_linf", eps=EPS, steps=10), batch_size=250)
    return {p.eps: p.acc for p in points}


def run(sparsities: tuple[float, ...] = (0.0, 0.9)) -> dict:
    """Speed ratio, largest accuracy difference and GFLOP/s of both paths."""
    peak = matmul_peak_gflops()
    models, x, y = checkpoints(sparsities)
    forward, step = per_example_flops(models[0], x[:250], y[:250])
    result = {"checkpoints": len(models), "images": len(x), "eps": len(EPS) - 1, "matmul_peak_gflops": round(peak, 1)}
    base_s = ours_s = 0.0
    base_flops = ours_flops = 0.0
    worst = 0.0
    for model in models:
        plain = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
        counter = ExampleCounter(plain)
        started = time.perf_counter()
        reference = torchattacks_loop(plain, x, y)
        base_s += time.perf_counter() - started
        base_flops += counter.flops(forward, step)
        counter = ExampleCounter(model)
        started = time.perf_counter()
        fast = ours(model, x, y)
        ours_s += time.perf_counter() - started
        ours_flops += counter.flops(forward, step)
        worst = max(worst, max(abs(fast[e] - reference[e]) for e in EPS))
    result.update({
        "torchattacks_gflop": round(base_flops / 1e9, 1), "ours_gflop": round(ours_flops / 1e9, 1),
        "torchattacks_s": round(base_s, 1), "ours_s": round(ours_s, 1), "speedup": round(base_s / ours_s, 2),
        "max_acc_diff_pt": round(100 * worst, 2),
        "torchattacks_gflops": round(base_flops / base_s / 1e9, 1), "ours_gflops": round(ours_flops / ours_s / 1e9, 1),
    })
    result["ours_peak_fraction"] = round(result["ours_gflops"] / peak, 3)
    result["torchattacks_peak_fraction"] = round(result["torchattacks_gflops"] / peak, 3)
    return result
