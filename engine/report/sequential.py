"""Anytime-valid intervals for a paired difference, so an evaluation may grow until it decides.

A comparison that looks at its images, finds them too few, evaluates more and looks again would,
with a fixed-n interval (Tango's), declare a false difference far more often than its 5 %: each look
is another chance. A confidence *sequence* covers the truth at every n at once, with probability
≥ 95 %, so stopping whenever it decides (or never) keeps the promise.

The sequence here is Waudby-Smith & Ramdas' hedged betting confidence sequence (JRSS-B 2024,
arXiv:2010.09686, Theorem 3 with the predictable plug-in bets of their eq. (26)) for the mean of
X = (D + 1) / 2 ∈ [0, 1], D = first − second ∈ {−1, 0, 1} per image: for each candidate mean m, a
gambler bets on X − m with a bet fixed before seeing the image; m leaves the sequence once the
hedged wealth reaches 1/α (Ville's inequality), and stays out (running intersection). Its width
adapts to the variance, which for paired accuracies is the discordant share: most images agree.

The images must arrive in an order chosen independently of the results. Stored flags are sorted
by image index within each chunk of evaluated images; `arrival_order` shuffles each chunk with a
fixed seed, which makes the sequence distributed as the seeded random order the chunks were drawn
in. tests/test_sequential.py simulates the whole procedure — look, extend, look again until decided
— and checks the false "holds" rate at its nominal level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from engine.report.stats import LEVEL, Difference, paired

CHUNK = 500
"""Images per chunk when an evaluation grows: the step between two looks of a growing comparison."""
GRID = 2001
"""Candidate means checked on [0, 1]: the difference's resolution is 2 / (GRID − 1) = 0.001."""
TRUNCATION = 0.5  # c of Waudby-Smith & Ramdas: bets at most c / m (or c / (1 − m)) of the wealth
TIME_CHUNK = 1024  # images processed at once (memory: TIME_CHUNK × GRID floats)
ORDER_SEED = 20_201_019  # the shuffle of each chunk's flags; any fixed seed will do


def plugin_bets(x: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """λ̇_t for each image t (along the last axis), each computed from the images before it only:
    √(2 log(2/α) / (σ̂²_{t−1} · t · log(1 + t))), σ̂² a running variance started at ¼."""
    alpha = 1 - level
    t = np.arange(1, x.shape[-1] + 1, dtype=float)
    means = (0.5 + np.cumsum(x, axis=-1)) / (t + 1)
    variances = (0.25 + np.cumsum((x - means) ** 2, axis=-1)) / (t + 1)
    previous = np.concatenate([np.full(x.shape[:-1] + (1,), 0.25), variances[..., :-1]], axis=-1)
    return np.sqrt(2 * math.log(2 / alpha) / (previous * t * np.log1p(t)))


def peak_log_wealth(x: np.ndarray, m: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """max over t of log K_t(m), the hedged wealth ½K⁺ + ½K⁻ of betting that the mean is not m, for each
    candidate m (last axis of the result) and each sequence (leading axes of x; images on its last)."""
    x, m = np.asarray(x, dtype=float), np.atleast_1d(np.asarray(m, dtype=float))
    bets = plugin_bets(x, level)
    up_cap, down_cap = TRUNCATION / np.maximum(m, 1e-12), TRUNCATION / np.maximum(1 - m, 1e-12)
    shape = x.shape[:-1] + m.shape
    log_up, log_down, peak = np.zeros(shape), np.zeros(shape), np.full(shape, -np.inf)
    for start in range(0, x.shape[-1], TIME_CHUNK):
        xs, bs = x[..., start : start + TIME_CHUNK, None], bets[..., start : start + TIME_CHUNK, None]
        up = log_up[..., None, :] + np.cumsum(np.log1p(np.minimum(bs, up_cap) * (xs - m)), axis=-2)
        down = log_down[..., None, :] + np.cumsum(np.log1p(-np.minimum(bs, down_cap) * (xs - m)), axis=-2)
        hedged = np.logaddexp(up, down) - math.log(2)
        peak = np.maximum(peak, hedged.max(axis=-2))
        log_up, log_down = up[..., -1, :], down[..., -1, :]
    return peak


def arrival_order(chunk_sizes: list[int]) -> np.ndarray:
    """Positions that put stored flags (chunk after chunk, each sorted by image index) in a random
    order fixed before any result: each chunk shuffled on its own, chunks kept in the order drawn."""
    parts, start = [], 0
    for size in chunk_sizes:
        parts.append(start + np.random.default_rng([ORDER_SEED, size]).permutation(size))
        start += size
    return np.concatenate(parts) if parts else np.zeros(0, dtype=int)


@dataclass(frozen=True)
class SequenceInterval:
    """The confidence sequence's interval for first − second after all the images so far."""

    low: float
    high: float


def difference_sequence(differences: np.ndarray, level: float = LEVEL) -> SequenceInterval:
    """The interval of the mean of per-image differences (−1, 0, 1, in arrival order) that holds at
    every n at once: the candidates no gambler has yet beaten, widened to the grid's next points."""
    x = (np.asarray(differences, dtype=float) + 1) / 2
    grid = np.linspace(0.0, 1.0, GRID)
    if x.size == 0:
        return SequenceInterval(-1.0, 1.0)
    alive = np.flatnonzero(peak_log_wealth(x, grid, level) < math.log(1 / (1 - level)))
    if alive.size == 0:  # every candidate beaten: only possible with probability < α; keep the least beaten
        alive = np.array([int(np.argmin(peak_log_wealth(x, grid, level)))])
    low, high = grid[max(alive[0] - 1, 0)], grid[min(alive[-1] + 1, GRID - 1)]
    return SequenceInterval(2 * low - 1, 2 * high - 1)


def paired_sequential(first: np.ndarray, second: np.ndarray, sizes: list[int], level: float = LEVEL) -> Difference:
    """`stats.paired` for an evaluation that grew chunk by chunk until it decided: the same difference,
    exact McNemar p (shown, not used for the verdict) and an anytime-valid interval."""
    first, second = np.asarray(first, bool), np.asarray(second, bool)
    if first.shape != second.shape or sum(sizes) != first.size:
        raise ValueError("sequential comparison needs the same images, chunk by chunk, for both")
    n = int(first.size)
    b, c = int((first & ~second).sum()), int((~first & second).sum())
    order = arrival_order(sizes)
    interval = difference_sequence(first[order].astype(int) - second[order].astype(int), level)
    p = float(binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
    diff = (b - c) / n if n else 0.0
    return Difference(diff, min(interval.low, diff), max(interval.high, diff), p, n, True, b + c, sequential=True)


def chunk_sizes(n_own: int, n: int) -> list[int]:
    """How n images arrived: the run's own n_own, then full chunks, then the rest of the split."""
    extra = n - n_own
    return [n_own] + [CHUNK] * (extra // CHUNK) + ([extra % CHUNK] if extra % CHUNK else [])


def paired_grown(first: np.ndarray, second: np.ndarray, n_own: int, level: float = LEVEL) -> Difference:
    """Two checkpoints' per-image flags on the same images, the first `n_own` the runs' own and any after
    them added chunk by chunk to decide: on the images both have, Tango's fixed-n interval when none was
    added, else the anytime-valid one (the evaluation looked more than once)."""
    n = min(len(first), len(second))
    if n <= n_own:
        return paired(first[:n], second[:n], level)
    return paired_sequential(first[:n], second[:n], chunk_sizes(n_own, n), level)


# ---- a group-sequential plan for claims -------------------------------------------------------
# A paper preset's claim is a statistic of many accuracies (a lead, a spread, a sweet spot among
# several), judged by a bootstrap over the shared images; no betting sequence covers those. Its grown
# evaluation follows a plan fixed before the first look instead: looks at the run's own n, then twice
# as many images each time, up to the whole test split; every look's intervals at the Bonferroni level
# 1 − α / (number of looks), so the chance of a false verdict at any look stays ≤ α.


def claim_looks(n_own: int, n_test: int) -> list[int]:
    """The planned looks of a claim's grown evaluation: the runs' own n, doubled at each look, the last
    the whole test split (one look when the runs already used it)."""
    looks = [n_own]
    while looks[-1] < n_test:
        looks.append(min(2 * looks[-1], n_test))
    return looks


def plan_level(n_own: int, n_test: int, level: float = LEVEL) -> float:
    """The level of every look of the plan: Bonferroni over its looks."""
    return 1 - (1 - level) / len(claim_looks(n_own, n_test))


def last_look(n: int, n_own: int, n_test: int) -> int:
    """The largest planned look that `n` images reach (a look is read only once complete)."""
    return max(look for look in claim_looks(n_own, n_test) if look <= max(n, n_own))


def next_look(n: int, n_own: int, n_test: int) -> int | None:
    """The first planned look beyond `n` images (None once the split is spent)."""
    return next((look for look in claim_looks(n_own, n_test) if look > n), None)
