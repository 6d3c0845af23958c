"""Trained weights given by a user: read as data only, matched to a model strictly.

A file is safetensors, or a PyTorch state dict read with `torch.load(weights_only=True)`, whose
unpickler builds tensors and plain containers only: a pickle that needs anything more (a class, a
function, code) is refused in one line, never run. The state may be the model's own (this project's
checkpoints), the `weights.` half of an exported file (engine.science.model_export), or the bare
network's state as torchvision, timm or a training script saves it (nested under `state_dict` or
`model`, with DataParallel's `module.` prefix): the project's Normalize layer in front keeps the data
set's constants when the file has none. Every key must match: missing and unexpected keys and shape
differences are named.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from torch import nn

from engine.errors import SpecError

SAFETENSORS_SUFFIX = ".safetensors"
NORMALIZE_KEYS = ("norm.mean", "norm.std")
WRAPPERS = ("state_dict", "model", "model_state_dict", "net")
"""Keys under which training scripts nest the state dict in a checkpoint."""


def _refuse(field: str, problem: str) -> SpecError:
    return SpecError([f"{field}: {problem}"])


def read_state(data: bytes, name: str, field: str = "base.weights") -> dict[str, torch.Tensor]:
    """A weights file's tensors: safetensors by its name or content, else a weights-only PyTorch pickle."""
    if name.endswith(SAFETENSORS_SUFFIX) or data[8:9] == b"{":
        try:
            return load_safetensors(data)
        except (SafetensorError, ValueError, OSError) as exc:
            raise _refuse(field, f"{name} is not a readable safetensors file ({str(exc)[:80]})") from None
    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the weights-only unpickler fails in many ways on a bad file
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise _refuse(
            field,
            f"{name} is not a plain state dict that loads with weights_only=True ({first}); save "
            "model.state_dict() with torch.save, or the weights as safetensors",
        ) from None
    return _unwrap(loaded, name, field)


def _unwrap(loaded: object, name: str, field: str) -> dict[str, torch.Tensor]:
    """The dict of tensors inside a checkpoint (directly, or under one of WRAPPERS)."""
    for _ in range(2):
        if isinstance(loaded, dict) and not _all_tensors(loaded):
            inner = next((loaded[k] for k in WRAPPERS if isinstance(loaded.get(k), dict)), None)
            if inner is not None:
                loaded = inner
    if not isinstance(loaded, dict) or not loaded or not _all_tensors(loaded):
        raise _refuse(field, f"{name} holds no state dict (a mapping of names to tensors)")
    return dict(loaded)


def _all_tensors(mapping: dict) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in mapping.items())


def fit_state(
    model: nn.Module, state: dict[str, torch.Tensor], name: str, field: str = "base.weights"
) -> dict[str, torch.Tensor]:
    """`state` under the model's own key names, complete: the strict match, or SpecError naming the keys."""
    own = model.state_dict()
    state = _renamed(state, set(own))
    for key in NORMALIZE_KEYS:
        if key in own and key not in state:
            state[key] = own[key]  # the data set's constants, when the file is the bare network's
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        keys = f"{_keys('missing', missing)}{_keys('unexpected', unexpected)}".rstrip("; ")
        raise _refuse(field, f"{name} does not fit this architecture: {keys}")
    wrong = [f"{k} {tuple(state[k].shape)} ≠ {tuple(own[k].shape)}" for k in own if state[k].shape != own[k].shape]
    if wrong:
        raise _refuse(
            field, f"{name} has tensors of other shapes: {', '.join(wrong[:3])}{' …' if len(wrong) > 3 else ''}"
        )
    return {k: state[k].to(own[k].dtype) for k in own}


def _keys(label: str, keys: list[str]) -> str:
    if not keys:
        return ""
    more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
    return f"{label} {', '.join(keys[:4])}{more}; "


def _renamed(state: dict[str, torch.Tensor], own: set[str]) -> dict[str, torch.Tensor]:
    """Map an exported file's, a DataParallel's or a bare network's key names onto the model's."""
    if any(k.startswith("weights.") for k in state):
        state = {k.removeprefix("weights."): v for k, v in state.items() if k.startswith("weights.")}
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    if not (set(state) & own) and any(k.startswith("net.") for k in own):
        state = {f"net.{k}": v for k, v in state.items()}
    return dict(state)


def load_weights(model: nn.Module, path: Path, field: str = "base.weights") -> None:
    """Load a user's weights file into `model` strictly (see the module's doc)."""
    state = fit_state(model, read_state(path.read_bytes(), path.name, field), path.name, field)
    model.load_state_dict(state)
