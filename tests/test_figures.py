"""Figure builders on small hand-made frames: pure functions, no browser."""

import pandas as pd
import pytest

from engine import figures


@pytest.fixture
def frame() -> pd.DataFrame:
    rows = []
    for step, sparsity, clean in ((0, 0.0, 0.9), (1, 0.5, 0.88), (2, 0.9, 0.7)):
        for eps, drop in ((0.0, 0.0), (8 / 255, 0.3), (0.1, 0.6)):
            rows.append({"run_id": "r", "step": step, "sparsity": sparsity, "clean_acc": clean, "attack": "pgd_linf",
                         "norm": "Linf", "eps": eps, "acc": clean - drop * clean})
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

