"""Each seed paper's figure, redrawn from our store: pure builders, tidy frames in, plotly figures out.

The frames are the robust / transfer / budget tables of engine.papers.results.PaperResults: one row per
variant × step × attack × ε with `variant`, `step`, `sparsity`, `target_sparsity`, `clean_acc`,
`attack`, `norm`, `eps`, `acc`. Each paper's check composes its figures from these (engine/papers/checks/).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from engine.report.figures import (
    OKABE_ITO,
    _empty,
    _robust_vs_sparsity_layout,
    eps_axis_title,
    eps_label,
    error_bars,
    norm_of,
)


def variants(frame: pd.DataFrame) -> list[str]:
    """The variants of a frame, in their order of appearance."""
    return list(dict.fromkeys(frame["variant"]))


def _pruned_by_variant(frame: pd.DataFrame, eps: float) -> list[tuple[int, str, pd.DataFrame]]:
    """(index, variant, rows) of the pruned checkpoints at strength ε, rows by target sparsity."""
    part = frame[np.isclose(frame["eps"], eps) & (frame["target_sparsity"] > 0)]
    return [(i, v, part[part["variant"] == v].sort_values("target_sparsity")) for i, v in enumerate(variants(part))]


def _finish_panels(fig: go.Figure, title: str, y_title: str, legend_y: float) -> go.Figure:
    """Shared y axis (0–100 %), title and a horizontal legend under side-by-side panels."""
    fig.update_yaxes(title_text=y_title, range=[0, 100], row=1, col=1)
    fig.update_layout(title=title, height=420, legend=dict(orientation="h", y=legend_y), margin=dict(t=70))
    return fig


def strength_curves(frame: pd.DataFrame, title: str = "") -> go.Figure:
    """BAP's robustness curves: accuracy vs attack strength, one panel per variant, one curve per checkpoint
    (per run and step: with one run per final sparsity, pass each run's last checkpoint)."""
    if frame.empty:
        return _empty("no results yet")
    names, norm = variants(frame), norm_of(frame)
    fig = make_subplots(rows=1, cols=len(names), shared_yaxes=True, subplot_titles=names)
    sparsities = sorted(frame["sparsity"].round(3).unique())
    colours = dict(zip(sparsities, sample_colorscale("Cividis", np.linspace(0, 0.9, len(sparsities)).tolist())))
    for col, variant in enumerate(names, start=1):
        part = frame[frame["variant"] == variant]
        for _, rows in part.groupby(["run_id", "step"]):
            rows = rows.sort_values("eps")
            sparsity = round(float(rows["sparsity"].iloc[0]), 3)
            fig.add_trace(
                go.Scatter(
                    x=rows["eps"],
                    y=rows["acc"] * 100,
                    mode="lines+markers",
                    name=f"{sparsity:.0%} sparse",
                    legendgroup=str(sparsity),
                    showlegend=col == 1,
                    line_color=colours[sparsity],
                    error_y=error_bars(rows),
                    hovertemplate=f"{variant}<br>sparsity {sparsity:.1%}<br>ε %{{x:.3g}}<br>accuracy "
                    f"%{{y:.1f}} %<extra></extra>",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text=eps_axis_title(norm), row=1, col=col)
    return _finish_panels(fig, title, "accuracy (%)", -0.3)


def kept_fraction_lines(frame: pd.DataFrame, eps: float, title: str = "", measure: str = "PGD") -> go.Figure:
    """HYDRA's figure: robust accuracy at ε against the kept fraction k (log axis, reversed), one line per
    variant; `measure` names the robust line (PGD, certified)."""
    groups = _pruned_by_variant(frame, eps)
    if not groups:
        return _empty("no pruned checkpoints yet")
    fig = go.Figure()
    for i, variant, rows in groups:
        k = 1 - rows["target_sparsity"]
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        fig.add_trace(
            go.Scatter(
                x=k,
                y=rows["acc"] * 100,
                mode="lines+markers",
                name=f"{variant}, {measure}",
                line_color=colour,
                hovertemplate=f"{variant}<br>k = %{{x:.3g}}<br>{measure} %{{y:.1f}} %<extra></extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=k,
                y=rows["clean_acc"] * 100,
                mode="lines+markers",
                name=f"{variant}, clean",
                line=dict(color=colour, dash="dot"),
                hovertemplate=f"{variant}<br>k = %{{x:.3g}}<br>clean %{{y:.1f}} %<extra></extra>",
            )
        )
    fig.update_xaxes(
        type="log", autorange="reversed", title_text="kept fraction k (log scale; right = more compression)"
    )
    fig.update_layout(
        title=title or f"Accuracy at ε = {eps_label(eps, norm_of(frame))} against the kept fraction",
        yaxis_title="accuracy (%)",
        yaxis_range=[0, 100],
        height=420,
        legend=dict(orientation="h", y=-0.3),
    )
    return fig


def compression_panels(frame: pd.DataFrame, title: str = "") -> go.Figure:
    """The figure of Pruning in the Face of Adversaries: accuracy vs compression rate (log 2 axis),
    one panel per ε > 0 of one attack, one curve per method."""
    attacked = frame[frame["eps"] > 0]
    if attacked.empty:
        return _empty("no results yet")
    eps_values, norm = sorted(attacked["eps"].unique()), norm_of(frame)
    fig = make_subplots(
        rows=1,
        cols=len(eps_values),
        shared_yaxes=True,
        subplot_titles=[f"ε = {eps_label(e, norm)}" for e in eps_values],
    )
    for col, eps in enumerate(eps_values, start=1):
        for i, variant in enumerate(variants(attacked)):
            rows = attacked[(attacked["variant"] == variant) & np.isclose(attacked["eps"], eps)].sort_values("step")
            compression = 1 / (1 - rows["target_sparsity"])
            fig.add_trace(
                go.Scatter(
                    x=compression,
                    y=rows["acc"] * 100,
                    mode="lines+markers",
                    name=variant,
                    legendgroup=variant,
                    showlegend=col == 1,
                    line_color=OKABE_ITO[i % len(OKABE_ITO)],
                    error_y=error_bars(rows),
                    hovertemplate=f"{variant}<br>%{{x:.0f}}× compression<br>robust %{{y:.1f}} %<extra></extra>",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(type="log", dtick=np.log10(2), tickformat=".0f", title_text="compression (×)", row=1, col=col)
    return _finish_panels(fig, title, "robust accuracy (%)", -0.35)


def variant_bars(frame: pd.DataFrame, eps: float, title: str = "") -> go.Figure:
    """Robust accuracy at ε per target sparsity, one bar per variant (MRPF vs uniform ratios)."""
    groups = _pruned_by_variant(frame, eps)
    if not groups:
        return _empty("no pruned checkpoints yet")
    fig = go.Figure()
    for i, variant, rows in groups:
        fig.add_trace(
            go.Bar(
                x=[f"{t:.0%}" for t in rows["target_sparsity"]],
                y=rows["acc"] * 100,
                name=variant,
                marker_color=OKABE_ITO[i % len(OKABE_ITO)],
                error_y=error_bars(rows),
                customdata=rows["clean_acc"] * 100,
                hovertemplate=f"{variant}<br>robust %{{y:.1f}} %<br>clean %{{customdata:.1f}} %<extra></extra>",
            )
        )
    fig.update_layout(barmode="group")
    return _robust_vs_sparsity_layout(
        fig,
        title or f"Robust accuracy at ε = {eps_label(eps, norm_of(frame))}",
        "target sparsity (share of conv weights pruned)",
        -0.3,
    )


def size_lines(frame: pd.DataFrame, sizes: pd.DataFrame, eps: float, title: str = "") -> go.Figure:
    """Robust accuracy at ε against the model's size (parameters of the physically smaller model, else
    effective parameters), one line per variant: MRPF's claim, read at equal size."""
    sizes = sizes.assign(size=sizes["shrunk_params"].fillna(sizes["effective_params"])) if not sizes.empty else sizes
    part = frame[np.isclose(frame["eps"], eps)] if not frame.empty else frame
    if part.empty or sizes.empty:
        return _empty("no sizes measured yet")
    part = part.merge(sizes[["run_id", "step", "size"]], on=["run_id", "step"], how="inner")
    fig = go.Figure()
    for i, variant in enumerate(variants(part)):
        rows = part[part["variant"] == variant].sort_values("size")
        fig.add_trace(
            go.Scatter(
                x=rows["size"],
                y=rows["acc"] * 100,
                mode="lines+markers",
                name=variant,
                line_color=OKABE_ITO[i % len(OKABE_ITO)],
                error_y=error_bars(rows),
                customdata=rows["target_sparsity"] * 100,
                hovertemplate=f"{variant}<br>%{{x:,.0f}} parameters (target %{{customdata:.0f}} %)<br>"
                "robust %{y:.1f} %<extra></extra>",
            )
        )
    return _robust_vs_sparsity_layout(
        fig,
        title or f"Robust accuracy at ε = {eps_label(eps, norm_of(frame))} against the model's real size",
        "parameters of the physically smaller model",
        -0.3,
    )


def one_attack(frame: pd.DataFrame, attack: str) -> pd.DataFrame:
    """The rows of one attack (an empty frame stays empty)."""
    return frame[frame["attack"] == attack] if not frame.empty else frame


def no_results() -> go.Figure:
    """The figure a paper shows before any of its runs has finished."""
    return _empty("no results yet")
