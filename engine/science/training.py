"""Training: seeded batching over in-memory tensors and masked fine-tuning (losses: engine.science.losses)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from engine.science.device import to_input
from engine.science.pruning.masks import Layers, Masks, apply_masks

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
BatchHook = Callable[[int, int], None]


def natural_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Natural training: cross-entropy on clean inputs."""
    return F.cross_entropy(model(x), y)


def index_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless stream of index batches: a fresh seeded permutation every pass over n examples."""
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


PAD = 4
"""Pixels of zero padding before the random crop (the CIFAR convention: RandomCrop(32, padding=4))."""


def augment_batch(x: torch.Tensor, kind: str | None, generator: torch.Generator) -> torch.Tensor:
    """The standard training augmentation of a batch: "crop" (zero-pad 4 px, crop a random window of the
    original size per image), "crop_flip" (and mirror each image with probability ½), or None (as is).
    Drawn from `generator`, so a step's batches are the same on every run and after a resume."""
    if kind is None:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (PAD, PAD, PAD, PAD))
    offsets = torch.randint(0, 2 * PAD + 1, (n, 2), generator=generator)
    rows = (offsets[:, 0, None] + torch.arange(h)).view(n, 1, h, 1).expand(n, x.shape[1], h, w)
    cols = (offsets[:, 1, None] + torch.arange(w)).view(n, 1, 1, w).expand(n, x.shape[1], h, w)
    cropped = _crop(padded, rows, cols)
    if kind == "crop_flip":
        flip = torch.rand(n, generator=generator) < 0.5
        cropped[flip] = cropped[flip].flip(3)
    return cropped


def _crop(padded: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """padded[i, c, rows[i, c, y, x], cols[i, c, y, x]] for every image i."""
    n, c, h, w = rows.shape
    flat = padded.reshape(n, c, -1)
    return flat.gather(2, (rows * padded.shape[3] + cols).reshape(n, c, -1)).reshape(n, c, h, w)


def make_optimizer(params, name: str, lr: float) -> torch.optim.Optimizer:
    """Adam or SGD (momentum 0.9) over `params`."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    return torch.optim.Adam(params, lr=lr)


def train_steps(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    optimizer: str = "adam",
    loss_fn: LossFn = natural_loss,
    masked: tuple[Layers, Masks] | None = None,
    on_batch: BatchHook | None = None,
    params: list[torch.Tensor] | None = None,
    after_step: Callable[[], None] | None = None,
    augment: str | None = None,
) -> float:
    """Train `steps` batches of `params` (default: every trainable parameter), each augmented as
    `augment` says (augment_batch); re-apply masks after every optimiser step. Returns the mean loss."""
    if steps == 0:
        return float("nan")
    params = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, optimizer, lr)
    model.train()
    total = 0.0
    batches = index_batches(len(x), batch_size, generator)
    for i in range(steps):
        idx = next(batches)
        xb = to_input(augment_batch(x[idx], augment, generator), model)
        yb = y[idx].to(next(model.parameters()).device)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, xb, yb)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss is {float(loss.detach())} at batch {i + 1} of {steps}; nothing was stored"
            )
        loss.backward()
        opt.step()
        if masked is not None:
            apply_masks(*masked)  # keep pruned weights at exactly zero
        if after_step is not None:
            after_step()
        total += float(loss.detach())
        if on_batch is not None:
            on_batch(i + 1, steps)
    model.eval()
    return total / steps


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """Predicted labels in eval mode, batched; returned on the CPU."""
    model.eval()
    out = [model(to_input(x[i : i + batch_size], model)).argmax(1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 250) -> float:
    """Clean accuracy as a fraction."""
    return int((predict(model, x, batch_size) == y).sum()) / max(len(y), 1)
