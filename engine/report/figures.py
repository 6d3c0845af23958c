"""Pure figure builders: a tidy DataFrame in, a plotly Figure out (no Streamlit, no store, no torch).

The robust frame has one row per step × ε with columns `step`, `sparsity`, `clean_acc`, `eps`,
`acc` and `norm` (one run, one attack). Accuracies are fractions in the frame and shown as %.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.report import tables
from engine.report.summaries import pareto_front
from engine.status import Decision

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
    return {
        "Linf": "ε (L∞, pixel scale [0, 1])",
        "L2": "ε (L2 norm)",
        "L1": "ε (L1 norm)",
        "L0": "ε (pixels changed)",
    }.get(norm, "ε")


def _grid(frame: pd.DataFrame) -> pd.DataFrame:
    """Robust accuracy in %, one row per sparsity (ascending), one column per ε."""
    grid = frame.pivot_table(index="sparsity", columns="eps", values="acc", aggfunc="mean")
    return grid.sort_index().sort_index(axis=1) * 100


def interval_band(x: list, low: pd.Series, high: pd.Series, colour: str, group: str) -> go.Scatter | None:
    """The shaded 95 % interval around a line (x in plot units, bounds as fractions, shown in %); None
    where the bounds are unknown (results kept before n was stored), so nothing missing is drawn."""
    known = list(low.notna() & high.notna())
    if not any(known):
        return None
    xs = [v for v, ok in zip(x, known) if ok]
    lows, highs = list(low[low.notna() & high.notna()] * 100), list(high[low.notna() & high.notna()] * 100)
    return go.Scatter(
        x=xs + xs[::-1],
        y=highs + lows[::-1],
        fill="toself",
        fillcolor=colour,
        opacity=0.18,
        line_width=0,
        name=f"{group}: 95 % interval",
        legendgroup=group,
        showlegend=False,
        hoverinfo="skip",
    )


def _add_with_band(
    fig: go.Figure, line: go.Scatter, rows: pd.DataFrame, low: str, high: str, colour: str, group: str
) -> None:
    """A line and, beneath it, the interval band of its rows (when they carry bounds)."""
    if low in rows and high in rows:
        band = interval_band(list(line.x), rows[low], rows[high], colour, group)
        if band is not None:
            fig.add_trace(band)
    fig.add_trace(line.update(legendgroup=group))


def error_bars(rows: pd.DataFrame, value: str = "acc", low: str = "ci_low", high: str = "ci_high") -> dict | None:
    """Plotly `error_y` of each accuracy's 95 % interval (in points), for bars and small multiples where
    a shaded band would crowd; None where the rows carry no bounds."""
    if low not in rows or high not in rows or rows[low].isna().all():
        return None
    above = ((rows[high] - rows[value]) * 100).fillna(0.0).tolist()
    below = ((rows[value] - rows[low]) * 100).fillna(0.0).tolist()
    return dict(type="data", symmetric=False, array=above, arrayminus=below, thickness=1, width=2)


def _with_clean_line(fig: go.Figure, frame: pd.DataFrame) -> go.Figure:
    """Clean accuracy against sparsity (dashed, with its interval band), one point per checkpoint."""
    clean = frame.drop_duplicates("step").sort_values("sparsity")
    line = go.Scatter(
        x=clean["sparsity"] * 100,
        y=clean["clean_acc"] * 100,
        name="clean",
        mode="lines+markers",
        line=dict(color=OKABE_ITO[7], dash="dash"),
    )
    _add_with_band(fig, line, clean, "clean_low", "clean_high", OKABE_ITO[7], "clean")
    return fig


def interval_text(low: float, high: float) -> str:
    """'95 % CI 52.1–60.3 %', or '' where the bounds are unknown."""
    bounds = tables.interval_text(low, high)
    return f"95 % CI {bounds}" if bounds else ""


def _interval_grid(frame: pd.DataFrame) -> pd.DataFrame:
    """The interval text of every sparsity × ε cell, aligned with `_grid`."""
    if "ci_low" not in frame:
        return _grid(frame).map(lambda _: "")
    cells = frame.assign(interval=[interval_text(lo, hi) for lo, hi in zip(frame["ci_low"], frame["ci_high"])])
    grid = cells.pivot_table(index="sparsity", columns="eps", values="interval", aggfunc="first")
    return grid.sort_index().sort_index(axis=1).fillna("")


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
    fig = go.Figure(
        go.Surface(
            x=eps_values,
            y=grid.index * 100,
            z=grid.values,
            colorscale=SEQUENTIAL,
            cmin=0,
            cmax=100,
            colorbar_title="robust acc. (%)",
            customdata=[[[label, text] for label, text in zip(labels, row)] for row in _interval_grid(frame).values],
            hovertemplate="ε %{customdata[0]}<br>sparsity %{y:.1f}%<br>robust accuracy %{z:.1f}%"
            "<br>%{customdata[1]}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        height=560,
        margin=dict(l=0, r=0, t=40, b=0),
        scene=dict(
            xaxis=dict(title=eps_axis_title(norm), tickvals=eps_values, ticktext=labels),
            yaxis_title="sparsity (%)",
            zaxis_title="robust accuracy (%)",
            zaxis_range=[0, 100],
        ),
    )
    return fig


MARKS = {Decision.HOLDS: " ★", Decision.INCONCLUSIVE: " ☆"}
"""A sweet spot's mark on the heat map by its verdict."""


def surface_heatmap(frame: pd.DataFrame, title: str = "", spots: pd.DataFrame | None = None) -> go.Figure:
    """Robust accuracy over sparsity × ε as an annotated heat map; sweet spots (summaries.sweet_spots)
    marked ★ where they hold and ☆ where the images cannot tell."""
    if frame.empty:
        return _empty("no results yet")
    grid, norm = _grid(frame), norm_of(frame)
    marks = (
        {}
        if spots is None
        else {(s, e): MARKS[v] for s, e, v in zip(spots["sparsity"], spots["eps"], spots["verdict"])}
    )
    text = [
        [f"{grid.iloc[i, j]:.1f}" + marks.get((s, e), "") for j, e in enumerate(grid.columns)]
        for i, s in enumerate(grid.index)
    ]
    fig = go.Figure(
        go.Heatmap(
            x=[eps_label(e, norm) for e in grid.columns],
            y=[f"{s:.1%}" for s in grid.index],
            z=grid.values,
            colorscale=SEQUENTIAL,
            zmin=0,
            zmax=100,
            colorbar_title="robust acc. (%)",
            text=text,
            texttemplate="%{text}",
            customdata=_interval_grid(frame).values,
            hovertemplate="ε %{x}<br>sparsity %{y}<br>robust accuracy %{z:.1f}%<br>%{customdata}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        height=460,
        xaxis_title=eps_axis_title(norm),
        yaxis_title="sparsity",
        xaxis_type="category",
        yaxis_type="category",
    )
    return fig


def slice_at_eps(frame: pd.DataFrame, eps: float, title: str = "") -> go.Figure:
    """Robust accuracy (and clean accuracy) against sparsity at one ε."""
    if frame.empty:
        return _empty("no results yet")
    norm = norm_of(frame)
    at = frame[frame["eps"] == eps].sort_values("sparsity")
    fig = _with_clean_line(go.Figure(), frame)
    robust_line = go.Scatter(
        x=at["sparsity"] * 100,
        y=at["acc"] * 100,
        name=f"ε = {eps_label(eps, norm)}",
        mode="lines+markers",
        line=dict(color=OKABE_ITO[0]),
    )
    _add_with_band(fig, robust_line, at, "ci_low", "ci_high", OKABE_ITO[0], "robust")
    fig.update_layout(
        title=title,
        height=420,
        xaxis_title="sparsity (%)",
        yaxis_title="accuracy (%)",
        yaxis_range=[0, 100],
        hovermode="x unified",
    )
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
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        intervals = [interval_text(lo, hi) for lo, hi in zip(curve.get("ci_low", []), curve.get("ci_high", []))]
        line = go.Scatter(
            x=curve["eps"],
            y=curve["acc"] * 100,
            mode="lines+markers",
            name=f"step {step} · {curve['sparsity'].iloc[0]:.1%} sparse",
            line=dict(color=colour),
            customdata=list(zip([eps_label(e, norm) for e in curve["eps"]], intervals or [""] * len(curve))),
            hovertemplate="ε %{customdata[0]}<br>robust accuracy %{y:.1f}% %{customdata[1]}<extra></extra>",
        )
        _add_with_band(fig, line, curve, "ci_low", "ci_high", colour, f"step {step}")
    eps_values = sorted(frame["eps"].unique())
    fig.update_layout(
        title=title,
        height=420,
        xaxis_title=eps_axis_title(norm),
        yaxis_title="robust accuracy (%)",
        yaxis_range=[0, 100],
        xaxis=dict(tickvals=eps_values, ticktext=[eps_label(e, norm) for e in eps_values]),
    )
    return fig


def certified_vs_empirical(frame: pd.DataFrame, step: int, title: str = "") -> go.Figure:
    """At one checkpoint: every L2 curve against the radius, the certificates (lower bounds, dashed) beside
    the attacks (upper bounds, solid), each with its 95 % band. A certified curve above an
    attack on the same smoothed classifier is a warning (see engine.report.summaries.hygiene)."""
    rows = frame[(frame["step"] == step) & (frame["norm"] == "L2")]
    if rows.empty:
        return _empty("no L2 curves at this checkpoint")
    fig = go.Figure()
    certified = set(rows.loc[rows["abstained"].notna(), "attack"]) if "abstained" in rows else set()
    for i, (attack, curve) in enumerate(rows.groupby("attack", sort=True)):
        curve = curve.sort_values("eps")
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        kind = "certified" if attack in certified else "attacked"
        line = go.Scatter(
            x=curve["eps"],
            y=curve["acc"] * 100,
            mode="lines+markers",
            name=f"{attack} ({kind})",
            line=dict(color=colour, dash="dash" if kind == "certified" else "solid"),
            customdata=[interval_text(lo, hi) for lo, hi in zip(curve["ci_low"], curve["ci_high"])],
            hovertemplate=f"radius %{{x:g}}<br>{kind} accuracy %{{y:.1f}}% %{{customdata}}<extra></extra>",
        )
        _add_with_band(fig, line, curve, "ci_low", "ci_high", colour, attack)
    sparsity = rows["sparsity"].iloc[0]
    fig.update_layout(
        title=title or f"step {step} · {sparsity:.1%} sparse: certified (dashed) vs attacked (solid)",
        height=420,
        xaxis_title="L2 radius ε",
        yaxis_title="accuracy (%)",
        yaxis_range=[0, 100],
    )
    return fig


def transfer_vs_white_box(white: pd.DataFrame, transfer: pd.DataFrame, eps: float, title: str = "") -> go.Figure:
    """Accuracy over sparsity at one ε: attacked directly (white-box) vs attacked with the base's examples."""
    if white.empty or transfer.empty:
        return _empty("no transfer results yet")
    norm = norm_of(white)
    fig = _with_clean_line(go.Figure(), white)
    for i, (name, frame) in enumerate((("transfer from the base", transfer), ("white-box", white))):
        at = frame[frame["eps"] == eps].sort_values("sparsity")
        line = go.Scatter(
            x=at["sparsity"] * 100,
            y=at["acc"] * 100,
            name=f"{name}, ε = {eps_label(eps, norm)}",
            mode="lines+markers",
            line=dict(color=OKABE_ITO[i + 1]),
        )
        _add_with_band(fig, line, at, "ci_low", "ci_high", OKABE_ITO[i + 1], name)
    fig.update_layout(
        title=title,
        height=440,
        xaxis_title="sparsity (%)",
        yaxis_title="accuracy (%)",
        yaxis_range=[0, 100],
        hovermode="x unified",
    )
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
        fig.add_trace(
            go.Scatter(
                x=share,
                y=mix,
                mode="lines",
                name=f"{row.sparsity:.1%} sparse",
                line=dict(color=OKABE_ITO[i % len(OKABE_ITO)]),
            )
        )
    fig.update_layout(
        title=title,
        height=420,
        yaxis_range=[0, 100],
        yaxis_title="accuracy (%)",
        xaxis_title=f"share r of inputs attacked at ε = {eps_label(eps, norm_of(frame))}",
        hovermode="x unified",
    )
    return fig


BUDGET_UNITS = {"Linf": "L∞ budget (pixel scale)", "RMS-L2": "budget (RMS-normalised L2, ‖r‖₂/√D)"}


def budget_trajectory(frame: pd.DataFrame, labels: dict[str, str] | None = None) -> go.Figure:
    """Training budgets per pruning step, one panel per run side by side (AP vs BAP).

    Each panel: the 10–90 % and 25–75 % bands of the per-example budgets, their median, and the
    cutoff; the x axis is the pruning step, the step's sparsity in the hover.
    """
    if frame.empty:
        return _empty("no budget trajectories yet: run an ap or bap fine-tuning mode")

    labels = labels or {}
    runs = list(dict.fromkeys(frame["run_id"]))
    fig = make_subplots(
        rows=1, cols=len(runs), shared_yaxes=False, subplot_titles=[labels.get(r, r[:12]) for r in runs]
    )
    for col, run_id in enumerate(runs, start=1):
        part = frame[frame["run_id"] == run_id].sort_values("step")
        _budget_panel(fig, part, col, show_legend=col == 1)
        fig.update_yaxes(
            title_text=BUDGET_UNITS.get(str(part["norm"].iloc[0]), "budget"), rangemode="tozero", row=1, col=col
        )
        fig.update_xaxes(title_text="pruning step", dtick=1, row=1, col=col)
    fig.update_layout(height=420, legend=dict(orientation="h", y=-0.25), margin=dict(t=60))
    return fig


def _band(
    fig: go.Figure, part: pd.DataFrame, low: str, high: str, name: str, opacity: float, col: int, show_legend: bool
) -> None:
    x = list(part["step"]) + list(part["step"])[::-1]
    y = list(part[high]) + list(part[low])[::-1]
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            fill="toself",
            fillcolor=OKABE_ITO[0],
            opacity=opacity,
            line_width=0,
            name=name,
            legendgroup=name,
            showlegend=show_legend,
            hoverinfo="skip",
        ),
        row=1,
        col=col,
    )


def _budget_panel(fig: go.Figure, part: pd.DataFrame, col: int, show_legend: bool) -> None:
    _band(fig, part, "budget_q10", "budget_q90", "budgets 10–90 %", 0.2, col, show_legend)
    _band(fig, part, "budget_q25", "budget_q75", "budgets 25–75 %", 0.35, col, show_legend)
    hover = [f"step {s} · sparsity {sp:.1%}" for s, sp in zip(part["step"], part["sparsity"])]
    fig.add_trace(
        go.Scatter(
            x=part["step"],
            y=part["budget_q50"],
            mode="lines+markers",
            name="median budget",
            legendgroup="median",
            showlegend=show_legend,
            line_color=OKABE_ITO[0],
            text=hover,
            hovertemplate="%{text}<br>median budget %{y:.4f}<extra></extra>",
        ),
        row=1,
        col=col,
    )
    fig.add_trace(
        go.Scatter(
            x=part["step"],
            y=part["cutoff"],
            mode="lines+markers",
            name="cutoff c (batch mean)",
            legendgroup="cutoff",
            showlegend=show_legend,
            line=dict(color=OKABE_ITO[3], dash="dash"),
            text=hover,
            hovertemplate="%{text}<br>cutoff %{y:.4f}<extra></extra>",
        ),
        row=1,
        col=col,
    )
    if "distance_q50" in part and part["distance_q50"].notna().any():
        fig.add_trace(
            go.Scatter(
                x=part["step"],
                y=part["distance_q50"],
                mode="lines",
                name="median DeepFool distance",
                legendgroup="distance",
                showlegend=show_legend,
                line=dict(color=OKABE_ITO[2], dash="dot"),
                text=hover,
                hovertemplate="%{text}<br>median distance %{y:.4f}<extra></extra>",
            ),
            row=1,
            col=col,
        )


def _layer_grid(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    order = list(dict.fromkeys(frame["layer"]))
    grid = frame.pivot_table(index="layer", columns="step", values=value, aggfunc="mean")
    return grid.reindex(order)


LAYER_VALUES = {
    "mrs": "MRS (loss rise)",
    "mrs_reach": "MRS probe's reach (% of the ball)",
    "sparsity": "sparsity (%)",
    "effective_sparsity": "effective sparsity (%)",
}


def layer_heatmap(frame: pd.DataFrame, value: str = "mrs", title: str = "") -> go.Figure:
    """A layer × pruning-step heat map of `mrs` (Module Robustness Sensitivity), `mrs_reach` (how far into
    its ball each probe got), `sparsity` or `effective_sparsity` (weights off every input → output path), %."""
    if value == "effective_sparsity" and "effective_nonzero" in frame:
        frame = frame.assign(effective_sparsity=1 - frame["effective_nonzero"] / frame["numel"])
    if frame.empty or value not in frame or frame[value].isna().all():
        what = "MRS: run a spec with eval.mrs set" if value.startswith("mrs") else "per-layer results yet"
        return _empty(f"no {what}")
    grid = _layer_grid(frame, value)
    scale = 1 if value == "mrs" else 100
    steps = list(grid.columns)
    sparsity = frame.drop_duplicates("step").set_index("step")["step_sparsity"] if "step_sparsity" in frame else None
    ticks = [f"{s}<br>{sparsity[s]:.0%}" if sparsity is not None else str(s) for s in steps]
    colour = LAYER_VALUES[value]
    fig = go.Figure(
        go.Heatmap(
            z=grid.values * scale,
            x=ticks,
            y=list(grid.index),
            colorscale=SEQUENTIAL,
            colorbar_title=colour,
            zmin=0,
            zmax=None if value == "mrs" else 100,
            hovertemplate="layer %{y}<br>step %{x}<br>" + colour + " %{z:.4g}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="pruning step (sparsity)",
        yaxis_title="layer",
        yaxis_autorange="reversed",
        height=120 + 40 * len(grid.index),
    )
    return fig


def ratios_bars(frame: pd.DataFrame, step: int) -> go.Figure:
    """Per-layer pruned share at one step: the sparsity each layer reached beside MRPF's ratios (the
    ones an MRPF run applied, or the ones MRPF's rule gives from the MRS measured before the step,
    engine.report.ratios.with_mrpf_rule) and the uniform share (every layer pruned alike)."""
    part = frame[frame["step"] == step]
    if part.empty:
        return _empty("no layers at this step")
    fig = go.Figure(
        go.Bar(x=part["layer"], y=part["sparsity"] * 100, name="achieved sparsity", marker_color=OKABE_ITO[0])
    )
    if "ratio" in part and part["ratio"].notna().any():
        fig.add_trace(go.Bar(x=part["layer"], y=part["ratio"] * 100, name="MRPF ratio", marker_color=OKABE_ITO[1]))
    elif "mrpf_rule" in part and part["mrpf_rule"].notna().any():
        fig.add_trace(
            go.Bar(
                x=part["layer"],
                y=part["mrpf_rule"] * 100,
                name="MRPF's rule (from the MRS before this step)",
                marker_color=OKABE_ITO[1],
            )
        )
    if "uniform" in part and part["uniform"].notna().any():
        fig.add_trace(
            go.Scatter(
                x=part["layer"],
                y=part["uniform"] * 100,
                mode="lines",
                name="uniform (every layer alike)",
                line=dict(color=OKABE_ITO[2], dash="dash"),
            )
        )
    fig.update_layout(
        barmode="group",
        yaxis_title="pruned (%)",
        yaxis_range=[0, 100],
        xaxis_title="layer",
        height=360,
        legend=dict(orientation="h", y=-0.3),
    )
    return fig


def runs_at_eps(frame: pd.DataFrame, eps: float, labels: dict[str, str] | None = None, title: str = "") -> go.Figure:
    """Robust accuracy (%) vs sparsity at one ε, one line per run (frame: several runs, one attack)."""
    part = frame[frame["eps"] == eps]
    if part.empty:
        return _empty("no results at this ε")
    labels, norm = labels or {}, norm_of(frame)
    fig = go.Figure()
    for i, (run_id, rows) in enumerate(part.groupby("run_id", sort=False)):
        rows = rows.sort_values("sparsity")
        name = labels.get(run_id, run_id[:12])
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        intervals = [interval_text(lo, hi) for lo, hi in zip(rows.get("ci_low", []), rows.get("ci_high", []))]
        line = _sparsity_line(
            rows,
            name,
            colour,
            list(zip(rows["clean_acc"] * 100, intervals or [""] * len(rows))),
            f"{name}<br>sparsity %{{x:.1f}} %<br>robust %{{y:.1f}} % %{{customdata[1]}}<br>clean "
            f"%{{customdata[0]:.1f}} %<extra></extra>",
        )
        _add_with_band(fig, line, rows, "ci_low", "ci_high", colour, run_id)
    return _robust_vs_sparsity_layout(fig, title or f"Robust accuracy at ε = {eps_label(eps, norm)}")


def _sparsity_line(rows: pd.DataFrame, name: str, colour: str, customdata: list, hovertemplate: str) -> go.Scatter:
    """Robust accuracy (%) against sparsity (%) as one line with markers."""
    return go.Scatter(
        x=rows["sparsity"] * 100,
        y=rows["acc"] * 100,
        mode="lines+markers",
        name=name,
        line_color=colour,
        customdata=customdata,
        hovertemplate=hovertemplate,
    )


def _robust_vs_sparsity_layout(
    fig: go.Figure, title: str, x_title: str = "sparsity (%)", legend_y: float = -0.25
) -> go.Figure:
    """The layout of the one-trace-per-run (or per-variant) charts of robust accuracy against sparsity
    or another measure of size."""
    fig.update_layout(
        title=title,
        xaxis_title=x_title,
        yaxis_title="robust accuracy (%)",
        yaxis_range=[0, 100],
        height=420,
        legend=dict(orientation="h", y=legend_y),
    )
    return fig


def families_at_eps(summary: pd.DataFrame, eps: float, labels: dict[str, str], title: str = "") -> go.Figure:
    """Robust accuracy (%) vs sparsity at one ε, one line per replicate family: the mean over its seeds,
    shaded from the lowest to the highest seed (`summary` from summaries.over_seeds)."""
    part = summary[summary["eps"] == eps]
    if part.empty:
        return _empty("no results at this ε")
    fig = go.Figure()
    for i, (family, rows) in enumerate(part.groupby("family", sort=False)):
        rows = rows.sort_values("sparsity")
        name = f"{labels.get(family, family)} · {int(rows['seeds'].max())} seed(s)"
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        spread = [tables.interval_text(lo, hi) for lo, hi in zip(rows["acc_min"], rows["acc_max"])]
        line = _sparsity_line(
            rows,
            name,
            colour,
            list(zip(rows["seeds"], spread)),
            f"{name}<br>sparsity %{{x:.1f}} %<br>mean robust %{{y:.1f}} % over %{{customdata[0]}} "
            "seeds<br>seeds range %{customdata[1]}<extra></extra>",
        )
        _add_with_band(fig, line, rows, "acc_min", "acc_max", colour, family)
    return _robust_vs_sparsity_layout(fig, title or "Robust accuracy, mean over seeds (shaded: lowest to highest seed)")


def difference_heatmap(diff: pd.DataFrame, norm: str, title: str = "", noise: pd.DataFrame | None = None) -> go.Figure:
    """Second run minus first, in accuracy points over sparsity × ε (diverging, centred on 0). Cells
    whose difference is inside the noise (`noise` True: its 95 % interval holds zero) are greyed
    over, so only real differences keep their colour."""
    if diff.empty:
        return _empty("the runs share no sparsity range or ε")
    points = diff.values * 100
    bound = max(float(np.nanmax(np.abs(points))), 1.0)
    labels = [eps_label(e, norm) for e in diff.columns]
    mask = noise.values.astype(bool) if noise is not None and not noise.empty else None
    verdicts = (
        np.where(mask, "inside the noise (95 % interval holds 0)", "a real difference (95 %)")
        if mask is not None
        else np.full(points.shape, "")
    )
    fig = go.Figure(
        go.Heatmap(
            z=points,
            x=labels,
            y=(diff.index * 100).tolist(),
            colorscale="PuOr",
            zmid=0,
            zmin=-bound,
            zmax=bound,
            colorbar_title="Δ robust acc. (pt)",
            customdata=verdicts,
            hovertemplate="sparsity %{y:.1f} %<br>ε %{x}<br>second − first %{z:+.1f} pt<br>%{customdata}"
            "<extra></extra>",
        )
    )
    if mask is not None:
        fig.add_trace(
            go.Heatmap(
                z=[[1.0 if inside else None for inside in row] for row in mask],  # None: a gap, colour shows
                x=labels,
                y=(diff.index * 100).tolist(),
                colorscale=[[0, "rgb(200,200,200)"], [1, "rgb(200,200,200)"]],
                showscale=False,
                opacity=0.85,
                name="inside the noise",
                hoverinfo="skip",
            )
        )
    # ε labels such as "0" and "0.05 ≈ 12.8/255" would make plotly guess a numeric axis and draw nothing
    fig.update_layout(
        title=title, xaxis_title=eps_axis_title(norm), yaxis_title="sparsity (%)", height=440, xaxis_type="category"
    )
    return fig


PARETO_AXES = {
    "sparsity": ("sparsity", "sparsity (%)", 100.0, False),
    "effective sparsity": (
        "effective_sparsity",
        "effective sparsity (%: weights off every input → output path)",
        100.0,
        False,
    ),
    "flops": ("sparse_flops", "FLOPs per image (sparse)", 1.0, True),
    "latency": ("latency_ms_b128", "latency at batch 128 (ms, this CPU)", 1.0, True),
    "onnx latency": (
        "onnx_shrunk_latency_ms_b128",
        "latency at batch 128 in ONNX Runtime, physically smaller model (ms, this CPU; filter pruning)",
        1.0,
        True,
    ),
}


def pareto_scatter(frame: pd.DataFrame, axis: str, eps: float, labels: dict[str, str] | None = None) -> go.Figure:
    """Robust accuracy at ε against sparsity, FLOPs or latency for every checkpoint, Pareto front joined.

    `frame`: robust rows at one ε merged with efficiency columns. For sparsity, more is better;
    for FLOPs and latency, less is. A checkpoint without the number (a latency blanked as unreliable
    by engine.report.tables.reliable_latencies) is left out, and the figure says how many were.
    """
    column, title, scale, lower_is_better = PARETO_AXES[axis]
    part = frame.dropna(subset=[column]) if column in frame else frame.iloc[0:0]
    left_out = len(frame) - len(part)
    if part.empty:
        return _empty(
            f"no {axis} numbers for these runs" + (f" ({left_out} unreliable or missing)" if left_out else "")
        )
    labels = labels or {}
    cost = part[column].to_numpy() * (1 if lower_is_better else -1)
    front = part[pareto_front(cost, part["acc"].to_numpy())].sort_values(column)
    fig = go.Figure()
    for i, (run_id, rows) in enumerate(part.groupby("run_id", sort=False)):
        fig.add_trace(
            go.Scatter(
                x=rows[column] * scale,
                y=rows["acc"] * 100,
                mode="markers",
                name=labels.get(run_id, run_id[:12]),
                marker=dict(size=10, color=OKABE_ITO[i % 8]),
                text=[f"step {s}" for s in rows["step"]],
                hovertemplate="%{text}<br>%{x:.4g}<br>robust %{y:.1f} %<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=front[column] * scale,
            y=front["acc"] * 100,
            mode="lines",
            name="Pareto front",
            line=dict(color="#000000", dash="dot"),
            hoverinfo="skip",
        )
    )
    norm = norm_of(part)
    fig.update_layout(
        xaxis_title=title,
        yaxis_title=f"robust accuracy at ε = {eps_label(eps, norm)} (%)",
        yaxis_range=[0, 100],
        height=440,
        legend=dict(orientation="h", y=-0.25),
    )
    if left_out:
        fig.add_annotation(
            text=f"{left_out} checkpoint(s) without a reliable {axis} number are not drawn",
            xref="paper",
            yref="paper",
            x=0,
            y=1.06,
            showarrow=False,
            font=dict(color="#777777"),
        )
    return fig


def playground_grid(examples: list, class_names: tuple[str, ...], amplify: float | None = None) -> go.Figure:
    """Each attacked image as a row: clean, perturbation (amplified around mid-grey) and adversarial image.

    By default the amplification maps the largest perturbation to full contrast.
    """

    if not examples:
        return _empty("pick at least one image")
    if amplify is None:
        largest = max(float(np.abs(e.perturbation).max()) for e in examples)
        amplify = round(0.5 / largest, 1) if largest > 0 else 1.0
    titles = []
    for e in examples:
        adv_guess = e.pruned_top3[0][0]
        titles += [
            f"#{e.index}: {class_names[e.label]}",
            f"perturbation ×{amplify:g}",
            f"pruned sees {class_names[adv_guess]}" + (" ✗" if adv_guess != e.label else " ✓"),
        ]
    fig = make_subplots(
        rows=len(examples), cols=3, subplot_titles=titles, horizontal_spacing=0.02, vertical_spacing=0.06
    )
    for row, e in enumerate(examples, start=1):
        delta = np.clip(0.5 + amplify * e.perturbation, 0.0, 1.0)
        for col, image in enumerate((e.clean, delta, e.adversarial), start=1):
            pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
            if pixels.ndim == 2:
                pixels = np.stack([pixels] * 3, axis=-1)
            fig.add_trace(go.Image(z=pixels, hoverinfo="skip"), row=row, col=col)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=230 * len(examples), margin=dict(l=10, r=10, t=40, b=10))
    return fig


def schedule_preview(walk: pd.DataFrame, parent: pd.DataFrame | None = None, title: str = "") -> go.Figure:
    """A schedule as the run walks it (engine.spec.form.schedule_walk): sparsity (%) against cumulative
    fine-tuning batches, every evaluated checkpoint marked; the parent run's schedule dashed beneath."""
    fig = go.Figure()
    for rows, name, colour, dash in ((parent, "parent run", "#999999", "dash"), (walk, "this run", OKABE_ITO[0], None)):
        if rows is None or rows.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=rows["batch"],
                y=rows["sparsity"] * 100,
                mode="lines",
                name=name,
                line={"color": colour, "dash": dash, "shape": "linear"},
                hoverinfo="skip",
            )
        )
        marks = rows[rows["checkpoint"].notna()]
        fig.add_trace(
            go.Scatter(
                x=marks["batch"],
                y=marks["sparsity"] * 100,
                mode="markers",
                name=f"{name}: checkpoints evaluated",
                marker={"color": colour, "size": 9, "symbol": "circle" if dash is None else "circle-open"},
                customdata=marks["checkpoint"].astype(int),
                hovertemplate="step %{customdata}<br>sparsity %{y:.1f} %<br>after %{x} batches<extra></extra>",
            )
        )
    fig.update_layout(
        title=title or "Schedule: sparsity of the model being trained",
        xaxis_title="fine-tuning batches (cumulative)",
        yaxis_title="sparsity (%)",
        yaxis_range=[0, 100],
        height=320,
        margin={"t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.3},
    )
    return fig
