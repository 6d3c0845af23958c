"""Playground: attack a few images of any cached checkpoint live and see what each model makes of them."""

import math
import time
import uuid

import pandas as pd
import streamlit as st

from engine import api
from engine.report import figures
from pages import (
    choice_from_query,
    chosen,
    read,
    route_through_app,
    run_labels,
    runs_from_query,
    runs_with_checkpoints,
    what_if_link,
)
from pages.parts.downloads import checkpoint_downloads, has_smaller_model

route_through_app()

st.title("Attack playground")
st.markdown(
    "Pick a pruned checkpoint and an attack, and watch a shirt become a bag: the clean image, the "
    "perturbation the attack added (amplified so you can see it) and the adversarial image, with the top-3 "
    "guesses of the pruned model and of the dense model it came from."
)
with st.expander("How to read this"):
    st.markdown(
        "- The attack is crafted on the **pruned** model; the dense model (the run's step 0) sees the same "
        "adversarial image, so you can see whether the fooling transfers.\n"
        "- The middle panel shows the perturbation amplified around mid-grey (the factor is in its title) so the "
        "largest change reaches full contrast: lighter pixels were brightened, darker ones dimmed. L∞ "
        "budgets are on the [0, 1] pixel scale (0.1 ≈ 25/255); L2 budgets are raw norms.\n"
        "- DeepFool finds the smallest L2 change that flips the prediction and is then cut to the budget, "
        "as in the BAP evaluation protocol."
    )


@st.cache_resource(show_spinner="Loading the checkpoint…", max_entries=8)
def models(cache_root: str, run_id: str, step: int):
    """The pruned checkpoint, the dense base (step 0), the evaluation images and the class names."""
    store = api.open_store(cache_root)
    x, y = api.eval_subset(run_id, store)
    classes = api.class_names(run_id, store)
    return api.load_checkpoint(run_id, step, store), api.load_checkpoint(run_id, 0, store), x, y, classes


runs = runs_with_checkpoints(
    read("runs_frame"),
    2,
    "The playground needs a run with a pruned checkpoint. Run the **teaching** preset from Home, "
    "or `python -m engine run --preset teaching`.",
)

OFFERED = api.playground_attacks()  # name → (default ε, norm), from each attack's class
ATTACKS, DEFAULT_EPS = list(OFFERED), {name: eps for name, (eps, _) in OFFERED.items()}
labels, run_ids = run_labels(runs), list(runs["run_id"])
run_id = chosen(
    st.sidebar.selectbox(
        "Run",
        run_ids,
        index=run_ids.index(runs_from_query("run", run_ids, run_ids[:1])[0]),
        format_func=labels.__getitem__,
    )
)
what_if_link(run_id)
store = api.open_store()
steps = read("checkpoints", run_id)
step = st.sidebar.selectbox(
    "Checkpoint",
    list(steps),
    index=list(steps).index(choice_from_query("step", list(steps), max(steps))),
    format_func=lambda k: f"step {k} · sparsity {steps[k]:.1%}",
)
attack = st.sidebar.selectbox("Attack", ATTACKS, index=ATTACKS.index(choice_from_query("attack", ATTACKS, ATTACKS[0])))
try:
    eps_default = api.parse_number(str(st.query_params.get("eps", DEFAULT_EPS[attack])))  # 0.03 or 8/255
except (ValueError, ZeroDivisionError):
    eps_default = DEFAULT_EPS[attack]
eps_default = eps_default if math.isfinite(eps_default) and 0.0 <= eps_default <= 10.0 else DEFAULT_EPS[attack]
eps = st.sidebar.number_input("ε", 0.0, 10.0, eps_default, 0.01 if OFFERED[attack][1] == "Linf" else 0.1, format="%.4f")
if OFFERED[attack][1] == "Linf":
    st.sidebar.caption(f"ε = {figures.eps_label(eps, 'Linf')} of the pixel range (a link may say `eps=8/255`)")
try:
    pruned, dense, x, y, classes = models(str(store.root), run_id, step)
except api.EngineError as exc:  # a damaged or missing checkpoint: its one line, never a traceback
    st.error(str(exc), icon=":material/broken_image:")
    if st.button("Repair: forget the damaged checkpoints and compute them again", key="repair"):
        st.caption(" · ".join(api.doctor()))  # what the CLI's `engine doctor` does
        job = api.submit(api.validate_tree(api.spec_tree(run_id)))
        st.success(f"Queued as job {job.job_id}: the Runs page follows it; this page works once it is done.")
    st.stop()
first = st.sidebar.number_input("First image", 0, len(x) - 1, choice_from_query("img", list(range(len(x))), 0))
count = st.sidebar.slider("Images", 1, 6, 3)
st.sidebar.caption("This checkpoint, to use elsewhere:")
smaller = has_smaller_model(read("efficiency_frame", (run_id,)), step)
checkpoint_downloads(st.sidebar, run_id, step, smaller)
st.query_params.update({"run": run_id[:12], "step": str(step), "attack": attack, "eps": f"{eps:g}", "img": str(first)})

line = st.empty()


places: list[int] = []


def waiting(place: int) -> None:
    """Tell this session its place while other sessions' attacks run (one per core at a time)."""
    places.append(place)
    line.info(
        f"Other sessions are attacking on this server, one attack per core at a time: you are number {place} in "
        "line, and your images appear here when your turn comes.",
        icon=":material/hourglass_top:",
    )


asked = time.perf_counter()
try:
    with api.playground_turn(st.session_state.setdefault("session-id", uuid.uuid4().hex), waiting):
        line.empty()
        started = time.perf_counter()
        indices = list(range(first, min(first + count, len(x))))
        examples = api.attack_examples(pruned, dense, x, y, attack, eps, indices)
except api.Superseded:  # this session asked again (a new image, a new ε): that request takes over
    st.stop()
except api.LineTimeout as exc:
    line.warning(str(exc), icon=":material/hourglass_disabled:")
    st.stop()
queued = f", after {started - asked:.1f} s in line" if places else ""
st.caption(f"Attacked {len(examples)} image(s) in {(time.perf_counter() - started) * 1000:.0f} ms{queued}.")
st.plotly_chart(figures.playground_grid(examples, classes), width="stretch")
guesses = lambda top: ", ".join(f"{classes[c]} {p:.0%}" for c, p in top)
st.dataframe(
    pd.DataFrame(
        [
            {
                "image": e.index,
                "true": classes[e.label],
                "pruned, clean": guesses(e.pruned_clean_top3),
                "pruned, attacked": guesses(e.pruned_top3),
                "dense, attacked": guesses(e.dense_top3),
            }
            for e in examples
        ]
    ),
    hide_index=True,
    width="stretch",
)
