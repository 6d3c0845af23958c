"""A pruned checkpoint out of the store, in the formats other tools read: safetensors (the weights with
the pruning masks beside them, and what they are in the metadata) or ONNX (the model, its `Normalize`
layer in front, so it takes images in [0, 1])."""

from __future__ import annotations

import json

import torch
from safetensors.torch import save

from engine.science.efficiency import onnx_bytes

MODEL_FORMATS = ("safetensors", "onnx")


def safetensors_bytes(model: torch.nn.Module, masks: dict[str, torch.Tensor], about: dict[str, str]) -> bytes:
    """The model's state under `weights.<name>` and each pruning mask under `masks.<name>` (1 = kept),
    with `about` (run, step, sparsity, model, data set) as the file's metadata."""
    tensors = {f"weights.{name}": value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    tensors |= {f"masks.{name}": mask.detach().cpu().to(torch.uint8).contiguous() for name, mask in masks.items()}
    return save(tensors, metadata={"aer": json.dumps(about, sort_keys=True)})


def model_bytes(
    fmt: str, model: torch.nn.Module, masks: dict[str, torch.Tensor], example: torch.Tensor, about: dict[str, str]
) -> bytes:
    """The checkpoint in `fmt` (one of MODEL_FORMATS); `example` is a batch of inputs for ONNX's trace."""
    if fmt == "onnx":
        return onnx_bytes(model, example)
    if fmt == "safetensors":
        return safetensors_bytes(model, masks, about)
    raise ValueError(f"format: choose from {list(MODEL_FORMATS)}")
