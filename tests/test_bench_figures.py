"""The bench's judgements that are not timings: the paired over-reporting test of the surface."""

from __future__ import annotations

import torch

from bench.surface import EPS, Curve, significant_over_pt


def _curve(right: int, n: int = 1000) -> Curve:
    flags = torch.zeros(n, dtype=torch.bool)
    flags[:right] = True
    return Curve(dict.fromkeys(EPS, flags))


def test_a_surface_equal_to_the_plain_attack_is_not_significantly_above_it():
    assert significant_over_pt(_curve(600), _curve(600), comparisons=16) < 0


def test_a_surface_that_reports_many_more_robust_images_is_significantly_above():
    assert significant_over_pt(_curve(650), _curve(600), comparisons=16) > 2.0  # 50 images more on 1,000
    assert significant_over_pt(_curve(603), _curve(600), comparisons=16) < 0  # 3 more: within the attack's noise
