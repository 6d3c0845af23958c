"""Pure figure builders: a tidy DataFrame in, a plotly Figure out (no Streamlit, no store, no torch).

The robust frame has one row per step × ε with columns `step`, `sparsity`, `clean_acc`, `eps`,
`acc` and `norm` (one run, one attack). Accuracies are fractions in the frame and shown as %.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

# Okabe–Ito: distinguishable under the common colour-vision deficiencies.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
SEQUENTIAL = "Cividis"  # perceptually uniform and colour-blind safe


def eps_label(eps: float, norm: str) -> str:
    """ε as people write it: L∞ budgets as k/255 (8/255, or 0.1 ≈ 25.5/255), others as numbers."""
    if norm == "Linf" and eps > 0:
        k = eps * 255
        if abs(k - round(k)) < 1e-6:
            return f"{round(k)}/255"
        return f"{eps:g} ≈ {k:.3g}/255"
    return f"{eps:g}"


def eps_axis_title(norm: str) -> str:
    """Axis title naming the threat model and the unit of ε."""
    return {"Linf": "ε (L∞, pixel scale [0, 1])", "L2": "ε (L2 norm)", "L0": "ε (pixels changed)"}.get(norm, "ε")


def _grid(frame: pd.DataFrame) -> pd.DataFrame:
    """Robust accuracy in %, one row per sparsity (ascending), one column per ε."""
    grid = frame.pivot_table(index="sparsity", columns="eps", values="acc", aggfunc="mean")
    return grid.sort_index().sort_index(axis=1) * 100


def norm_of(frame: pd.DataFrame) -> str:
    """The threat model (norm) of a robust frame; L∞ when the frame is empty."""
    return str(frame["norm"].iloc[0]) if len(frame) else "Linf"


def _empty(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(xaxis_visible=False, yaxis_visible=False, height=300)
    return fig


def surface_3d(frame: pd.DataFrame, title: str = "") -> go.Figure:
    """Robust accuracy over sparsity × ε as a 3-D surface."""
    if frame.empty:
        return _empty("no results yet")
    grid, norm = _grid(frame), norm_of(frame)
    eps_values = list(grid.columns)
    labels = [eps_label(e, norm) for e in eps_values]
    fig = go.Figure(go.Surface(
        x=eps_values, y=grid.index * 100, z=grid.values,
        colorscale=SEQUENTIAL, cmin=0, cmax=100, colorbar_title="robust acc. (%)",
        customdata=[labels] * len(grid.index),
        hovertemplate="ε %{customdata}<br>sparsity %{y:.1f}%<br>robust accuracy %{z:.1f}%<extra></extra>",
    ))
    fig.update_layout(
        title=title, height=560, margin=dict(l=0, r=0, t=40, b=0),
        scene=dict(xaxis=dict(title=eps_axis_title(norm), tickvals=eps_values, ticktext=labels),
                   yaxis_title="sparsity (%)", zaxis_title="robust accuracy (%)", zaxis_range=[0, 100]),
    )
    return fig


def surface_heatmap(frame: pd.DataFrame, title: str = "", spots: pd.DataFrame | None = None) -> go.Figure:
    """Robust accuracy over sparsity × ε as an annotated heat map; sweet spots marked with ★."""
    if frame.empty:
        return _empty("no results yet")
    grid, norm = _grid(frame), norm_of(frame)
    marked = set() if spots is None else set(zip(spots["sparsity"], spots["eps"]))
    text = [[f"{grid.iloc[i, j]:.1f}" + (" ★" if (s, e) in marked else "") for j, e in enumerate(grid.columns)]
            for i, s in enumerate(grid.index)]
    fig = go.Figure(go.Heatmap(
        x=[eps_label(e, norm) for e in grid.columns], y=[f"{s:.1%}" for s in grid.index], z=grid.values,
        colorscale=SEQUENTIAL, zmin=0, zmax=100, colorbar_title="robust acc. (%)",
        text=text, texttemplate="%{text}",
        hovertemplate="ε %{x}<br>sparsity %{y}<br>robust accuracy %{z:.1f}%<extra></extra>",
    ))
    fig.update_layout(title=title, height=460, xaxis_title=eps_axis_title(norm), yaxis_title="sparsity",
                      xaxis_type="category", yaxis_type="category")
    return fig


def slice_at_eps(frame: pd.DataFrame, eps: float, title: str = "") -> go.Figure:
    """Robust accuracy (and clean accuracy) against sparsity at one ε."""
    if frame.empty:
        return _empty("no results yet")
    norm = norm_of(frame)
    at = frame[frame["eps"] == eps].sort_values("sparsity")
    clean = frame.drop_duplicates("step").sort_values("sparsity")
    fig = go.Figure([
        go.Scatter(x=clean["sparsity"] * 100, y=clean["clean_acc"] * 100, name="clean", mode="lines+markers",
                   line=dict(color=OKABE_ITO[7], dash="dash")),
        go.Scatter(x=at["sparsity"] * 100, y=at["acc"] * 100, name=f"ε = {eps_label(eps, norm)}",
                   mode="lines+markers", line=dict(color=OKABE_ITO[0])),
    ])
    fig.update_layout(title=title, height=420, xaxis_title="sparsity (%)", yaxis_title="accuracy (%)",
                      yaxis_range=[0, 100], hovermode="x unified")
    return fig


def slice_at_sparsity(frame: pd.DataFrame, steps: list[int], title: str = "") -> go.Figure:
    """Robust accuracy against ε (the security curve) for the chosen checkpoints."""
    if frame.empty:
        return _empty("no results yet")
    norm = norm_of(frame)
    fig = go.Figure()
    for i, step in enumerate(steps):
        curve = frame[frame["step"] == step].sort_values("eps")
        if curve.empty:
            continue
        fig.add_trace(go.Scatter(
            x=curve["eps"], y=curve["acc"] * 100, mode="lines+markers",
            name=f"step {step} · {curve['sparsity'].iloc[0]:.1%} sparse",
            line=dict(color=OKABE_ITO[i % len(OKABE_ITO)]),
            customdata=[eps_label(e, norm) for e in curve["eps"]],
            hovertemplate="ε %{customdata}<br>robust accuracy %{y:.1f}%<extra></extra>",
        ))
    eps_values = sorted(frame["eps"].unique())
    fig.update_layout(title=title, height=420, xaxis_title=eps_axis_title(norm), yaxis_title="robust accuracy (%)",
                      yaxis_range=[0, 100],
                      xaxis=dict(tickvals=eps_values, ticktext=[eps_label(e, norm) for e in eps_values]))
    return fig


def transfer_vs_white_box(white: pd.DataFrame, transfer: pd.DataFrame, eps: float, title: str = "") -> go.Figure:
    """Accuracy over sparsity at one ε: attacked directly (white-box) vs attacked with the base's examples."""
    if white.empty or transfer.empty:
        return _empty("no transfer results yet")
    norm = norm_of(white)
    clean = white.drop_duplicates("step").sort_values("sparsity")
    traces = [go.Scatter(x=clean["sparsity"] * 100, y=clean["clean_acc"] * 100, name="clean", mode="lines+markers",
                         line=dict(color=OKABE_ITO[7], dash="dash"))]
    for i, (name, frame) in enumerate((("transfer from the base", transfer), ("white-box", white))):
        at = frame[frame["eps"] == eps].sort_values("sparsity")
        traces.append(go.Scatter(x=at["sparsity"] * 100, y=at["acc"] * 100, name=f"{name}, ε = {eps_label(eps, norm)}",
                                 mode="lines+markers", line=dict(color=OKABE_ITO[i + 1])))
    fig = go.Figure(traces)
    fig.update_layout(title=title, height=440, xaxis_title="sparsity (%)", yaxis_title="accuracy (%)",
                      yaxis_range=[0, 100], hovermode="x unified")
    return fig


def adversarial_share_lines(frame: pd.DataFrame, eps: float, title: str = "") -> go.Figure:
    """Accuracy when a share r of inputs is adversarial at ε, (1 − r)·clean + r·robust, one line per checkpoint.

    The "additional assumptions" scenario of Merkle et al. (arXiv:2108.08560): the best sparsity can
    change with r, where lines cross.
    """
    if frame.empty:
        return _empty("no results yet")
    share = [i / 20 for i in range(21)]
    fig = go.Figure()
    at = frame[frame["eps"] == eps].sort_values("sparsity")
    for i, row in enumerate(at.itertuples()):
        mix = [(1 - r) * row.clean_acc * 100 + r * row.acc * 100 for r in share]
        fig.add_trace(go.Scatter(x=share, y=mix, mode="lines", name=f"{row.sparsity:.1%} sparse",
                                 line=dict(color=OKABE_ITO[i % len(OKABE_ITO)])))
    fig.update_layout(title=title, height=420, yaxis_range=[0, 100], yaxis_title="accuracy (%)",
                      xaxis_title=f"share r of inputs attacked at ε = {eps_label(eps, norm_of(frame))}",
                      hovermode="x unified")
    return fig
