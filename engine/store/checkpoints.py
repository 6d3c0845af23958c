"""Checkpoints as safetensors (never pickle): atomic publish and SHA-256-checked load."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import uuid
from pathlib import Path

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from engine.errors import IntegrityError, NotFoundError, write_failure
from engine.processes import pid_alive


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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)  # a half-written file would only take the space a retry needs
        failure = write_failure(shown(path), errno.errorcode.get(exc.errno or 0))
        if failure is None:
            raise
        raise failure from exc
    return hashlib.sha256(data).hexdigest()


def shown(path: Path) -> str:
    """A checkpoint's name for messages: its folder and file, never the cache's absolute path."""
    return f"{path.parent.name}/{path.name}"


MAX_CHECKPOINT_BYTES = 4 << 30
"""The largest checkpoint file read (4 GiB: a model far beyond what trains on a CPU); a larger or
sparse file in the cache is refused before a byte of it is read."""

TEMPORARY = ".*.tmp"
"""How publish_bytes names a checkpoint in flight: `.<name>.<pid>.<random>.tmp`."""


def checkpoint_file(root: Path, name: str) -> Path:
    """The file of a stored checkpoint name, which must stay inside the cache (IntegrityError for an
    absolute name or one that climbs out with `..`, as a tampered row could)."""
    path = Path(root, name)
    if Path(name).is_absolute() or not path.resolve().is_relative_to(Path(root).resolve()):
        raise IntegrityError(f"checkpoint name {name[:80]!r} points outside the cache; refusing to read it")
    return path


def read_regular(path: Path, limit: int = MAX_CHECKPOINT_BYTES) -> bytes:
    """A file's bytes, read only if it is a regular file (not a link, a FIFO or a device) of at most
    `limit` bytes: NotFoundError if missing, IntegrityError otherwise; never blocks, never reads more."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise NotFoundError(f"checkpoint {shown(path)} is missing") from None
    except OSError as exc:
        raise IntegrityError(f"checkpoint {shown(path)} cannot be opened ({exc.strerror}): not a plain file") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise IntegrityError(f"checkpoint {shown(path)} is not a regular file (a FIFO, a device or a folder)")
        if info.st_size > limit:
            raise IntegrityError(f"checkpoint {shown(path)} has {info.st_size:,} bytes, above {limit:,}; refusing")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise IntegrityError(f"checkpoint {shown(path)} grew past {limit:,} bytes while read; refusing")
    return data


def remove_leftovers(root: Path) -> int:
    """Delete the temporary files of checkpoint writes whose writer is gone (a kill mid-write); the
    number removed. A write in flight (its process alive) is left alone."""
    removed = 0
    for folder in (Path(root) / "runs", Path(root) / "bases"):
        for tmp in folder.rglob(TEMPORARY) if folder.is_dir() else []:
            pid = tmp.name.rsplit(".", 3)[-3] if tmp.name.count(".") >= 4 else ""
            if not (pid.isdigit() and pid_alive(int(pid))):
                tmp.unlink(missing_ok=True)
                removed += 1
    return removed


def verified_bytes(path: Path, sha256: str) -> bytes:
    """A checkpoint file's bytes once their SHA-256 matches the recorded one (NotFoundError if missing,
    IntegrityError if it differs or is not a bounded regular file: read_regular)."""
    data = read_regular(path)
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


def intact_in(root: Path, name: str, sha256: str) -> bool:
    """Whether the stored checkpoint `name` lies inside the cache, exists and has its SHA-256."""
    try:
        return intact(checkpoint_file(root, name), sha256)
    except IntegrityError:
        return False


def load_in(root: Path, name: str, sha256: str) -> dict[str, torch.Tensor]:
    """Load the stored checkpoint `name` of the cache at `root` (inside it, SHA-256-checked)."""
    return load_verified(checkpoint_file(root, name), sha256)


def load_verified(path: Path, sha256: str) -> dict[str, torch.Tensor]:
    """Load a checkpoint after checking its SHA-256 against the recorded one."""
    return load_bytes(verified_bytes(path, sha256))


def state_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as plain contiguous CPU tensors."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
