"""Zhu–Gupta values and the step lists of every schedule."""

import pytest

from engine.spec.schedules import SCHEDULES, Gradual, Iterative, OneShot, zhu_gupta


def test_zhu_gupta_endpoints_and_midpoint():
    assert zhu_gupta(0, 0.0, 0.8, 0, 100, 3) == 0.0
    assert zhu_gupta(100, 0.0, 0.8, 0, 100, 3) == pytest.approx(0.8)
    assert zhu_gupta(50, 0.0, 0.8, 0, 100, 3) == pytest.approx(0.7)  # 0.8 - 0.8 * 0.5**3


def test_zhu_gupta_holds_outside_the_window_and_never_decreases():
    values = [zhu_gupta(t, 0.1, 0.9, 20, 120, 3) for t in range(0, 200)]
    assert values[0] == values[20] == 0.1 and values[-1] == pytest.approx(0.9)
    assert all(b >= a for a, b in zip(values, values[1:]))


def test_gradual_plan_matches_the_formula_and_skips_the_dense_event():
    schedule = Gradual(final_sparsity=0.95, begin=0, end=500, frequency=100)
    targets = [s.sparsity for s in schedule.plan()]
    expected = [zhu_gupta(t, 0, 0.95, 0, 500, 3) for t in (100, 200, 300, 400, 500)]
    assert targets == pytest.approx(expected)
    assert schedule.sparsities()[0] == 0.0 and len(schedule.sparsities()) == 6
    assert all(s.finetune_steps == 100 and not s.from_base for s in schedule.plan())


def test_gradual_with_initial_sparsity_prunes_at_begin():
    plan = Gradual(
        initial_sparsity=0.2, final_sparsity=0.6, begin=10, end=30, frequency=10, final_finetune_steps=50
    ).plan()
    assert [round(s.sparsity, 6) for s in plan][0] == 0.2
    assert plan[-1].sparsity == pytest.approx(0.6) and plan[-1].finetune_steps == 50


def test_one_shot_starts_every_target_from_the_base():
    plan = OneShot(targets=[0.9, 0.5, 0.5], finetune_steps=3).plan()
    assert [s.sparsity for s in plan] == [0.5, 0.9]
    assert all(s.from_base and s.finetune_steps == 3 for s in plan)


def test_iterative_is_cumulative():
    plan = Iterative(targets=[0.5, 0.75, 0.875], finetune_steps=7).plan()
    assert [s.sparsity for s in plan] == [0.5, 0.75, 0.875]
    assert not any(s.from_base for s in plan)


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_every_schedule_documents_itself(name):
    assert len(SCHEDULES.help(name)) > 20
