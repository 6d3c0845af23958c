"""Layers: per-layer robustness sensitivity (MRS) and sparsity over a run's pruning steps."""

import streamlit as st

from engine.report import figures, ratios
from pages import (
    choice_from_query,
    chosen,
    fill_view,
    read,
    refresh_while_running,
    route_through_app,
    run_labels,
    runs_from_query,
    what_if_link,
)

route_through_app()

VIEWS = ["MRS heat map", "MRS reach heat map", "sparsity heat map", "effective sparsity heat map", "ratios at one step"]
HEATMAPS = {
    "MRS heat map": "mrs",
    "MRS reach heat map": "mrs_reach",
    "sparsity heat map": "sparsity",
    "effective sparsity heat map": "effective_sparsity",
}

st.title("Layer by layer")
st.markdown(
    "Which layers carry a network's robustness? Module Robustness Sensitivity (MRS) measures how much the "
    "adversarial loss rises when one layer's weights alone are nudged, within a small ball, in the worst "
    "direction. MRPF prunes sensitive layers less; this page shows where each run put its sparsity."
)
with st.expander("How to read this plot"):
    st.markdown(
        "- **MRS heat map**: one row per layer, one column per pruning step (its sparsity under the step number). "
        "Brighter cells are layers whose small weight change hurts robustness most.\n"
        "- MRS(l) = the largest rise of the cross-entropy on a fixed PGD-10 set when layer l's kept weights climb "
        "it by gradient ascent within ‖ΔW‖ ≤ 0.1·‖W‖; never negative, since ΔW = 0 is allowed. As in RiFT, each "
        "epoch takes mini-batch ascent steps, then projects back into the ball.\n"
        "- **Reach**: how far into its ball each layer's probe got where the loss peaked (100 % = the edge). A low "
        "reach means the ascent stalled inside the ball, so that layer's MRS says more about its gradient's size "
        "than about the worst case.\n"
        "- **Effective sparsity**: the share of a layer's weights on no path from the input to the output, pruned "
        "or not: a pruned filter silences every weight of the next layer that reads its channel.\n"
        "- This is **our documented reading** of Bai et al., *Adaptive Pruning with Module Robustness Sensitivity* "
        "(arXiv:2410.15176), whose exact formula we could not retrieve; it follows RiFT's module robust "
        "criticality (Zhu et al., ICCV 2023).\n"
        "- **Ratios**: MRPF's per-layer pruning ratios p_l ∝ 1/MRS_l (rescaled so the weighted mean hits the "
        "target, each at most 95 %) beside the sparsity each layer reached and the uniform share (every layer "
        "pruned alike). On an MRPF run they are the ratios it applied (`ratio`, set by `ratio_mrs`, probed on "
        "the model before that prune); on any other run that measured MRS they are what MRPF's rule would give "
        "from the MRS of the checkpoint before the step (`mrpf_rule`): did this run spare the layers MRPF would?"
    )

runs = read("runs_frame")
runs = runs[runs["steps_done"] >= 1]
if runs.empty:
    fill_view(
        "layers",
        "No checkpoints yet: a run that measures every layer's MRS fills this page "
        "(from a terminal: `python -m engine run --preset teaching --set 'eval.mrs={}'`).",
    )
    st.stop()

labels = run_labels(runs)
run_ids = list(runs["run_id"])
with_mrs = read("runs_having", "mrs")
default = runs_from_query("run", run_ids, (with_mrs or run_ids)[:1])[0]
run_id = chosen(st.sidebar.selectbox("Run", run_ids, index=run_ids.index(default), format_func=labels.__getitem__))
what_if_link(run_id)
view = st.sidebar.radio("View", VIEWS, index=VIEWS.index(choice_from_query("view", VIEWS, VIEWS[0])))
st.query_params.update({"run": run_id[:12], "view": view})


@st.fragment(run_every=refresh_while_running(runs, [run_id]))
def draw() -> None:
    """The chosen view and the layer table; redrawn while the run computes."""
    frame = read("layers_frame", run_id)
    if view in HEATMAPS:
        value = HEATMAPS[view]
        if value.startswith("mrs") and (frame.empty or frame["mrs"].isna().all()):
            fill_view("layers", "This run measured no MRS: a copy of it that does fills the heat map.", run_id)
            return
        st.plotly_chart(figures.layer_heatmap(frame, value, labels[run_id]), width="stretch")
    else:
        steps = [int(s) for s in sorted(frame["step"].unique())]
        step = st.select_slider("Pruning step", steps, value=choice_from_query("step", steps, steps[-1]))
        st.query_params["step"] = str(step)
        if (lesson := ratios.sensitivity_sentence(frame, step)) is not None:
            st.markdown(lesson)
        st.plotly_chart(figures.ratios_bars(frame, step), width="stretch")

    columns = [
        c
        for c in (
            "step",
            "step_sparsity",
            "layer",
            "kind",
            "numel",
            "sparsity",
            "effective_nonzero",
            "mrs",
            "mrs_reach",
            "ratio",
            "ratio_mrs",
            "uniform",
            "mrpf_rule",
        )
        if c in frame
    ]
    st.dataframe(frame[columns], hide_index=True, width="stretch")


draw()
