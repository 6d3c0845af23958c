"""Surface: robust accuracy over sparsity × ε for one run and attack, as surface, heat map or slices."""

import streamlit as st

from engine import api
from engine.report import figures, summaries, tables
from pages import choice_from_query, chosen, read, route_through_app, run_labels, runs_from_query, what_if_link
from pages.parts.decide import undecided_sweet_spots
from pages.parts.downloads import take_away

route_through_app()


def _resume(run_id: str) -> None:
    api.resume(run_id)


VIEWS = [
    "3-D surface",
    "heat map",
    "slice at one ε",
    "slice at one sparsity",
    "adversarial share",
    "certified vs attacked",
]

st.title("Robust accuracy over sparsity × ε")
st.markdown(
    "Each point is one checkpoint of a pruning run attacked at one strength ε: how much of the fixed "
    "evaluation subset the model still classifies correctly. Read across to see robustness fall as the "
    "attacker gets stronger; read down to see what pruning does to it."
)
with st.expander("How to read this plot"):
    st.markdown(
        "- **ε = 0 is clean accuracy**; curves never rise with ε, because an example broken at a smaller ε "
        "stays broken at every larger one (its adversarial example lies inside the larger ball).\n"
        "- L∞ budgets are on the [0, 1] pixel scale and shown as k/255 (8/255 ≈ 0.031).\n"
        "- Sparsity is the fraction of zero weights among prunable weights (conv and linear, not the classifier).\n"
        "- *Adversarial share* mixes the two: accuracy when a share r of inputs is attacked, "
        "(1 − r)·clean + r·robust; where lines cross, the best sparsity depends on how many inputs are hostile.\n"
        "- A **certificate** (`smoothing`: randomized smoothing, Cohen et al. 2019) is drawn like an attack, "
        "but its ε is an L2 radius and its accuracy a lower bound on the smoothed classifier's robustness "
        "(abstentions count as wrong), so its ε = 0 point is the smoothed classifier's clean accuracy. "
        "*Certified vs attacked* puts it beside the L2 attacks at one checkpoint.\n"
        "- Surfaces of this kind extend the robustness-vs-compression panels of Merkle et al., "
        "*Pruning in the Face of Adversaries* (arXiv:2108.08560)."
    )


runs = read("runs_frame")
runs = runs[runs["steps_done"] > 0]
if runs.empty:
    st.info(
        "No finished checkpoints yet. Run the **quickstart** preset from Home, or "
        "`python -m engine run --preset quickstart` in a terminal."
    )
    st.stop()

run_ids = list(runs["run_id"])
default_run = runs_from_query("run", run_ids, run_ids[:1])[0]

labels = {run: f"{label} · {status}" for (run, label), status in zip(run_labels(runs).items(), runs["status"])}
run_id = chosen(st.sidebar.selectbox("Run", run_ids, index=run_ids.index(default_run), format_func=labels.__getitem__))
what_if_link(run_id)
robust = read("robust_frame", (run_id,))
attacks = sorted(robust["attack"].unique()) or ["(none)"]
attack = st.sidebar.selectbox("Attack", attacks, index=attacks.index(choice_from_query("attack", attacks, attacks[0])))
this_run = runs.set_index("run_id").loc[run_id]
running = this_run["status"] == api.RunStatus.RUNNING
if this_run["status"] == api.RunStatus.INTERRUPTED:
    st.warning(
        f"This run was interrupted after {this_run['steps_done']} of {this_run['n_steps']} checkpoints: the process "
        "computing it is gone and no job holds it. Resuming recomputes only the missing checkpoints.",
        icon=":material/pause_circle:",
    )
    st.button("Resume", key="resume", on_click=_resume, args=(run_id,), type="primary")
# a run still computing opens on the heat map: Chromium without a GPU spends 11 CPU-seconds more drawing
# the 3-D chart over the teaching run (bench/teaching.py), seconds the run itself needs on 2 cores
default_view = VIEWS[1] if running else VIEWS[0]
view = st.sidebar.radio("View", VIEWS, index=VIEWS.index(choice_from_query("view", VIEWS, default_view)))
st.query_params.update({"run": run_id[:12], "attack": attack, "view": view})


@st.fragment(run_every=2 if running else None)
def watch() -> None:
    """While the run computes: its job's progress, and a redraw of the page once a new checkpoint lands
    (not every few seconds: a 3-D chart redrawn in a browser costs the CPU the run needs)."""
    job = read("latest_job", run_id)
    if job and job.status in api.LIVE_JOBS:
        st.progress(float(job.fraction or 0.0), text=f"Job {job.job_id} · {api.describe_job(job)}")
    elif running:
        st.info("This run is still computing elsewhere; the plot fills in as its steps land.")
    now = read("runs_frame").set_index("run_id").loc[run_id]
    if (now["steps_done"], now["status"]) != (this_run["steps_done"], this_run["status"]):
        st.rerun()


@st.fragment
def draw() -> None:
    """The chosen view of the chosen run (its widgets redraw only the view)."""
    frame = read("robust_frame", (run_id,), flags=True)  # per-image flags: sweet spots are paired tests
    frame = frame[frame["attack"] == attack]
    st.caption(f"{frame['step'].nunique()} of {this_run['n_steps']} checkpoints evaluated")
    if frame.empty:  # a run without attacks (or none landed yet): nothing to draw a surface from
        st.info(
            "No robust accuracy for this run yet: it attacks nothing (`eval.attacks: []`) or its first checkpoint "
            "has not landed. Fork it with an attack (What if…) to draw its surface.",
            icon=":material/info:",
        )
        return
    title = labels[run_id]
    if view == VIEWS[0]:
        fig = figures.surface_3d(frame, title)
    elif view == VIEWS[1]:
        fig = figures.surface_heatmap(frame, title, spots := summaries.sweet_spots(frame))
        undecided_sweet_spots(st, spots, figures.norm_of(frame))
    elif view in (VIEWS[2], VIEWS[4]):
        eps_values = sorted(frame["eps"].unique())
        eps = st.select_slider(
            "ε", eps_values, value=eps_values[-1], format_func=lambda e: figures.eps_label(e, figures.norm_of(frame))
        )
        builder = figures.slice_at_eps if view == VIEWS[2] else figures.adversarial_share_lines
        fig = builder(frame, eps, title)
    elif view == VIEWS[3]:
        steps = sorted(frame["step"].unique())
        chosen = st.multiselect("Checkpoints (step)", steps, default=steps)
        fig = figures.slice_at_sparsity(frame, chosen, title)
    else:
        steps = sorted(robust["step"].unique())
        step = st.select_slider("Checkpoint (step)", steps, value=steps[-1])
        fig = figures.certified_vs_empirical(robust, step)
    if caption := summaries.certified_caption(frame):
        st.caption(caption)
    if (collapse := summaries.cliff(frame)) is not None:
        st.markdown(f":material/trending_down: **Where robustness collapses.** {collapse.sentence()}")
    st.plotly_chart(fig, width="stretch")
    for warning in read("warnings_list", (run_id,))[:5]:
        st.warning(f"Step {warning['step']}: {warning['message']}", icon=":material/warning:")
    table = tables.surface_table(frame, read("efficiency_frame", (run_id,)))
    st.caption(
        "AUC: area under robust accuracy vs ε divided by the ε range (1 = unbreakable). A sweet spot (★ on "
        "the heat map) is a pruned checkpoint as robust as the dense model at that ε, within 2 pt: the paired 95 % "
        "interval of their difference on the same images lies above −2 pt (☆: it straddles −2 pt, so these "
        "images cannot tell). "
        "Compression = all / non-zero parameters; effective compression counts only weights on a path from "
        "input to output (a pruned filter silences the next layer's weights that read it); theoretical "
        "speed-up = dense / sparse FLOPs; latency is measured on this CPU, timed in turn with the dense model "
        "over several rounds (the fastest round, ms): masked (unstructured) sparsity is the dense computation, so "
        "its latency vs dense stays near 1 within the noise; for filter pruning the shrunk_* columns measure the "
        "physically smaller model and its speed-up over the dense one. A latency whose rounds differ by more than "
        "25 % is left blank and the latency note says so: the machine was too busy to tell. Click a column to sort."
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={"auc": st.column_config.NumberColumn("AUC", format="%.3f")},
    )
    take_away(run_id, frame, read("efficiency_frame", (run_id,)))


watch()
draw()
