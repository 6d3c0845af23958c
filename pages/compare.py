"""Compare: two or more runs on one base model, side by side, as a difference, and as a Pareto view."""

import streamlit as st

from engine.errors import SpecError
from engine.report import figures, summaries, tables
from pages import choice_from_query, fill_view, read, route_through_app, run_labels, runs_from_query
from pages.parts.decide import decide_button

route_through_app()

AXES = ["sparsity", "effective sparsity", "flops", "latency", "onnx latency"]

st.title("Compare pruning runs")
st.markdown(
    "What-if on one trained base: how do two schedules or methods differ in robustness at the same "
    "sparsity? Pick runs that share a base model; the difference map shows where one beats the other, and "
    "the Pareto view which checkpoints are worth keeping for what they cost."
)
with st.expander("How to read these plots"):
    st.markdown(
        "- **Side by side**: robust accuracy against sparsity at one ε, one line per run (hover for clean accuracy).\n"
        "- **Difference**: second run minus first, in accuracy points, over sparsity × ε. Orange: the second is more "
        "robust; purple: the first. Runs checkpoint at different sparsities, so both are interpolated linearly onto "
        "the sparsity range they share.\n"
        "- **Pareto**: every checkpoint's robust accuracy against its cost (sparsity, effective sparsity, sparse "
        "FLOPs, measured latency, or for filter pruning the physically smaller model's latency in ONNX Runtime, "
        "the deployment path); the dotted line joins the checkpoints no other one beats on both. A latency "
        "is timed interleaved with the dense model, several rounds; one whose rounds differ by more than 25 % is "
        "not drawn (the machine was too busy to tell). Effective "
        "sparsity counts a kept weight as pruned when no path from the input through it reaches the output (a "
        "pruned filter silences every weight that reads its channel), so methods compare at what they really keep.\n"
        "- Runs compare when dataset, model and base training agree. With the same seed they share one "
        "trained base and the same evaluation images (compared per image); with different seeds they are "
        "replicates, compared as independent measurements, and lines of one setup can be combined over seeds."
    )

runs = read("runs_frame")
runs = runs[runs["steps_done"] > 0]
shared = tables.sharing_a_base(runs, "base_family")  # one base setup; seeds may differ (replicates)
if runs.empty or not shared.any():
    fill_view(
        "compare",
        "Compare needs two runs on one base: a sibling pruned at random fills this page "
        "(from a terminal: `python -m engine run --preset teaching --set prune.method=random`).",
    )
    st.stop()

labels = run_labels(runs)
run_ids = list(runs.loc[shared, "run_id"])
linked = runs_from_query("runs", run_ids, [])
base_of = dict(zip(runs["run_id"], runs["base_family"]))
same_base = [r for r in run_ids if base_of[r] == base_of[(linked or run_ids)[0]]]
chosen = st.sidebar.multiselect(
    "Runs (one base)",
    same_base,
    default=[r for r in linked if r in same_base] or same_base[:2],
    format_func=labels.__getitem__,
)
robust = read("robust_frame", tuple(chosen))
if len(chosen) < 2 or robust.empty:
    st.info("Pick at least two runs with robust results in the sidebar.")
    st.stop()
attacks = sorted(set.intersection(*(set(rows["attack"]) for _, rows in robust.groupby("run_id"))))
if robust["run_id"].nunique() < len(chosen) or not attacks:  # nothing to set side by side
    st.info(
        "These runs share no attack (or one has no robust results yet): compare runs attacked alike, or fork one "
        "with the other's `eval.attacks` (What if… on the Runs page)."
    )
    st.stop()
robust = robust[robust["attack"].isin(attacks)]
attack = st.sidebar.selectbox("Attack", attacks, index=attacks.index(choice_from_query("attack", attacks, attacks[0])))
axis = st.sidebar.radio("Pareto cost", AXES, index=AXES.index(choice_from_query("x", AXES, AXES[0])))
robust = robust[robust["attack"] == attack]
norm = figures.norm_of(robust)
eps_values = sorted(robust["eps"].unique())
eps = st.sidebar.select_slider(
    "ε",
    eps_values,
    value=choice_from_query("eps", eps_values, eps_values[-1]),
    format_func=lambda e: figures.eps_label(e, norm),
)
st.query_params.update({"runs": ",".join(r[:12] for r in chosen), "attack": attack, "x": axis, "eps": str(eps)})

side, difference, pareto = st.tabs(["Side by side", "Difference", "Pareto"])
families = dict(zip(runs["run_id"], runs["family"]))
replicated = runs[runs["run_id"].isin(chosen)].groupby("family")["run_id"].count().max() > 1
if replicated and side.toggle("Combine seeds (mean, shaded from the lowest to the highest seed)", value=True):
    family_labels = {families[r]: labels[r].split(" · ", 1)[-1] for r in chosen}
    summary = summaries.over_seeds(robust, {r: families[r] for r in chosen})
    side.plotly_chart(figures.families_at_eps(summary, eps, family_labels), width="stretch")
else:
    side.plotly_chart(figures.runs_at_eps(robust, eps, labels), width="stretch")
first, second = chosen[0], chosen[1]
one, two = robust[robust["run_id"] == first], robust[robust["run_id"] == second]
difference.caption(
    f"Second − first: {labels[second]}  −  {labels[first]}. Grey cells: inside the noise of the evaluation "
    "images (the 95 % interval of the difference holds zero)."
)
difference.plotly_chart(
    figures.difference_heatmap(summaries.difference_grid(one, two), norm, noise=summaries.difference_noise(one, two)),
    width="stretch",
)
last = {run: int(robust.loc[robust["run_id"] == run, "step"].max()) for run in (first, second)}
try:
    gap = read("compare", (second, last[second]), (first, last[first]), attack, eps)
    difference.markdown(tables.difference_sentence(gap, f"Last checkpoints at ε = {figures.eps_label(eps, norm)}"))
    decide_button(difference, (second, last[second]), (first, last[first]), attack, eps)
except SpecError as exc:
    difference.info(exc.problems[0])
at_eps = robust[robust["eps"] == eps].merge(
    tables.reliable_latencies(read("efficiency_frame", tuple(chosen))).drop(columns=["sparsity"]),
    on=["run_id", "step"],
    how="left",
)
pareto.plotly_chart(figures.pareto_scatter(at_eps, axis, eps, labels), width="stretch")
auc = tables.with_clean_interval(summaries.auc_table(robust), robust).merge(runs[["run_id", "label"]], on="run_id")
st.dataframe(
    auc[["label", "step", "sparsity", "clean_acc", *auc.columns.intersection(["clean 95 % interval"]), "auc"]],
    hide_index=True,
    width="stretch",
    column_config={"auc": st.column_config.NumberColumn("AUC", format="%.3f")},
)
