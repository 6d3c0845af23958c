"""The anytime-valid interval behind "Decide this": calibrated under optional stopping, by simulation.

The procedure simulated is the engine's: a comparison on a run's own images (n0), then further chunks
of 500 images, looking after each and stopping as soon as the interval decides, or when the split's
10,000 images are used up. Under no true difference, a false verdict is any look whose interval
excludes zero; the wealth of betting on the true mean reaching 1/α is exactly that event.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.report.sequential import (
    CHUNK,
    arrival_order,
    chunk_sizes,
    difference_sequence,
    paired_grown,
    paired_sequential,
    peak_log_wealth,
)
from engine.report.stats import decide, tango

REPS, N0, N_MAX = 2000, 500, 10_000
LOOKS = list(range(N0, N_MAX + 1, CHUNK))


def _null_differences(discordance: float, seed: int = 1, truth: float = 0.0) -> np.ndarray:
    """REPS sequences of per-image differences first − second (−1, 0, 1) with mean `truth`."""
    rng = np.random.default_rng(seed)
    p_up, p_down = (discordance + truth) / 2, (discordance - truth) / 2
    return rng.choice([-1, 0, 1], p=[p_down, 1 - discordance, p_up], size=(REPS, N_MAX))


def _ever_excludes(differences: np.ndarray, truth: float = 0.0) -> np.ndarray:
    """Per sequence: did the interval exclude `truth` at some look? (At the truth's mean m, that is
    the hedged wealth reaching 1/α at some image, which the running intersection keeps excluded.)"""
    m = np.array([(truth + 1) / 2])
    return peak_log_wealth((differences + 1) / 2, m)[:, 0] >= math.log(20)


@pytest.mark.parametrize("discordance", [0.04, 0.10, 0.30])
def test_growing_until_decided_declares_a_false_difference_at_most_at_the_nominal_rate(discordance):
    differences = _null_differences(discordance)
    false_rate = _ever_excludes(differences).mean()
    # nominal 5 % two-sided, so a false "holds" ≤ 2.5 % by symmetry; the Monte Carlo error at 2,000 reps is ~0.5 pt
    assert false_rate <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / REPS), false_rate


def test_the_fixed_n_interval_looked_at_after_every_chunk_would_not_be_calibrated():
    """Why the sequence is needed: Tango's interval, read after every chunk, errs several times its 5 %."""
    differences = _null_differences(0.10)[:400]
    b, c = np.cumsum(differences == 1, axis=1), np.cumsum(differences == -1, axis=1)
    fooled = 0
    for row in range(len(differences)):
        for n in LOOKS:
            low, high = tango(int(b[row, n - 1]), int(c[row, n - 1]), n)
            if low > 0 or high < 0:
                fooled += 1
                break
    assert fooled / len(differences) > 0.12


def test_among_comparisons_the_first_look_left_undecided_deciding_errs_less_than_nominal():
    """The button is offered only where the run's own images left the question open: conditional on that,
    the grown comparison's false verdicts stay below 5 % (the first look's own 5 % is spent already)."""
    differences = _null_differences(0.10, seed=2)
    b, c = np.cumsum(differences == 1, axis=1), np.cumsum(differences == -1, axis=1)
    undecided = np.array(
        [decide(*tango(int(b[r, N0 - 1]), int(c[r, N0 - 1]), N0)) == "inconclusive" for r in range(REPS)]
    )
    assert _ever_excludes(differences[undecided]).mean() <= 0.05


def test_the_interval_covers_a_true_difference_at_every_look():
    truth = 0.02
    differences = _null_differences(0.10, seed=3, truth=truth)
    assert _ever_excludes(differences, truth).mean() <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / REPS)


def test_the_sequence_narrows_as_images_are_added_and_decides_a_real_gap():
    rng = np.random.default_rng(4)
    differences = rng.choice([-1, 0, 1], p=[0.03, 0.90, 0.07], size=4000)  # a true +4 pt gap
    widths = [np.subtract(*reversed(astuple(difference_sequence(differences[:n])))) for n in (500, 1000, 4000)]
    assert widths[0] > widths[1] > widths[2] > 0
    final = difference_sequence(differences)
    assert final.low > 0 and final.low <= 0.04 <= final.high


def astuple(interval):
    return interval.low, interval.high


def test_the_sequence_is_wider_than_tangos_at_the_same_n_the_price_of_looking_again():
    rng = np.random.default_rng(5)
    differences = rng.choice([-1, 0, 1], p=[0.05, 0.90, 0.05], size=1000)
    sequence = difference_sequence(differences)
    low, high = tango(int((differences == 1).sum()), int((differences == -1).sum()), 1000)
    assert sequence.low < low and sequence.high > high


def test_arrival_order_shuffles_each_chunk_within_itself_and_the_same_way_for_both_checkpoints():
    order = arrival_order([500, 500, 120])
    assert sorted(order[:500]) == list(range(500)) and sorted(order[500:1000]) == list(range(500, 1000))
    assert sorted(order[1000:]) == list(range(1000, 1120)) and not np.array_equal(order[:500], np.arange(500))
    assert np.array_equal(order, arrival_order([500, 500, 120]))


def test_chunk_sizes_read_how_images_arrived():
    assert chunk_sizes(500, 500) == [500] and chunk_sizes(500, 1500) == [500, 500, 500]
    assert chunk_sizes(300, 1000) == [300, 500, 200]


def test_paired_grown_uses_tango_on_the_runs_own_images_and_the_sequence_beyond():
    rng = np.random.default_rng(6)
    first, second = rng.random(1500) < 0.6, rng.random(1500) < 0.5
    own = paired_grown(first[:500], second[:500], 500)
    assert not own.sequential and own.n == 500
    grown = paired_grown(first, second, 500)
    assert grown.sequential and grown.n == 1500
    assert grown == paired_sequential(first, second, [500, 500, 500])
    shorter = paired_grown(first, second[:1000], 500)  # one checkpoint grown further: the images both have
    assert shorter.n == 1000 and shorter.sequential
