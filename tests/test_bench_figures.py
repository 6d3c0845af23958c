"""The bench's judgements that are not timings: the paired over-reporting test of the surface, and the
work its sustained bound replays."""

from __future__ import annotations

import torch

from bench.surface import EPS, Curve, floor_calls, robust_work_flops, significant_over_pt


def _curve(right: int, n: int = 1000) -> Curve:
    flags = torch.zeros(n, dtype=torch.bool)
    flags[:right] = True
    return Curve(dict.fromkeys(EPS, flags))


def test_a_surface_equal_to_the_plain_attack_is_not_significantly_above_it():
    assert significant_over_pt(_curve(600), _curve(600), comparisons=16) < 0


def test_a_surface_that_reports_many_more_robust_images_is_significantly_above():
    assert significant_over_pt(_curve(650), _curve(600), comparisons=16) > 2.0  # 50 images more on 1,000
    assert significant_over_pt(_curve(603), _curve(600), comparisons=16) < 0  # 3 more: within the attack's noise


def test_the_floor_replay_is_every_robust_pair_s_ten_steps_and_one_check_in_full_batches():
    accuracy = {0.0: 0.9, 0.01: 0.6, 0.02: 0.3}  # 600 + 300 robust pairs on 1,000 images; ε = 0 is free
    calls = floor_calls(accuracy, n=1000, batch=250)
    steps = [size for size, grad in calls if grad]
    checks = [size for size, grad in calls if not grad]
    assert sum(steps) == 10 * 900 and sum(checks) == 900
    assert sorted(set(checks)) == [150, 250]  # pooled over ε: 3 full batches and the rest, not 250 + 50 + 250 + 50
    step_flops, forward_flops = 3.0, 1.0
    replayed = sum(size * (step_flops if grad else forward_flops) for size, grad in calls)
    assert replayed == robust_work_flops(accuracy, 1000, step_flops, forward_flops)  # the floor the bound counts
