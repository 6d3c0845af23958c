"""Where the cache lives: `cache/` beside the code by default, `AER_CACHE_DIR` elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import StoreError

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """The cache folder (store, checkpoints, downloaded data), created if missing; StoreError in one line
    when it names a file or cannot be created."""
    return make_cache_folder(Path(os.environ.get("AER_CACHE_DIR") or REPO_ROOT / "cache").resolve())


def make_cache_folder(path: Path) -> Path:
    """`path`, created if missing; StoreError in one line when it names a file or cannot be created."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StoreError("cache folder: it names a file, not a folder (AER_CACHE_DIR or --cache-dir)") from None
    except OSError as exc:
        raise StoreError(f"cache folder: cannot create it ({exc.strerror}); check AER_CACHE_DIR") from None
    return path


def data_dir() -> Path:
    """Where datasets are downloaded to: `AER_DATA_DIR`, else `<cache>/data`."""
    path = Path(os.environ.get("AER_DATA_DIR") or cache_dir() / "data").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
