"""Home: what AER Lab is, the presets gallery, and the runs at a glance."""

import streamlit as st

from engine import api
from engine.errors import EngineError

st.title("AER Lab")
st.markdown(
    "Explore the **accuracy–efficiency–robustness** trade-off of pruned neural networks: train a small "
    "model, prune it step by step, attack every checkpoint, and see where robustness collapses. "
    "Every run is cached by its spec, so the same question is never computed twice."
)


def start(name: str) -> None:
    """Launch a preset in the background unless it is done or already computing."""
    try:
        spec = api.load_spec(preset=name)
    except EngineError as exc:
        st.session_state["launch_error"] = str(exc)
        return
    status = api.run_status(spec.run_id())
    if status is None or status["status"] == "failed" or (status["status"] == "running" and not status["alive"]):
        api.launch(spec)
    st.session_state["watching"] = spec.run_id()


st.subheader("Presets")
presets = api.presets()
columns = st.columns(min(len(presets), 3) or 1)
for i, (name, text) in enumerate(presets.items()):
    with columns[i % len(columns)].container(border=True):
        st.markdown(f"**{name}**")
        st.caption(text)
        st.button(f"Run {name}", key=f"run-{name}", on_click=start, args=(name,), type="primary")

if "launch_error" in st.session_state:
    st.error(st.session_state.pop("launch_error"))


@st.fragment(run_every=2 if st.session_state.get("watching") else None)
def watched_run() -> None:
    """Live progress of the run launched from this page."""
    run_id = st.session_state.get("watching")
    if not run_id:
        return
    status = api.run_status(run_id)
    if status is None:
        st.info(f"Run {run_id[:12]} is starting…")
        return
    done, total = status["steps_done"], status["n_steps"]
    st.progress(done / total, text=f"Run {run_id[:12]}: {status['status']} · {done} of {total} checkpoints evaluated")
    if status["error"]:
        st.error(status["error"])
    if done:
        st.page_link("pages/surface.py", label="Open its surface", icon=":material/landscape:", query_params={"run": run_id[:12]})


watched_run()

st.subheader("Runs")
runs = api.runs_frame()
if runs.empty:
    st.info("No runs yet: click a preset above, or run `python -m engine run --preset quickstart`.")
else:
    st.dataframe(
        runs.assign(run_id=runs["run_id"].str[:12]).drop(columns=["error"]).head(20),
        hide_index=True, width="stretch",
    )
