"""Checkpoints as safetensors (never pickle): atomic publish and SHA-256-checked load."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from engine.errors import IntegrityError, NotFoundError


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> str:
    """Write tensors to `path` atomically (temp file → fsync → rename); return the file's SHA-256.

    A reader sees either no file or the whole file, never a partial one. The metadata goes in as
    one sorted-JSON entry: safetensors writes several entries in hash order, which would make the
    bytes (and so the SHA-256) of identical checkpoints differ from run to run.
    """
    header = {"aer": json.dumps(metadata, sort_keys=True)} if metadata else None
    data = save_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=header)
    return publish_bytes(data, path)


def publish_bytes(data: bytes, path: Path) -> str:
    """Write bytes to `path` atomically (temp file → fsync → rename); return their SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return hashlib.sha256(data).hexdigest()


def shown(path: Path) -> str:
    """A checkpoint's name for messages: its folder and file, never the cache's absolute path."""
    return f"{path.parent.name}/{path.name}"


def verified_bytes(path: Path, sha256: str) -> bytes:
    """A checkpoint file's bytes once their SHA-256 matches the recorded one (NotFoundError if missing,
    IntegrityError if it differs)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"checkpoint {shown(path)} is missing") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise IntegrityError(
            f"checkpoint {shown(path)} has SHA-256 {actual[:12]}…, expected {sha256[:12]}…; refusing to load"
        )
    return data


def intact(path: Path, sha256: str) -> bool:
    """Whether the checkpoint file exists and still has its recorded SHA-256."""
    try:
        verified_bytes(path, sha256)
    except (IntegrityError, NotFoundError):
        return False
    return True


def load_verified(path: Path, sha256: str) -> dict[str, torch.Tensor]:
    """Load a checkpoint after checking its SHA-256 against the recorded one."""
    return load_bytes(verified_bytes(path, sha256))


def state_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as plain contiguous CPU tensors."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
