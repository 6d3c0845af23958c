"""Figure builders on small hand-made frames: pure functions, no browser."""

from typing import Any

import pandas as pd
import pytest

from engine.report import figures


@pytest.fixture
def frame() -> pd.DataFrame:
    rows = []
    for step, sparsity, clean in ((0, 0.0, 0.9), (1, 0.5, 0.88), (2, 0.9, 0.7)):
        for eps, drop in ((0.0, 0.0), (8 / 255, 0.3), (0.1, 0.6)):
            rows.append(
                {
                    "run_id": "r",
                    "step": step,
                    "sparsity": sparsity,
                    "clean_acc": clean,
                    "attack": "pgd_linf",
                    "norm": "Linf",
                    "eps": eps,
                    "acc": clean - drop * clean,
                }
            )
    return pd.DataFrame(rows)


def test_eps_labels_use_k_over_255_for_linf():
    assert figures.eps_label(8 / 255, "Linf") == "8/255"
    assert figures.eps_label(0.1, "Linf") == "0.1 ≈ 25.5/255"
    assert figures.eps_label(0.5, "L2") == "0.5" and figures.eps_label(0.0, "Linf") == "0"


def test_surface_is_sparsity_by_eps_in_percent(frame):
    fig = figures.surface_3d(frame, "t")
    surface = fig.data[0]
    assert len(surface.z) == 3 and len(surface.z[0]) == 3
    assert surface.z[0][0] == pytest.approx(90.0) and list(surface.x)[1] == pytest.approx(8 / 255)
    assert list(fig.layout.scene.xaxis.ticktext)[1] == "8/255"
    assert fig.layout.scene.zaxis.range == (0, 100)


def test_heatmap_annotates_every_cell(frame):
    fig = figures.surface_heatmap(frame)
    assert fig.data[0].texttemplate == "%{text}" and len(fig.data[0].text) == 3
    assert "L∞" in fig.layout.xaxis.title.text


def test_slice_at_eps_shows_clean_and_robust(frame):
    fig = figures.slice_at_eps(frame, 0.1)
    clean, robust = fig.data
    assert list(clean.y) == pytest.approx([90.0, 88.0, 70.0])
    assert list(robust.y) == pytest.approx([36.0, 35.2, 28.0])


def test_slice_at_sparsity_draws_one_curve_per_step(frame):
    fig = figures.slice_at_sparsity(frame, [0, 2])
    assert len(fig.data) == 2 and "90.0% sparse" in fig.data[1].name


@pytest.mark.parametrize("builder", [figures.surface_3d, figures.surface_heatmap])
def test_empty_frames_give_a_message_not_an_error(builder):
    fig = builder(pd.DataFrame(columns=["step", "sparsity", "clean_acc", "eps", "acc", "norm"]))
    assert fig.layout.annotations[0].text == "no results yet"


def test_adversarial_share_runs_from_clean_to_robust(frame):
    fig = figures.adversarial_share_lines(frame, 0.1)
    assert len(fig.data) == 3
    first = fig.data[0]
    assert first.y[0] == pytest.approx(90.0) and first.y[-1] == pytest.approx(36.0)


def budget_rows() -> pd.DataFrame:
    rows = []
    for run_id, norm, base in (("ap-run", "Linf", 0.1), ("bap-run", "RMS-L2", 0.05)):
        for step in (1, 2, 3):
            spread = 0.0 if norm == "Linf" else 0.01 * step
            row: dict[str, Any] = {
                "run_id": run_id,
                "step": step,
                "sparsity": 0.3 * step,
                "clean_acc": 0.8,
                "norm": norm,
                "cutoff": base,
                "budget_mean": base,
            }
            row.update({f"budget_q{q}": base - spread + 2 * spread * q / 100 for q in (10, 25, 50, 75, 90)})
            row.update({f"distance_q{q}": (base * 2 if norm == "RMS-L2" else None) for q in (10, 25, 50, 75, 90)})
            rows.append(row)
    return pd.DataFrame(rows)


def test_budget_trajectory_puts_each_run_in_its_own_panel():
    fig = figures.budget_trajectory(budget_rows(), {"ap-run": "AP ε=0.1", "bap-run": "BAP"})
    assert [a.text for a in fig.layout.annotations] == ["AP ε=0.1", "BAP"]
    medians = [t for t in fig.data if t.name == "median budget"]
    assert len(medians) == 2 and list(medians[1].y) == pytest.approx([0.05, 0.05, 0.05])
    assert fig.layout.yaxis.title.text.startswith("L∞") and fig.layout.yaxis2.title.text.startswith("budget (RMS")
    assert [t.xaxis for t in fig.data if t.name == "median DeepFool distance"] == ["x2"]
    assert "no budget" in figures.budget_trajectory(pd.DataFrame()).layout.annotations[0].text


def layer_rows() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "step": step,
                "step_sparsity": step * 0.4,
                "layer": layer,
                "sparsity": step * 0.4,
                "mrs": mrs * (1 + step),
                "ratio": None if step == 0 else step * 0.4,
            }
            for step in (0, 1, 2)
            for layer, mrs in (("conv1", 0.5), ("conv2", 0.1), ("fc", 0.02))
        ]
    )


def test_layer_heatmap_is_layers_by_steps_in_model_order():
    fig = figures.layer_heatmap(layer_rows(), "mrs")
    heat = fig.data[0]
    assert list(heat.y) == ["conv1", "conv2", "fc"] and list(heat.x) == ["0<br>0%", "1<br>40%", "2<br>80%"]
    assert heat.z[0][2] == pytest.approx(1.5)
    sparsity = figures.layer_heatmap(layer_rows(), "sparsity").data[0]
    assert sparsity.z[1][1] == pytest.approx(40.0) and sparsity.zmax == 100
    assert "eval.mrs" in figures.layer_heatmap(layer_rows().assign(mrs=None), "mrs").layout.annotations[0].text


def layer_rows_of_a_magnitude_run() -> pd.DataFrame:
    rows = layer_rows().drop(columns="ratio").assign(numel=[100, 1000, 10_000] * 3, prunable=1)
    return rows.assign(sparsity=rows["step_sparsity"] * ([0.5, 0.8, 1.02] * 3))


def test_mrpf_rule_is_applied_to_the_mrs_before_each_step_and_the_uniform_share_drawn_beside():
    from engine.report.ratios import RULE_CAP, ratios_from_sensitivity, sensitivity_sentence, with_mrpf_rule

    frame = with_mrpf_rule(layer_rows_of_a_magnitude_run())
    before = frame[frame["step"] == 0]
    expected = ratios_from_sensitivity(
        dict(zip(before["layer"], before["mrs"])), dict(zip(before["layer"], before["numel"])), 0.4, p_max=RULE_CAP
    )
    step1 = frame[frame["step"] == 1].set_index("layer")
    assert step1["mrpf_rule"].to_dict() == pytest.approx(expected) and (step1["uniform"] == 0.4).all()
    assert step1.loc["conv1", "mrpf_rule"] < step1.loc["fc", "mrpf_rule"]  # conv1 is the most sensitive
    assert frame.loc[frame["step"] == 0, "mrpf_rule"].isna().all()
    sentence = sensitivity_sentence(frame, 1)
    assert "**conv1** (MRS 0.5)" in sentence and "against 40.0 %" in sentence and "cap" not in sentence
    assert "cap per layer binds" in sensitivity_sentence(with_mrpf_rule(frame.assign(step_sparsity=0.99)), 1)
    fig = figures.ratios_bars(frame, 1)
    names = [t.name for t in fig.data]
    assert names == ["achieved sparsity", "MRPF's rule (from the MRS before this step)", "uniform (every layer alike)"]
    assert list(fig.data[2].y) == pytest.approx([40.0] * 3)
    assert sensitivity_sentence(with_mrpf_rule(frame.assign(mrs=None)), 1) is None


def test_ratio_bars_show_ratio_beside_achieved_sparsity():
    fig = figures.ratios_bars(layer_rows(), 2)
    assert [t.name for t in fig.data] == ["achieved sparsity", "MRPF ratio"]
    assert list(fig.data[1].y) == pytest.approx([80.0, 80.0, 80.0])
    assert [t.name for t in figures.ratios_bars(layer_rows(), 0).data] == ["achieved sparsity"]


def test_runs_at_eps_draws_one_line_per_run(frame):
    both = pd.concat([frame, frame.assign(run_id="s", acc=frame["acc"] / 2)])
    fig = figures.runs_at_eps(both, 0.1, {"r": "first"})
    assert [t.name for t in fig.data] == ["first", "s"]
    assert list(fig.data[1].y) == pytest.approx([x / 2 for x in fig.data[0].y])


def test_difference_heatmap_is_centred_on_zero_in_points():
    diff = pd.DataFrame({0.0: [0.0, 0.02], 0.1: [-0.05, 0.1]}, index=pd.Index([0.0, 0.5], name="sparsity"))
    heat = figures.difference_heatmap(diff, "Linf").data[0]
    assert heat.zmid == 0 and heat.zmax == pytest.approx(10.0) and heat.zmin == pytest.approx(-10.0)
    assert list(heat.y) == [0.0, 50.0] and list(heat.x) == ["0", "0.1 ≈ 25.5/255"]
    assert "no sparsity" in figures.difference_heatmap(pd.DataFrame(), "Linf").layout.annotations[0].text


def test_pareto_scatter_joins_the_front(frame):
    at_eps = frame[frame["eps"] == 0.1].assign(latency_ms_b128=[3.0, 2.0, 1.0])
    fig = figures.pareto_scatter(at_eps, "latency", 0.1)
    front = fig.data[-1]
    assert front.name == "Pareto front" and len(front.x) == 3  # faster and less accurate: all unbeaten
    assert "no flops" in figures.pareto_scatter(at_eps, "flops", 0.1).layout.annotations[0].text
    blanked = at_eps.assign(latency_ms_b128=[3.0, None, 1.0])  # one latency too noisy to be a number
    fig = figures.pareto_scatter(blanked, "latency", 0.1)
    assert sum(len(trace.x) for trace in fig.data[:-1]) == 2 and "1 checkpoint(s)" in fig.layout.annotations[0].text


def test_playground_grid_amplifies_the_largest_change_to_full_contrast():
    import numpy as np

    from engine.science.playground import Example

    clean = np.full((4, 4), 0.5)
    delta = np.zeros((4, 4))
    delta[0, 0] = 0.05
    example = Example(3, 1, clean, clean + delta, delta, [(2, 0.9)], [(1, 0.8)], [(1, 0.7)])
    fig = figures.playground_grid([example], ("a", "b", "c"))
    assert [a.text for a in fig.layout.annotations] == ["#3: b", "perturbation ×10", "pruned sees c ✗"]
    assert fig.data[1].z[0][0][0] == 255 and fig.data[1].z[1][1][0] == 127


@pytest.fixture
def measured(frame) -> pd.DataFrame:
    """The frame as the store returns it: n = 500 images and Wilson bounds for every accuracy."""
    from engine.report.stats import intervals

    frame = frame.assign(n=500)
    frame["ci_low"], frame["ci_high"] = intervals(frame["acc"], frame["n"])
    frame["clean_low"], frame["clean_high"] = intervals(frame["clean_acc"], frame["n"])
    return frame


def _bands(fig) -> list:
    return [trace for trace in fig.data if getattr(trace, "fill", None) == "toself"]


def test_every_accuracy_line_has_its_interval_band(measured):
    assert len(_bands(figures.slice_at_eps(measured, 0.1))) == 2  # clean and robust
    assert len(_bands(figures.slice_at_sparsity(measured, [0, 2]))) == 2
    band = _bands(figures.runs_at_eps(measured, 0.1))[0]
    at = measured[measured["eps"] == 0.1].sort_values("sparsity")
    assert max(band.y) == pytest.approx(at["ci_high"].max() * 100) and min(band.y) == pytest.approx(
        at["ci_low"].min() * 100
    )


def test_results_without_n_draw_no_band_and_no_missing_values(frame):
    fig = figures.slice_at_eps(frame, 0.1)
    assert not _bands(fig) and all(None not in list(trace.y) for trace in fig.data)


def test_heat_map_and_surface_hover_carry_the_interval(measured):
    heat = figures.surface_heatmap(measured)
    assert heat.data[0].customdata[0][1].startswith("95 % CI ") and "%{customdata}" in heat.data[0].hovertemplate
    surface = figures.surface_3d(measured)
    assert surface.data[0].customdata[2][1][1].startswith("95 % CI ")


def test_the_difference_map_greys_differences_inside_the_noise_and_keeps_real_ones():
    from engine.report.summaries import difference_grid, difference_noise

    def run(name, accs):
        return pd.DataFrame(
            {"run_id": name, "sparsity": [0.0, 0.5, 0.9] * 2, "eps": [0.0] * 3 + [0.1] * 3, "acc": accs, "n": 500}
        )

    first = run("a", [0.9, 0.9, 0.9, 0.5, 0.5, 0.5])
    second = run("b", [0.9, 0.91, 0.9, 0.5, 0.5, 0.2])  # +1 pt: noise on 500 images; −30 pt: real
    noise = difference_noise(first, second, points=3)
    assert noise.iloc[1, 0] and not noise.iloc[2, 1]  # sparsity 45 %: +0.9 pt at ε 0; 90 %: −30 pt at ε 0.1
    fig = figures.difference_heatmap(difference_grid(first, second, points=3), "Linf", noise=noise)
    grey = fig.data[1]
    assert grey.z[1][0] == 1.0 and grey.z[2][1] is None  # the noise greyed, the real gap left in colour
    assert "inside the noise" in fig.data[0].customdata[1][0]
    assert difference_noise(first.drop(columns="n"), second, points=3).empty  # no n kept: nothing claimed


def test_transfer_and_paper_figures_show_intervals(measured):
    from engine.report.paper_figures import compression_panels, strength_curves, variant_bars

    transfer = figures.transfer_vs_white_box(measured, measured, 0.1)
    assert len(_bands(transfer)) == 3  # clean, transfer, white-box
    tagged = measured.assign(variant="v", target_sparsity=measured["sparsity"])
    for fig in (strength_curves(tagged), compression_panels(tagged), variant_bars(tagged, 0.1)):
        bars = [trace.error_y for trace in fig.data if trace.error_y and trace.error_y.array is not None]
        assert bars and all(min(bar.array) >= 0 and min(bar.arrayminus) >= 0 for bar in bars)
    assert figures.error_bars(tagged.drop(columns=["ci_low", "ci_high"])) is None


def test_certified_vs_empirical_draws_certificates_dashed_beside_the_l2_attacks():
    rows = []
    for attack, accs, abstained in (("smoothing", [0.8, 0.6, 0.3], 12), ("smooth_pgd_l2", [0.82, 0.7, 0.5], None)):
        for eps, acc in zip([0.0, 0.25, 0.5], accs):
            rows.append(
                {"run_id": "r", "step": 1, "sparsity": 0.9, "clean_acc": 0.85, "attack": attack, "norm": "L2"}
                | {"eps": eps, "acc": acc, "ci_low": acc - 0.04, "ci_high": acc + 0.04, "abstained": abstained}
            )
    rows.append(rows[0] | {"attack": "pgd_linf", "norm": "Linf", "abstained": None})  # another norm: left out
    fig = figures.certified_vs_empirical(pd.DataFrame(rows), 1)
    lines = {t.name: t for t in fig.data if t.name and "(" in t.name}
    assert set(lines) == {"smoothing (certified)", "smooth_pgd_l2 (attacked)"}
    assert lines["smoothing (certified)"].line.dash == "dash" and lines["smooth_pgd_l2 (attacked)"].line.dash == "solid"
    assert list(lines["smoothing (certified)"].y) == [80.0, 60.0, 30.0]
    assert "no L2 curves" in figures.certified_vs_empirical(pd.DataFrame(rows), 7).layout.annotations[0].text
