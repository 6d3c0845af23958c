"""Budget: the adversarial budgets that AP and BAP train with, per pruning step, side by side."""

import streamlit as st

from engine.report import figures
from pages import (
    choice_from_query,
    fill_view,
    read,
    refresh_while_running,
    route_through_app,
    run_labels,
    runs_from_query,
    what_if_link,
)

route_through_app()

st.title("Adversarial budgets while pruning")
st.markdown(
    "Adversarial pruning (AP) fine-tunes every pruning step on half clean, half adversarial inputs with one "
    "fixed budget ε. Blind adversarial pruning (BAP) lets each example set its own budget: its DeepFool "
    "distance to the decision boundary, capped at the batch mean and scaled by ρ. Here are those budgets, "
    "step by step, next to what they bought in robustness."
)
with st.expander("How to read this plot"):
    st.markdown(
        "- One panel per run. The shaded bands hold the middle 80 % and 50 % of per-example budgets at each "
        "pruning step, the line their median; the dashed line is the cutoff c (BAP: the batch mean of DeepFool "
        "distances, re-estimated on every batch; AP: its fixed ε). The dotted line is the median DeepFool distance.\n"
        "- AP's budget is flat by construction. BAP's follows the model: as pruning removes capacity the margins, "
        "and so the cutoff, tend to shrink, and recover while fine-tuning.\n"
        "- BAP's budgets are RMS-normalised L2 norms ‖r‖₂/√D (on 28×28 images, 0.1 is a raw L2 norm of 2.8); "
        "AP's are L∞ on the [0, 1] pixel scale, so compare their shapes, not their heights.\n"
        "- From Xie et al., *Blind Adversarial Pruning* (arXiv:2004.05913); the per-example budget "
        "ρ·min(n_i, c) is our reading of their cutoff-scale code."
    )

runs = read("runs_frame")
with_budgets = read("runs_having", "budgets")
if not with_budgets:
    fill_view(
        "budget",
        "No run has fine-tuned with a budget yet: an AP and a BAP run on one base fill this page "
        "(from a terminal: `python -m engine run --preset teaching --set prune.mode=bap`, and `=ap`).",
    )
    st.stop()

labels = run_labels(runs)
chosen = st.sidebar.multiselect(
    "Runs",
    with_budgets,
    default=runs_from_query("runs", with_budgets, with_budgets[:3]),
    format_func=labels.__getitem__,
)
if not chosen:
    st.info("Pick at least one run in the sidebar.")
    st.stop()
what_if_link(chosen[0])
titles = {  # a panel's title: its id and its fine-tuning, short enough that two panels' titles never overlap
    r.run_id: f"{r.run_id[:8]} · fine-tune {r.label.partition(' · fine-tune ')[2] or r.finetune_mode}"
    for r in runs.itertuples()
    if r.run_id in chosen
}


robust = read("robust_frame", tuple(chosen))
attacks = sorted(robust["attack"].unique())
attack = (
    st.sidebar.selectbox("Attack", attacks, index=attacks.index(choice_from_query("attack", attacks, attacks[0])))
    if attacks
    else None
)
st.query_params.update({"runs": ",".join(r[:12] for r in chosen), **({"attack": attack} if attack else {})})


@st.fragment(run_every=refresh_while_running(runs, chosen))
def draw() -> None:
    """Trajectories, the robustness they bought and the table; redrawn while a chosen run computes."""
    st.plotly_chart(figures.budget_trajectory(read("budget_frame", tuple(chosen)), titles), width="stretch")
    robust = read("robust_frame", tuple(chosen))
    if attack:
        robust = robust[robust["attack"] == attack]
        eps_values = sorted(robust["eps"].unique())
        eps = st.select_slider(
            "ε of the robustness comparison",
            eps_values,
            value=eps_values[-1],
            format_func=lambda e: figures.eps_label(e, figures.norm_of(robust)),
        )
        st.plotly_chart(figures.runs_at_eps(robust, eps, labels), width="stretch")
    table = read("budget_frame", tuple(chosen))[
        ["run_id", "step", "sparsity", "clean_acc", "norm", "cutoff", "budget_q50", "distance_q50"]
    ]
    table["run_id"] = table["run_id"].str[:12]
    st.dataframe(table, hide_index=True, width="stretch")


draw()
