"""Home: what AER Lab is, the presets gallery, and the runs at a glance."""

import streamlit as st

from engine import api
from engine.errors import EngineError
from pages import derived, job_row, queue_refresh, read, route_through_app
from pages.parts.presets import estimate_line, preset_run_id
from pages.parts.tour import tour_card, tour_questions, tour_row

route_through_app()


st.title("AER Lab")
st.markdown(
    "Explore the **accuracy–efficiency–robustness** trade-off of pruned neural networks: train a small "
    "model, prune it step by step, attack every checkpoint, and see where robustness collapses. "
    "Every run is cached by its spec, so the same question is never computed twice."
)


def start(name: str) -> None:
    """Queue a preset (or find its live or finished job) and follow it on this page."""
    try:
        st.session_state["watching"] = api.submit(api.load_spec(preset=name)).job_id
    except EngineError as exc:
        st.session_state["launch_error"] = str(exc)


tour_card()

st.subheader("Presets")
presets = api.presets()
columns = st.columns(min(len(presets), 3) or 1)
for i, (name, text) in enumerate(presets.items()):
    with columns[i % len(columns)].container(border=True):
        st.markdown(f"**{name}**")
        st.caption(text)
        st.caption(f":material/timer: {derived(estimate_line, name)}")
        st.button(f"Run {name}", key=f"run-{name}", on_click=start, args=(name,), type="primary")

if "launch_error" in st.session_state:
    st.error(st.session_state.pop("launch_error"))


def start_paper(name: str) -> None:
    """Queue every variant of a paper preset; the page then opens that paper's page."""
    try:
        api.submit_paper(name)
        st.session_state["open-paper"] = name
    except EngineError as exc:
        st.session_state["launch_error"] = str(exc)


def paper_card(name: str, preset) -> None:
    """One paper preset: its claim, cold run time, a button that runs it and opens its page."""
    st.markdown(f"**{preset.title}**")
    st.caption(preset.claim)
    cold = (
        f"≈ {preset.cold_seconds / 60:.0f} min cold on 2 CPU cores" if preset.cold_seconds else "cold time not measured"
    )
    st.caption(f":material/timer: {cold} · {preset.n_runs()} runs, one shared base")
    st.button("Run and check the claim", key=f"paper-{name}", type="primary", on_click=start_paper, args=(name,))
    st.page_link("pages/papers.py", label="Open", icon=":material/menu_book:", query_params={"paper": name})


def walk_through() -> None:
    """A class's path through the product: one sentence and one link per step, on the teaching run."""
    run = derived(preset_run_id, "teaching")[:12]
    with st.expander("Teaching walk-through: eleven questions for a class", icon=":material/school:"):
        st.markdown(
            "1. **Run it.** Click *Run teaching* above: a LeNet-5 is trained, pruned from 2× to 64× "
            "(50 → 98.4 %) in six levels with fine-tuning after each, and attacked at every level; it takes "
            "about a minute."
        )
        st.markdown(
            "2. **Read the surface.** Robust accuracy falls as the attacker gets stronger; along sparsity it "
            "holds, then collapses. Where is the cliff? The sentence above the plot names it, with its interval."
        )
        st.page_link(
            "pages/surface.py", label="Open the surface", icon=":material/landscape:", query_params={"run": run}
        )
        st.markdown(
            "3. **Find the sweet spot.** On the heat map, a ★ marks a pruned checkpoint as robust as the "
            "dense one at that ε, within 2 pt on the same images (☆: too close to tell): how sparse can the model "
            "get for free?"
        )
        st.page_link(
            "pages/surface.py",
            label="Open the heat map",
            icon=":material/grid_on:",
            query_params={"run": run, "view": "heat map"},
        )
        st.markdown(
            "4. **Ask what if.** Fork the run, switch the schedule from *iterative* to *one_shot*, and submit: "
            "the base is shared, so only pruning and attacks are computed."
        )
        st.page_link(
            "pages/runs.py",
            label="What if… (fork the teaching run)",
            icon=":material/call_split:",
            query_params={"fork": run},
        )
        st.markdown(
            "5. **Compare.** The what-if opens Compare with both runs: where do the curves part, and is the "
            "gap larger than the grey noise band?"
        )
        st.markdown("**After the tour** (the button above), six more questions, each answered on one page:")
        for question, links in derived(tour_questions).items():
            st.markdown(question)
            for path, label, icon, query in links:
                st.page_link(path, label=label, icon=icon, query_params=query)


walk_through()

st.subheader("One click per paper")
st.markdown("Each seed paper's experiment, shrunk to minutes on a laptop CPU, with its claim checked on the results.")
papers = derived(api.paper_presets)
paper_columns = st.columns(min(len(papers), 3) or 1)
for i, (name, preset) in enumerate(papers.items()):
    with paper_columns[i % len(paper_columns)].container(border=True):
        paper_card(name, preset)
if "open-paper" in st.session_state:
    st.switch_page("pages/papers.py", query_params={"paper": st.session_state.pop("open-paper")})


@st.fragment(run_every=queue_refresh())
def jobs_at_a_glance() -> None:
    """The job started from this page and every live job, redrawn every two seconds while one computes."""
    if tour := st.session_state.get("tour"):
        st.subheader("The tour")
        tour_row(tour)
    watching = st.session_state.get("watching")
    shown = [j for j in read("jobs", limit=50) if j.job_id == watching or j.status in api.LIVE_JOBS][:6]
    if shown:
        st.subheader("Jobs")
    for job in shown:
        job_row(job)


jobs_at_a_glance()

st.subheader("Runs")
runs = read("runs_frame")
if runs.empty:
    st.info("No runs yet: click a preset above, or run `python -m engine run --preset quickstart`.")
else:
    st.dataframe(
        runs.assign(run_id=runs["run_id"].str[:12]).drop(columns=["error"]).head(20),
        hide_index=True,
        width="stretch",
    )
