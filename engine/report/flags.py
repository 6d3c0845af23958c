"""Per-image results as the store keeps them: one bit per evaluation image, and counts behind accuracies.

numpy only, so the store reads and grows result rows (engine/store/extended.py) without loading the
statistics' scipy and pandas on the CLI's fast paths.
"""

from __future__ import annotations

import numpy as np


def successes(acc: float, n: int) -> int:
    """The count behind a stored accuracy (accuracies are k / n, so this is exact up to rounding)."""
    return int(round(acc * n))


def pack_flags(flags: np.ndarray) -> bytes:
    """Per-example booleans as bits, 8 images a byte (np.packbits order): how the store keeps them."""
    return np.packbits(np.asarray(flags, dtype=bool)).tobytes()


def unpack_flags(bits: bytes, n: int) -> np.ndarray:
    """The `n` booleans that `pack_flags` packed."""
    return np.unpackbits(np.frombuffer(bits, dtype=np.uint8), count=n).astype(bool)
