"""Accuracies as measurements: intervals, paired and unpaired comparisons, and what would decide them.

An accuracy on n images is k successes in n trials: its 95 % interval is Wilson's score interval.
Two accuracies on the *same* images are compared per example (exact McNemar test on the discordant
pairs, Tango's score interval for the paired difference); on different images, with Newcombe's hybrid
score interval and Fisher's exact test. The tests and Wilson's interval come from scipy.stats;
Tango's interval (in no library we use) is solved here with scipy's root finder, and its coverage is
checked by simulation in tests/test_stats.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import binomtest, fisher_exact, norm
from scipy.stats import bootstrap as scipy_bootstrap
from scipy.stats import t as student_t

from engine.report.flags import pack_flags, successes, unpack_flags  # noqa: F401  (re-exported)
from engine.status import Decision

LEVEL = 0.95
"""Confidence level of every interval the product shows."""


@lru_cache(maxsize=65536)
def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials (n = 0: the whole [0, 1])."""
    if n <= 0:
        return 0.0, 1.0
    interval = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(interval.low), float(interval.high)


def intervals(acc: pd.Series, n: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Wilson bounds of each accuracy on its n images; missing (None) where n is unknown."""
    bounds = [
        wilson(successes(a, int(m)), int(m)) if pd.notna(m) and pd.notna(a) else (None, None) for a, m in zip(acc, n)
    ]
    low = pd.Series([b[0] for b in bounds], index=acc.index, dtype="float64")
    high = pd.Series([b[1] for b in bounds], index=acc.index, dtype="float64")
    return low, high


@dataclass(frozen=True)
class Difference:
    """first − second, as a fraction, with its 95 % interval, the test's p-value and what it rests on."""

    diff: float
    low: float
    high: float
    p: float
    n: int
    paired: bool
    discordant: int = 0  # paired: examples on which exactly one of the two is right
    sequential: bool = False  # an anytime-valid interval (the evaluation grew until it decided: sequential.py)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return asdict(self)

    def significant(self, level: float = LEVEL) -> bool:
        """Is the difference distinguishable from zero at this level?"""
        return self.p < 1 - level


def paired(first: np.ndarray, second: np.ndarray, level: float = LEVEL) -> Difference:
    """Per-example comparison of two classifiers on the same images (boolean "correct" arrays).

    The p-value is exact McNemar: among the b + c discordant examples, first-only-right ones are
    Binomial(b + c, ½) under "no difference". The interval is Tango's score interval for the
    difference of paired proportions (Tango 1998; recommended by Fagerland, Lydersen & Laake 2013),
    which lets the discordant count vary: identical classifiers get an interval wider than a point,
    and a model that loses b images and wins none keeps its promised coverage (tests/test_stats.py
    simulates it). Near the edge the asymptotic interval can exclude 0 where the exact p is ≥ 0.05
    (b = 0, c = 5 on 500 images): verdicts use the interval, "significant" the exact p.
    """
    first, second = np.asarray(first, bool), np.asarray(second, bool)
    if first.shape != second.shape:
        raise ValueError("paired comparison needs the same evaluation images for both")
    n = int(first.size)
    b, c = int((first & ~second).sum()), int((~first & second).sum())
    if n == 0:
        return Difference(0.0, -1.0, 1.0, 1.0, 0, True, 0)
    p = float(binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
    low, high = tango(b, c, n, level)
    return Difference((b - c) / n, low, high, p, n, True, b + c)


def _tango_score(delta: float, b: int, c: int, n: int) -> float:
    """Tango's score statistic for "first − second = delta" on a paired table with b first-only-right
    and c second-only-right examples out of n: (b − c − n·delta) / √(n(2q + delta(1 − delta))), q the
    likelihood-maximising share of second-only-right examples under that delta."""
    w = -b - c + (2 * n - b + c) * delta
    root = math.sqrt(max(w * w + 8 * n * c * delta * (1 - delta), 0.0))
    q = max((root - w) / (4 * n), -delta, 0.0)
    variance = n * (2 * q + delta * (1 - delta))
    excess = b - c - n * delta
    if variance <= 0:
        return 0.0 if excess == 0 else math.copysign(math.inf, excess)
    return excess / math.sqrt(variance)


@lru_cache(maxsize=65536)
def tango(b: int, c: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Tango's score interval for (b − c)/n: every delta whose score statistic is within ±z."""
    z = float(norm.ppf(1 - (1 - level) / 2))
    point, edge = (b - c) / n, 1e-12
    above = lambda delta: _tango_score(delta, b, c, n) - z
    below = lambda delta: _tango_score(delta, b, c, n) + z
    low = -1.0 if above(-1 + edge) <= 0 else float(brentq(above, -1 + edge, point, xtol=1e-12))
    high = 1.0 if below(1 - edge) >= 0 else float(brentq(below, point, 1 - edge, xtol=1e-12))
    return min(low, point), max(high, point)


def unpaired(k1: int, n1: int, k2: int, n2: int, level: float = LEVEL) -> Difference:
    """k1/n1 − k2/n2 on different images: Newcombe's hybrid score interval and Fisher's exact test."""
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1, level), wilson(k2, n2, level)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    _, p = fisher_exact([[k1, n1 - k1], [k2, n2 - k2]])
    return Difference(diff, low, high, float(p), min(n1, n2), False)


def images_to_decide(
    gap: float, discordance: float | None = None, spread: float = 0.25, level: float = LEVEL, power: float = 0.8
) -> int | None:
    """Roughly how many evaluation images would show a true `gap` at this level with this power.

    Paired (McNemar, Connor 1987) when the share of discordant examples is known; otherwise two
    independent accuracies with variance `spread` = p(1 − p) each. None when the gap is zero.
    """
    if gap == 0:
        return None
    z_alpha, z_beta = norm.ppf(1 - (1 - level) / 2), norm.ppf(power)
    if discordance is not None:
        discordance = max(discordance, abs(gap))
        root = z_alpha * math.sqrt(discordance) + z_beta * math.sqrt(max(discordance - gap**2, 0.0))
        return math.ceil((root / gap) ** 2)
    return math.ceil((z_alpha + z_beta) ** 2 * 2 * spread / gap**2)


def at_least(difference: Difference) -> Decision:
    """The claim "first ≥ second": holds when the interval lies above zero, fails when below."""
    if difference.low > 0:
        return Decision.HOLDS
    if difference.high < 0:
        return Decision.FAILS
    return Decision.INCONCLUSIVE


def within(difference: Difference, margin: float) -> Decision:
    """The claim "first and second are comparable": the interval inside ±margin holds; entirely
    outside it fails; overlapping its edge cannot be decided."""
    if -margin <= difference.low and difference.high <= margin:
        return Decision.HOLDS
    if difference.low > margin or difference.high < -margin:
        return Decision.FAILS
    return Decision.INCONCLUSIVE


def decide(low: float, high: float, margin: float = 0.0) -> Decision:
    """The claim "statistic ≥ −margin", from the statistic's interval: holds when the interval lies
    above −margin, fails when it lies below, and cannot be decided when it straddles −margin.

    margin = 0 is a superiority claim ("A beats B"); margin > 0 a non-inferiority one ("A is as good
    as B, within margin"), the margin stated beside the verdict.
    """
    if low > -margin:
        return Decision.HOLDS
    if high < -margin:
        return Decision.FAILS
    return Decision.INCONCLUSIVE


@dataclass(frozen=True)
class Estimate:
    """A statistic of several accuracies with its 95 % interval and the images it rests on."""

    value: float
    low: float
    high: float
    n: int
    paired: bool

    def images_to_decide(self, margin: float = 0.0, level: float = LEVEL, power: float = 0.8) -> int | None:
        """Roughly how many evaluation images would decide "value ≥ −margin" at the observed value:
        the interval shrinks as 1/√n, so n grows as ((z_α + z_β)·se / distance)²."""
        distance = abs(self.value + margin)
        if distance < 1e-12 or self.n <= 0:
            return None
        se = (self.high - self.low) / (2 * norm.ppf(1 - (1 - level) / 2))
        z = norm.ppf(1 - (1 - level) / 2) + norm.ppf(power)
        return max(self.n, math.ceil(self.n * (z * se / distance) ** 2))


def across_seeds(estimates: list[Estimate], level: float = LEVEL, overlap: float = 0.0) -> Estimate:
    """One statistic measured on k seeds (independent runs), combined: the mean of the seeds' values,
    with the wider of two 95 % intervals around it, so that neither source of noise is hidden:
    the images' and, for k ≥ 2, the seeds' (Student's t over the k values: wide with few seeds, as it
    should be).

    The images' half-width of a mean over seeds depends on how many images two seeds share: each seed
    draws its own evaluation subset, so two seeds share about `overlap` = n / (test split) of their
    images, and their image noise is correlated by as much. Independent subsets (overlap 0) combine in
    quadrature, √(Σ hᵢ²) / k; the whole split (overlap 1: every seed scores the same images, the paired
    case) gives the mean of the half-widths, Σ hᵢ / k, which seeds cannot shrink."""
    values = np.array([e.value for e in estimates], dtype=float)
    k, mean = len(values), float(values.mean())
    halves = np.array([(e.high - e.low) / 2 for e in estimates], dtype=float)
    correlated = overlap * (halves.sum() ** 2 - (halves**2).sum())
    half = float(np.sqrt((halves**2).sum() + correlated) / k)
    if k >= 2:
        spread = float(student_t.ppf(1 - (1 - level) / 2, k - 1) * values.std(ddof=1) / math.sqrt(k))
        half = max(half, spread)
    return Estimate(mean, mean - half, mean + half, sum(e.n for e in estimates), all(e.paired for e in estimates))


def bootstrap(
    flags: np.ndarray,
    statistic: Callable[[np.ndarray], float],
    level: float = LEVEL,
    resamples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """A statistic of per-column accuracies, with a paired bootstrap interval over the evaluation images.

    `flags` is images × cells (booleans, every cell scored on the same images); `statistic` maps the
    cells' accuracies to one number. Resampling whole images keeps every cell's correlation. A strict
    level (a corrected or planned one) gets more resamples, so each tail keeps at least 10 of them.
    """
    resamples = max(resamples, math.ceil(20 / (1 - level)))
    flags = np.asarray(flags, dtype=float)
    value = float(statistic(flags.mean(axis=0)))
    if flags.shape[0] < 2:
        return Estimate(value, -math.inf, math.inf, flags.shape[0], True)
    result = scipy_bootstrap(
        (np.arange(flags.shape[0]),),
        lambda rows: statistic(flags[rows].mean(axis=0)),
        vectorized=False,
        n_resamples=resamples,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return Estimate(value, float(min(interval.low, value)), float(max(interval.high, value)), flags.shape[0], True)


def parametric_bootstrap(
    acc: np.ndarray,
    n: np.ndarray,
    statistic: Callable[[np.ndarray], float],
    level: float = LEVEL,
    resamples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """The same for cells scored on *different* images: each accuracy redrawn as Binomial(n, acc) / n,
    independently (no pairing to exploit)."""
    acc, n = np.asarray(acc, float), np.asarray(n, int)
    draws = np.random.default_rng(seed).binomial(n, acc, size=(resamples, len(acc))) / n
    values = np.array([statistic(row) for row in draws])
    tail = (1 - level) / 2
    value = float(statistic(acc))
    low, high = np.quantile(values, [tail, 1 - tail])
    return Estimate(value, float(min(low, value)), float(max(high, value)), int(n.min()), False)
