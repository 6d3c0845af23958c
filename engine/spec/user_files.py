"""A user's files in the cache: weights under `<cache>/weights`, data sets under the data folder.

A spec names them by a path relative to their folder (engine.spec.runspec.UserPath: no absolute path,
no `..`), so input typed in a browser never reaches a file outside the cache; an upload is stored by
its SHA-256 (engine.store.uploads) and never executed. Each file's or folder's SHA-256 goes into the
spec on submission, so a changed file is a new run, and is checked again when the file is read.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import DataUnavailableError, SpecError
from engine.paths import cache_dir, data_dir

if TYPE_CHECKING:
    from engine.spec.runspec import RunSpec

MAX_UPLOAD_BYTES = 512 << 20
"""The largest file a page accepts (512 MiB: a ResNet-50's weights are 100 MB)."""

MAX_FILE_BYTES = 4 << 30
"""The largest single user file read (4 GiB)."""

MAX_FOLDER_FILES = 200_000
"""The most files a folder data set may hold."""

UPLOAD_SUFFIXES = {"weights": (".safetensors", ".pt", ".pth", ".bin"), "data": (".npz",)}
"""What each kind of upload may be called."""


def weights_dir() -> Path:
    """Where trained weights given as a base live: `<cache>/weights`."""
    return cache_dir() / "weights"


def user_root(kind: str) -> Path:
    """The folder a `kind` ("weights" or "data") path is relative to."""
    return weights_dir() if kind == "weights" else data_dir()


def resolve(kind: str, relative: str, field: str) -> Path:
    """The file or folder a spec names, which must exist; SpecError naming `field` otherwise."""
    path = user_root(kind) / relative
    if not path.exists():
        where = "<cache>/weights" if kind == "weights" else "the data folder (<cache>/data or AER_DATA_DIR)"
        raise SpecError([f"{field}: {relative} is not in {where}; put it there or upload it on the Runs page"])
    return path


@dataclass(frozen=True)
class _Entry:
    relative: str
    size: int
    mtime_ns: int


_HASHES: dict[str, tuple[tuple[_Entry, ...], str]] = {}
"""Path → its files' (name, size, time) when last hashed, and that SHA-256: one entry per path."""


def _entries(path: Path, field: str) -> list[_Entry]:
    """Every regular file of `path` (itself when a file) with its size and time, bounded."""
    if path.is_file():
        found = [path]
    else:
        found = []
        for root, _dirs, files in os.walk(path, followlinks=False):
            found += [Path(root) / name for name in files if not name.startswith(".")]
            if len(found) > MAX_FOLDER_FILES:
                raise SpecError([f"{field}: more than {MAX_FOLDER_FILES:,} files"])
    entries = []
    for file in sorted(found):
        stat = file.stat()
        if stat.st_size > MAX_FILE_BYTES:
            raise SpecError([f"{field}: {file.name} is larger than {MAX_FILE_BYTES >> 30} GiB"])
        entries.append(
            _Entry(file.relative_to(path).as_posix() if file != path else "", stat.st_size, stat.st_mtime_ns)
        )
    return entries


def content_sha256(path: Path, field: str) -> str:
    """SHA-256 of a file, or of a folder's files (their relative names and contents, in name order);
    remembered per process while no file's size or time changes."""
    entries = tuple(_entries(path, field))
    known = _HASHES.get(str(path))
    if known is None or known[0] != entries:
        digest = hashlib.sha256()
        for entry in entries:
            digest.update(f"{entry.relative}\0{entry.size}\0".encode())
            with open(path / entry.relative if entry.relative else path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        _HASHES[str(path)] = (entries, digest.hexdigest())
    return _HASHES[str(path)][1]


def checked(kind: str, relative: str, sha256: str | None, field: str) -> Path:
    """The named file, after checking that it still has the SHA-256 the spec recorded."""
    path = resolve(kind, relative, field)
    if sha256 is not None and content_sha256(path, field) != sha256:
        raise DataUnavailableError(
            f"{field}: {relative} changed since the run was submitted (its SHA-256 differs); submit the spec "
            "again for a new run, or put the original file back"
        )
    return path


def check_upload(kind: str, name: str, size: int) -> str:
    """An upload's suffix, after checking it and the size (SpecError in one line otherwise)."""
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES[kind]:
        raise SpecError([f"upload: {name[:60]!r} is not a {' / '.join(UPLOAD_SUFFIXES[kind])} file"])
    if size > MAX_UPLOAD_BYTES:
        raise SpecError([f"upload: {size / 2**20:,.0f} MiB is above the {MAX_UPLOAD_BYTES >> 20} MiB a page takes"])
    return suffix


def pinned(spec: "RunSpec") -> "RunSpec":
    """The spec with the SHA-256 of each user file it names filled in (where not yet), so that its run id
    covers the files' contents; SpecError naming the field when a file is missing."""
    dataset, base = spec.dataset, spec.base
    if dataset.path is not None and dataset.sha256 is None:
        sha = content_sha256(resolve("data", dataset.path, "dataset.path"), "dataset.path")
        spec = spec.model_copy(update={"dataset": dataset.model_copy(update={"sha256": sha})})
    if base is not None and base.sha256 is None:
        sha = content_sha256(resolve("weights", base.weights, "base.weights"), "base.weights")
        spec = spec.model_copy(update={"base": base.model_copy(update={"sha256": sha})})
    return spec
