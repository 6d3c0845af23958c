"""Where the cache lives: `cache/` beside the code by default, `AER_CACHE_DIR` elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """The cache folder (store, checkpoints, downloaded data), created if missing."""
    path = Path(os.environ.get("AER_CACHE_DIR") or REPO_ROOT / "cache").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Where datasets are downloaded to: `AER_DATA_DIR`, else `<cache>/data`."""
    path = Path(os.environ.get("AER_DATA_DIR") or cache_dir() / "data").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
