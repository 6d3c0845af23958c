"""Where the cache and the presets live: in a checkout, `cache/` and `presets/` beside the code; in an
installed package (`pip install .`), the user's cache folder and the presets installed with it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from engine.errors import StoreError

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file()
"""Running from the repository (make, an editable install), not from an installed wheel."""

INSTALLED_PRESETS = Path(sys.prefix) / "share" / "aer-lab" / "presets"
"""Where `pip install .` puts the presets (pyproject's [tool.setuptools.data-files])."""


def presets_dir() -> Path:
    """The named presets: `presets/` of the checkout, or those installed with the package."""
    return REPO_ROOT / "presets" if CHECKOUT else INSTALLED_PRESETS


def default_cache() -> Path:
    """The cache when AER_CACHE_DIR is unset: `cache/` of the checkout, else `$XDG_CACHE_HOME/aer-lab`."""
    if CHECKOUT:
        return REPO_ROOT / "cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aer-lab"


def cache_dir() -> Path:
    """The cache folder (store, checkpoints, downloaded data), created if missing; StoreError in one line
    when it names a file or cannot be created."""
    return make_cache_folder(Path(os.environ.get("AER_CACHE_DIR") or default_cache()).resolve())


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
