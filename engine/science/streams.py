"""Random numbers per evaluation example, whatever batch it is in.

A random start drawn per batch depends on which other examples share the batch: in a robust curve's
upward scan the batch at ε holds only the examples still robust, so an example would get a different
start than a per-ε attack gives it, and the scan could report it robust where that attack breaks it.
`ExampleStreams` draws each example's numbers from a counter-based generator (Philox 4×64, Salmon et
al. 2011, as numpy ships it) keyed by the stream (run seed, attack, ε, restart) with the example's
index in the evaluation set in the counter's top word: its draws are a function of (stream, index,
draw) alone. Successive draws of one perturbation (a direction, then a radius) use the counter's
third word, so they never overlap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch


class ExampleStreams:
    """Per-example random draws for one batch: `index` holds each row's index in the evaluation set."""

    def __init__(self, stream: str, index: torch.Tensor | Sequence[int]):
        digest = hashlib.blake2b(stream.encode(), digest_size=16).digest()
        self.key = int.from_bytes(digest, "little")
        self.index = [int(i) for i in (index.tolist() if isinstance(index, torch.Tensor) else index)]
        self.draws = 0

    def __len__(self) -> int:
        return len(self.index)

    def _generators(self) -> list[np.random.Generator]:
        self.draws += 1
        return [np.random.Generator(np.random.Philox(key=self.key, counter=[0, 0, self.draws, i])) for i in self.index]

    def uniform(self, shape: Sequence[int], low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        """(rows, *shape) float32 uniform on [low, high): row r from example index[r]'s stream."""
        rows = [g.random(tuple(shape), dtype=np.float32) for g in self._generators()]
        return torch.from_numpy(np.stack(rows) if rows else np.zeros((0, *shape), np.float32)) * (high - low) + low

    def normal(self, shape: Sequence[int]) -> torch.Tensor:
        """(rows, *shape) float32 standard normal: row r from example index[r]'s stream."""
        rows = [g.standard_normal(tuple(shape), dtype=np.float32) for g in self._generators()]
        return torch.from_numpy(np.stack(rows) if rows else np.zeros((0, *shape), np.float32))

    def seed(self) -> int:
        """One seed for the whole batch, for libraries that draw from a global generator (torchattacks):
        those draws still depend on the batch, unlike this class's own."""
        return int.from_bytes(hashlib.blake2b(f"{self.key}|{self.index}".encode(), digest_size=4).digest(), "little")

    def rows(self, start: int, stop: int) -> ExampleStreams:
        """The streams of rows start … stop − 1 at this object's current draw, which does not move: a
        caller that draws block by block calls `skip()` once afterwards."""
        part = ExampleStreams.__new__(ExampleStreams)
        part.key, part.index, part.draws = self.key, self.index[start:stop], self.draws
        return part

    def skip(self) -> None:
        """Move past one draw (made block by block through `rows`)."""
        self.draws += 1

    def subset(self, rows: torch.Tensor) -> ExampleStreams:
        """The streams of some rows (a boolean mask or positions), continuing after the draws made so far."""
        chosen = rows.nonzero().flatten().tolist() if rows.dtype == torch.bool else rows.tolist()
        part = ExampleStreams.__new__(ExampleStreams)
        part.key, part.index, part.draws = self.key, [self.index[r] for r in chosen], self.draws
        return part


def stream_name(seed: int, attack: str, eps: float, restart: int) -> str:
    """The stream of one (run seed, attack, ε, restart): every example's draws there start from it."""
    return f"{seed}|{attack}|{eps!r}|{restart}"
