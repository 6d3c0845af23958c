"""The engine on one device (`python -m bench --device cuda`): the surface against the torchattacks loop on
that device (the same checkpoints, images and ε grid as the CPU figure, bench/surface.py), training and
certification throughput, and the teaching preset from an empty cache as a user runs it (the engine puts
it on CUDA where a GPU is visible). A device this machine lacks is refused before anything is measured.
Every time waits for the device to finish its queued work (CUDA runs asynchronously).
"""

from __future__ import annotations

import copy
import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench.surface import EPS, Curve, checkpoints, ours, significant_over_pt, torchattacks_loop


def resolve(name: str) -> torch.device:
    """The device named, refused where this machine has none of it."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible here (torch.cuda.is_available() is False)")
    if device.type not in ("cpu", "cuda"):
        raise SystemExit(f"--device {name}: the bench measures 'cpu' or 'cuda'")
    return device


def synchronised(device: torch.device, work: Callable[[], Any]) -> tuple[Any, float]:
    """(result, seconds) of `work`, the device's queue drained before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    result = work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result, time.perf_counter() - started


def on_cpu(curve: Curve) -> Curve:
    """The same curve with its flags on the CPU (the paired test reads them as NumPy arrays)."""
    return Curve({eps: flags.cpu() for eps, flags in curve.flags.items()})


def torchattacks_on(device: torch.device, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Curve:
    """The torchattacks loop with the images moved to `device` inside the timing, as the engine moves them."""
    return torchattacks_loop(model, x.to(device), y.to(device))


def surface(device: torch.device, models: list, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """The sound surface (scan) against the torchattacks loop on `device`, both on the same checkpoints."""
    seconds = {"torchattacks": 0.0, "ours": 0.0}
    worst, significant = 0.0, -100.0
    for model in models:
        plain = copy.deepcopy(model).to(device).to(memory_format=torch.contiguous_format).eval()
        fast_model = copy.deepcopy(model).to(device).to(memory_format=torch.channels_last).eval()
        torch.manual_seed(0)
        reference, s = synchronised(device, functools.partial(torchattacks_on, device, plain, x, y))
        seconds["torchattacks"] += s
        fast, s = synchronised(device, functools.partial(ours, fast_model, x, y))
        seconds["ours"] += s
        reference = on_cpu(reference)
        worst = max(worst, max(abs(fast[e] - reference[e]) for e in EPS))
        significant = max(significant, significant_over_pt(fast, reference, len(models) * (len(EPS) - 1)))
    return {
        "surface_images": len(x),
        "torchattacks_s": round(seconds["torchattacks"], 2),
        "ours_s": round(seconds["ours"], 2),
        "speedup": round(seconds["torchattacks"] / seconds["ours"], 2),
        "max_acc_diff_pt": round(100 * worst, 2),
        "significant_over_pt": significant,
    }


def training_throughput(device: torch.device, model_name: str = "small_cnn", steps: int = 50) -> float:
    """Training examples per second: `steps` Adam steps of batch 128 on Fashion-MNIST, after one warm-up step."""
    from engine.science.data import load_dataset
    from engine.science.device import prepare_model
    from engine.science.models import build_model
    from engine.science.training import train_steps

    data = load_dataset("fashion_mnist")
    model = prepare_model(build_model(model_name, data.info), device)
    generator = torch.Generator().manual_seed(0)

    def run(count: int) -> float:
        return train_steps(model, data.x_train, data.y_train, steps=count, batch_size=128, lr=1e-3, generator=generator)

    run(1)
    _, seconds = synchronised(device, lambda: run(steps))
    return steps * 128 / seconds


def certification_throughput(
    device: torch.device, model: torch.nn.Module, x: torch.Tensor, images: int = 20, samples: int = 1000
) -> float:
    """Noisy forward passes per second of CERTIFY (σ = 0.25, n0 = 100, n = `samples`) on `images` images."""
    from engine.science.certify import certify

    model = copy.deepcopy(model).to(device)
    generator = torch.Generator().manual_seed(0)
    _, seconds = synchronised(device, lambda: certify(model, x[:images], 0.25, 100, samples, 0.001, generator))
    return images * (100 + samples) / seconds


def teaching_seconds() -> float:
    """Seconds of the teaching preset from an empty cache, through the engine's API as a user runs it."""
    from engine import api
    from engine.store.db import Store

    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder))
        started = time.perf_counter()
        api.run(api.load_spec(preset="teaching"), store)
        seconds = time.perf_counter() - started
        store.close()
    return seconds


def run(name: str = "cuda") -> dict[str, Any]:
    """Every figure of the device path on `name`."""
    device = resolve(name)
    result: dict[str, Any] = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    models, x, y = checkpoints()
    result.update(surface(device, models, x, y))
    result["train_examples_per_s"] = round(training_throughput(device))
    result["certify_passes_per_s"] = round(certification_throughput(device, models[0], x))
    result["teaching_s"] = round(teaching_seconds(), 1)
    return result
