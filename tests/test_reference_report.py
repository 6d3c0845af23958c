"""A paper claim judged on PGD reports AutoAttack beside it, and every preset says which attacks judge it."""

from __future__ import annotations

import pytest

from engine.papers import presets as papers
from engine.papers.reference import REFERENCE_ATTACK, reference_line, reference_table
from tests.paper_fakes import NAMES, fill_paper, hydra_holds


def _autoattack_lower(gap: float):
    """hydra_holds, with AutoAttack `gap` below PGD at HYDRA's most compressed checkpoint."""

    def accuracy(label, step, target, attack, eps):
        clean, robust, transfer = hydra_holds(label, step, target, attack, eps)
        if attack == REFERENCE_ATTACK and label == "HYDRA" and step == 3:
            robust -= gap
        return clean, robust, transfer

    return accuracy


def test_autoattack_no_lower_than_pgd_is_reported_as_never_significantly_above(store):
    fill_paper(store, "hydra", _autoattack_lower(0.0))
    verdict = papers.check("hydra", store)
    assert list(verdict.reference["step"]) == [3, 3]  # AutoAttack scores the smallest k only (`at`)
    assert (verdict.reference["above"] == 0).all()
    assert verdict.notes == [reference_line(verdict.reference, "pgd_linf", 0.1)]
    assert "is never significantly above it" in verdict.notes[0]
    assert verdict.as_dict()["reference"][0]["n"] == 500


def test_pgd_above_autoattack_is_reported_as_over_reporting_robustness(store):
    fill_paper(store, "hydra", _autoattack_lower(0.06))
    verdict = papers.check("hydra", store)
    worst = verdict.reference.loc[verdict.reference["above"].idxmax()]
    assert (worst["variant"], worst["step"]) == ("HYDRA", 3)
    assert worst["above"] == pytest.approx(0.06) and worst["above_low"] > 0
    assert "over-reports robustness on 1 of them" in verdict.notes[0] and "upper bounds" in verdict.notes[0]
    assert verdict.findings == papers.check("hydra", store).findings  # reported, never judged


def test_the_reference_interval_is_corrected_for_picking_the_largest_gap(store):
    fill_paper(
        store, "mrpf", lambda label, *a: (0.8, 0.5 - (0.012 if label == "MRPF" else 0) * (a[2] == REFERENCE_ATTACK), 0)
    )
    results = papers.collect(papers.load_paper("mrpf"), store)  # 6 of 500 images: enough at 95 %, not at 98.75 %
    table = reference_table(results, "pgd_linf", 0.1)
    worst = table.loc[table["above"].idxmax()]
    assert len(table) == 4 and worst["variant"] == "MRPF" and worst["above"] == pytest.approx(0.012)
    assert worst["above_low"] <= 0, "4 checkpoints: the largest gap is read at the Bonferroni level"


def test_a_claim_without_autoattack_rows_carries_no_reference(store):
    fill_paper(store, "bap", lambda *a: (0.8, 0.5, 0.0))
    verdict = papers.check("bap", store)
    assert verdict.notes == [] and verdict.reference.empty


@pytest.mark.parametrize("name", NAMES)
def test_every_preset_says_which_attacks_judge_it(name):
    preset = papers.load_paper(name)
    line = papers.judged_by(preset)
    assert line.startswith(f"Judged by {preset.options['attack']} (")
    if preset.options["attack"].startswith("pgd_linf"):
        assert "AutoAttack (Croce & Hein's standard, 100 iterations) checks it" in line
    assert papers.judged_by(preset, paper=True).startswith(f"Judged by {preset.options['attack']} (")


def test_the_pgd_judged_presets_score_autoattack_at_the_claim_s_eps():
    for name in NAMES:
        preset = papers.load_paper(name)
        if not preset.options["attack"].startswith("pgd_linf"):
            continue
        for spec in papers.expand(preset).values():
            (entry,) = [a for a in spec.eval.attacks if a.name == REFERENCE_ATTACK]
            assert preset.options["eps"] in entry.eps and entry.steps == 100, name
