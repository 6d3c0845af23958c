"""Structured pruning's real speed-up: half the conv filters removed, latency against the dense model.

Both models run eagerly in the engine's layout (channels_last), timed in alternation.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch

from engine.science.data import DatasetInfo


def run(fraction: float = 0.5, model_name: str = "small_cnn") -> dict:
    """Median CPU latency at batch 1 and 128 of the dense model and the physically smaller one."""
    from engine.science.device import prepare_model
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
    (dense_b1, small_b1), (dense_b128, small_b128) = (
        _interleaved(dense, small, batch, rounds) for batch, rounds in ((1, 2000), (128, 80))
    )
    x = torch.rand(64, 1, 28, 28)
    with torch.no_grad():
        same = float((small(x) - model(x)).abs().max())
    return {
        "model": model_name,
        "filters_removed": fraction,
        "params": sum(p.numel() for p in model.parameters()),
        "shrunk_params": sum(p.numel() for p in small.parameters()),
        "max_output_diff": same,
        "dense_ms_b1": round(dense_b1, 3),
        "shrunk_ms_b1": round(small_b1, 3),
        "dense_ms_b128": round(dense_b128, 2),
        "shrunk_ms_b128": round(small_b128, 2),
        "speedup_b1": round(dense_b1 / small_b1, 2),
        "speedup_b128": round(dense_b128 / small_b128, 2),
    }


def _interleaved(first, second, batch: int, rounds: int) -> tuple[float, float]:
    """Median milliseconds of one forward pass of each model, timed in alternation round by round,
    so that drift of the machine (frequency, other processes) reaches both alike."""
    from engine.science.device import to_input

    x = torch.rand(batch, 1, 28, 28)
    inputs = [to_input(x, first), to_input(x, second)]
    times: list[list[float]] = [[], []]
    with torch.inference_mode():
        for model, example in zip((first, second), inputs):
            model(example)
        for _ in range(rounds):
            for i, (model, example) in enumerate(zip((first, second), inputs)):
                started = time.perf_counter()
                model(example)
                times[i].append((time.perf_counter() - started) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])
