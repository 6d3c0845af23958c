"""Transfer: adversarial examples crafted once on the base model, evaluated on every pruned checkpoint."""

import streamlit as st

from engine.report import figures
from pages import fill_view, read, route_through_app, what_if_link

route_through_app()

st.title("Transfer from the base model")
st.markdown(
    "The grey-box setting: an attacker who knows only the dense base model crafts adversarial examples on it "
    "once, and they are fed to every pruned checkpoint. Compare that curve with white-box attacks on each "
    "checkpoint itself."
)
with st.expander("How to read this plot"):
    st.markdown(
        "- At sparsity 0 the two curves coincide: the base *is* the attacked model.\n"
        "- Transfer accuracy is usually higher than white-box accuracy, and stays nearly flat in sparsity until "
        "clean accuracy itself drops: pruned children inherit their parent's robustness to its examples.\n"
        "- The protocol follows Vora et al., *Benchmarking Adversarial Robustness of Compressed Deep Learning "
        "Models* (arXiv:2308.08160); runs need `eval.transfer: true`."
    )

with_transfer = read("runs_having", "transfer")
if not with_transfer:
    fill_view(
        "transfer",
        "No run has transfer results yet: a run that also scores its pruned checkpoints on the base's "
        "adversarial examples fills this page (from a terminal: `--set eval.transfer=true`).",
    )
    st.stop()

wanted = st.query_params.get("run", "")
matches = [r for r in with_transfer if wanted and r.startswith(wanted)]
if wanted and len(matches) != 1:
    st.warning("The link's run has no transfer results in this store; showing the newest one instead.")
run_id = st.sidebar.selectbox(
    "Run",
    with_transfer,
    index=with_transfer.index(matches[0]) if len(matches) == 1 else 0,
    format_func=lambda r: r[:12],
)
what_if_link(run_id)
white, transfer = read("robust_frame", (run_id,)), read("robust_frame", (run_id,), source="transfer")
attacks = sorted(transfer["attack"].unique())
attack = st.sidebar.selectbox(
    "Attack",
    attacks,
    index=attacks.index(st.query_params.get("attack")) if st.query_params.get("attack") in attacks else 0,
)
white, transfer = white[white["attack"] == attack], transfer[transfer["attack"] == attack]
eps_values = sorted(e for e in transfer["eps"].unique() if e > 0) or [0.0]
norm = figures.norm_of(transfer)
eps = st.sidebar.select_slider("ε", eps_values, value=eps_values[-1], format_func=lambda e: figures.eps_label(e, norm))
st.query_params.update({"run": run_id[:12], "attack": attack})

st.plotly_chart(figures.transfer_vs_white_box(white, transfer, eps, f"{run_id[:12]} · {attack}"), width="stretch")
table = white[white["eps"] == eps][["step", "sparsity", "clean_acc", "acc"]].rename(columns={"acc": "white-box"})
table = table.merge(transfer[transfer["eps"] == eps][["step", "acc"]].rename(columns={"acc": "transfer"}), on="step")
st.dataframe(table, hide_index=True, width="stretch")
