"""AUC, sweet spots, the adversarial-share mix and each hygiene warning on crafted frames."""

import numpy as np
import pandas as pd
import pytest

from engine.report import summaries


def frame(curves: dict, sparsity=None, clean=0.9, run="r") -> pd.DataFrame:
    rows = []
    for (step, attack), points in curves.items():
        for eps, acc in points:
            rows.append(
                {
                    "run_id": run,
                    "step": step,
                    "sparsity": (sparsity or {}).get(step, step / 10),
                    "clean_acc": clean,
                    "attack": attack,
                    "norm": "Linf",
                    "eps": eps,
                    "acc": acc,
                }
            )
    return pd.DataFrame(rows)


def test_auc_of_known_curves():
    assert summaries.normalised_auc(np.array([0, 1]), np.array([1.0, 1.0])) == 1.0
    assert summaries.normalised_auc(np.array([0, 0.5, 1]), np.array([1.0, 0.5, 0.0])) == pytest.approx(0.5)
    assert summaries.normalised_auc(np.array([0, 0.1, 0.3]), np.array([0.8, 0.4, 0.0])) == pytest.approx(
        ((0.8 + 0.4) / 2 * 0.1 + 0.4 / 2 * 0.2) / 0.3
    )


def test_auc_table_has_one_row_per_checkpoint_and_attack():
    table = summaries.auc_table(
        frame({(0, "pgd_linf"): [(0, 0.9), (0.1, 0.1)], (1, "pgd_linf"): [(0, 0.9), (0.1, 0.3)]})
    )
    assert list(table["auc"]) == pytest.approx([0.5, 0.6]) and list(table["step"]) == [0, 1]


def flagged(step: int, eps: float, correct: np.ndarray) -> dict:
    """A robust row with its per-image flags, as the store keeps them."""
    from engine.report.stats import pack_flags

    acc = float(correct.mean())
    return {"run_id": "r", "step": step, "sparsity": step / 10, "clean_acc": 0.9, "attack": "pgd_linf",
            "norm": "Linf", "eps": eps, "acc": acc, "n": correct.size, "correct": pack_flags(correct)}  # fmt: skip


def test_a_sweet_spot_is_decided_by_the_paired_interval_not_a_fixed_tolerance():
    rng = np.random.default_rng(0)
    dense = rng.random(1000) < 0.30
    close = dense.copy()
    close[np.flatnonzero(dense)[:2]] = False  # two images lost: −0.2 pt, paired interval well inside 2 pt
    worse = dense.copy()
    worse[np.flatnonzero(dense)[:60]] = False  # −6 pt on the same images: fails, left out
    rows = [flagged(0, 0.0, dense | True), flagged(0, 0.1, dense), flagged(1, 0.1, close), flagged(2, 0.1, worse)]
    spots = summaries.sweet_spots(pd.DataFrame(rows))
    assert spots["step"].tolist() == [1] and spots.loc[0, "verdict"] == "holds"
    assert spots.loc[0, "dense_acc"] == pytest.approx(dense.mean()) and -0.02 < spots.loc[0, "ci_low"] < 0
    # the same accuracies on 1,000 images but without flags: two independent accuracies, a wider
    # interval that straddles −2 pt, so the images cannot tell
    unflagged = pd.DataFrame(rows).drop(columns="correct")
    spots = summaries.sweet_spots(unflagged)
    assert spots["step"].tolist() == [1] and spots.loc[0, "verdict"] == "inconclusive"
    assert spots.loc[0, "ci_low"] < -0.02 < spots.loc[0, "ci_high"]


def test_the_cliff_names_the_sparsest_sweet_spot_and_a_real_drop_after_it():
    rng = np.random.default_rng(1)
    dense = rng.random(1000) < 0.7
    kept = dense.copy()  # 2×, 4×: every image dense gets right, and one more
    kept[np.flatnonzero(~dense)[:1]] = True
    fallen = dense.copy()
    fallen[np.flatnonzero(dense)[:250]] = False  # 64×: −25 pt on the same images
    rows = [flagged(0, 0.0, dense | True), flagged(0, 0.1, dense), flagged(1, 0.1, kept), flagged(2, 0.1, kept)]
    collapse = summaries.cliff(pd.DataFrame([*rows, flagged(3, 0.1, fallen)]))
    assert collapse is not None and collapse.eps == 0.1 and collapse.free_up_to == pytest.approx(0.2)
    assert collapse.drop.diff == pytest.approx(-0.25) and collapse.drop.high < 0
    assert (collapse.free_step, collapse.step) == (2, 3)  # the Playground's before and after
    assert "free up to 20.0 %" in collapse.sentence() and "−25.0 pt" in collapse.sentence().replace("-", "−")
    assert summaries.cliff(pd.DataFrame(rows)) is None  # no real drop: no cliff to name


@pytest.mark.slow
def test_the_teaching_surface_has_its_cliff_and_its_sweet_spots(cache):
    """The lesson the teaching preset exists for, on real Fashion-MNIST: a ★ region, then a drop of at
    least 15 pt that the paired test calls real, so a later change cannot flatten it silently."""
    from engine import api

    doc = api.run(api.load_spec(preset="teaching"))
    collapse = summaries.cliff(api.robust_frame([doc["run_id"]], flags=True))
    assert collapse is not None and collapse.free_up_to is not None, "no sweet spot before the cliff"
    assert collapse.drop.diff <= -0.15 and collapse.drop.high < 0
    assert collapse.free_up_to < collapse.sparsity and collapse.free_step < collapse.step


def test_sweet_spots_need_n_and_never_judge_clean_accuracy():
    f = frame({(0, "pgd_linf"): [(0, 0.9), (0.1, 0.30)], (1, "pgd_linf"): [(0, 0.9), (0.1, 0.35)]})
    assert summaries.sweet_spots(f).empty  # no n: nothing to decide with
    f["n"] = 10_000
    spots = summaries.sweet_spots(f)
    assert spots["eps"].tolist() == [0.1] and spots["verdict"].tolist() == ["holds"]


def test_adversarial_share_mixes_clean_and_robust():
    assert list(summaries.adversarial_share(0.9, 0.1, np.array([0, 0.5, 1]))) == pytest.approx([0.9, 0.5, 0.1])


def test_clean_frames_raise_no_warning():
    f = frame({(0, "pgd_linf"): [(0, 0.9), (0.1, 0.2)], (0, "fgsm"): [(0, 0.9), (0.1, 0.4)]})
    assert summaries.hygiene(f) == []


def test_rising_with_eps_is_flagged():
    (w,) = summaries.hygiene(frame({(0, "pgd_linf"): [(0, 0.9), (0.05, 0.3), (0.1, 0.4)]}))
    assert w.kind == "rises_with_eps" and "0.1" in w.message


def test_fgsm_beating_pgd_is_flagged():
    f = frame({(0, "pgd_linf"): [(0, 0.9), (0.1, 0.4)], (0, "fgsm"): [(0, 0.9), (0.1, 0.2)]})
    (w,) = summaries.hygiene(f)
    assert w.kind == "weaker_beats_stronger" and "pgd_linf" in w.message


def test_a_gradient_free_attack_beating_pgd_is_flagged_as_gradient_masking():
    # the shape seen on a 64× pruned LeNet-5: Square 55.6 % vs PGD 60.0 % at 8/255
    f = frame({(0, "pgd_linf"): [(0, 0.67), (0.031, 0.600)], (0, "square"): [(0, 0.67), (0.031, 0.556)]})
    (w,) = summaries.hygiene(f)
    assert w.kind == "gradient_masking" and "square (55.6%) beats pgd_linf (60.0%)" in w.message
    fine = frame({(0, "pgd_linf"): [(0, 0.87), (0.031, 0.576)], (0, "square"): [(0, 0.87), (0.031, 0.624)]})
    assert summaries.hygiene(fine) == []


def test_unbounded_attack_far_from_zero_is_flagged():
    f = frame({(0, "deepfool"): [(0, 0.9), (10.0, 0.3)]})
    assert [w.kind for w in summaries.hygiene(f, unbounded=("deepfool",))] == ["unbounded_not_zero"]
    assert summaries.hygiene(frame({(0, "deepfool"): [(0, 0.9), (10.0, 0.01)]}), unbounded=("deepfool",)) == []


def test_inputs_outside_the_unit_range_are_flagged():
    assert summaries.input_range_warning(0.0, 1.0) is None
    assert "outside [0, 1]" in summaries.input_range_warning(-0.42, 2.8)


def test_difference_grid_interpolates_onto_the_shared_sparsity_range():
    import numpy as np
    import pandas as pd

    from engine.report.summaries import difference_grid

    def run(sparsities, offset):
        return pd.DataFrame(
            [{"sparsity": s, "eps": e, "acc": 0.9 - s / 2 - e + offset} for s in sparsities for e in (0.0, 0.1)]
        )

    diff = difference_grid(run([0.0, 0.5, 0.9], 0.0), run([0.0, 0.3, 0.6], 0.05), points=7)
    assert diff.index.min() == 0.0 and diff.index.max() == 0.6  # only where both runs have checkpoints
    assert list(diff.columns) == [0.0, 0.1]
    assert np.allclose(diff.values, 0.05)  # linear curves: the interpolated difference is the offset
    assert difference_grid(run([0.0, 0.2], 0), run([0.5, 0.9], 0)).empty


def test_pareto_front_keeps_only_unbeaten_points():
    from engine.report.summaries import pareto_front

    cost = [1.0, 2.0, 3.0, 2.0, 4.0]
    value = [0.5, 0.7, 0.6, 0.7, 0.9]
    assert pareto_front(np.array(cost), np.array(value)).tolist() == [True, True, False, True, True]
