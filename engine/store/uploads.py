"""Uploads kept in the cache: a page's file stored under its SHA-256, published atomically, only ever read as data."""

from __future__ import annotations

import hashlib

from engine.spec.user_files import check_upload, user_root


def store_upload(kind: str, name: str, data: bytes) -> str:
    """Store an uploaded file under its SHA-256 in the `kind` folder ("weights" or "data") and return the
    path a spec names it by (`uploads/<sha256><suffix>`); the file is only ever read as data."""
    suffix = check_upload(kind, name, len(data))
    sha = hashlib.sha256(data).hexdigest()
    relative = f"uploads/{sha}{suffix}"
    target = user_root(kind) / relative
    if not target.is_file():
        from engine.store.checkpoints import publish_bytes  # noqa: PLC0415  torch: only when an upload is stored

        publish_bytes(data, target)
    return relative
