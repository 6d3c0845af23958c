"""The tour on Home: its card and button, its runs' progress, and the walk-through questions that
open each view on the tour's own runs (a folder under pages/ is not a page: Streamlit lists only
pages/*.py)."""

import streamlit as st

from engine import api
from engine.errors import EngineError
from engine.report import summaries
from pages import derived, read

TOUR_PAGES = {
    "surface": ("pages/surface.py", "The cliff on the surface", ":material/landscape:"),
    "layers": ("pages/layers.py", "MRS heat map, layer by layer", ":material/stacks:"),
    "compare": ("pages/compare.py", "Magnitude vs random pruning", ":material/compare_arrows:"),
    "budget": ("pages/budget.py", "AP and BAP budgets", ":material/tune:"),
}


def tour_card():
    """The tour's card: what one click computes, its cost, and the button (its runs then follow on Home);
    returns the tour (engine.jobs.fillers.Tour)."""

    def take_tour() -> None:
        try:
            st.session_state["tour"] = api.start_tour()
        except EngineError as exc:
            st.session_state["launch_error"] = str(exc)

    tour = derived(api.tour)
    with st.container(border=True):
        st.markdown("**The tour: the trade-off in one click, every Explore page filled**")
        st.caption(tour.line())
        st.button("Take the tour", key="take-tour", on_click=take_tour, type="primary", icon=":material/explore:")
    return tour


def tour_questions() -> dict[str, list[tuple[str, str, str, dict[str, str]]]]:
    """Each question a class answers after the tour → the links (page, label, icon, query) of the exact views
    (pass it to `pages.derived`: one computation for every session until the store changes)."""
    tour = api.tour()
    run: dict[str, list[str]] = {view: [] for view in tour.views}
    for view, spec in zip(tour.views, tour.specs):
        run[view].append(spec.run_id()[:12])
    layers = run["layers"][0]
    return {
        "6. **Which layer is most sensitive?** The brightest row of the MRS heat map: a small nudge of its "
        "weights hurts robustness most.": [("pages/layers.py", "Open the MRS heat map", ":material/stacks:",
                                            {"run": layers, "view": "MRS heat map"})],
        "7. **Would MRPF have spared it, and did magnitude pruning?** MRPF prunes a layer less the more sensitive "
        "it is: its ratios beside the uniform share and what this run pruned, step by step.": [
            ("pages/layers.py", "Open the ratios", ":material/bar_chart:",
             {"run": layers, "view": "ratios at one step", "step": "1"})],
        "8. **Does an example crafted on the dense model still fool the pruned one?** Transfer against "
        "white-box accuracy, checkpoint by checkpoint.": [("pages/transfer.py", "Open Transfer",
                                                           ":material/swap_horiz:", {"run": layers})],
        "9. **Does the criterion matter?** Magnitude against random pruning of the same base: where do the "
        "curves part, beyond the grey noise?": [("pages/compare.py", "Open Compare", ":material/compare_arrows:",
                                                 {"runs": ",".join(run["surface"] + run["compare"]), "eps": "0.02"})],
        "10. **What did BAP's budget buy?** AP's fixed budget against BAP's per-example one, and the "
        "robustness each bought.": [("pages/budget.py", "Open Budget", ":material/tune:",
                                     {"runs": ",".join(run["budget"])})],
        "11. **What does the cliff look like on one image?** Attack the same images, at the cliff's ε, on the "
        "sparsest checkpoint that was free and on the sparsest of all: which one does the attack fool, and does "
        "the dense model see through it?": _playground_links(tour.specs[0].run_id()),
    }  # fmt: skip


def _playground_links(run_id: str) -> list[tuple[str, str, str, dict[str, str]]]:
    """Playground before and after the teaching run's cliff (summaries.cliff, once the run has its numbers;
    the middle and the last level before then)."""
    levels = len(api.load_spec(preset="teaching").schedule.plan())
    before, after, eps = levels // 2, levels, 0.01
    frame = read("robust_frame", (run_id,), flags=True)  # per-image flags: the cliff is a paired test
    collapse = summaries.cliff(frame)
    if collapse is not None and collapse.free_step is not None and collapse.step is not None:
        before, after, eps = collapse.free_step, collapse.step, collapse.eps
    query = {"run": run_id[:12], "attack": "pgd_linf", "eps": f"{eps:g}", "img": "0"}
    return [
        ("pages/playground.py", f"Before the cliff (step {before})", ":material/science:",
         {**query, "step": str(before)}),
        ("pages/playground.py", f"After the cliff (step {after})", ":material/science:",
         {**query, "step": str(after)}),
    ]  # fmt: skip


def tour_row(tour: list[dict]) -> None:
    """The tour's runs: one progress line each, and a link to its view once its run has a checkpoint."""
    runs: dict[str, list[str]] = {entry["view"]: [] for entry in tour}
    for entry in tour:
        runs[entry["view"]].append(entry["run_id"])
    for entry in tour:
        job = api.job(entry["job_id"])
        path, label, icon = TOUR_PAGES[entry["view"]]
        columns = st.columns([3, 2])
        columns[0].progress(float(job.fraction or 0.0), text=f"{label} · {api.describe_job(job)}")
        if (job.step or 0) > 0 or job.status == api.JobStatus.DONE:
            columns[1].page_link(path, label=f"Open: {label}", icon=icon, query_params=_tour_query(entry, runs))
    if "layers" in runs:
        st.page_link(
            "pages/transfer.py",
            label="Open: base-crafted examples on every pruned checkpoint (Transfer)",
            icon=":material/swap_horiz:",
            query_params={"run": runs["layers"][0][:12]},
        )


def _tour_query(entry: dict, runs: dict[str, list[str]]) -> dict[str, str]:
    """The link that opens a tour run's view on exactly that run (and its partner)."""
    run = entry["run_id"][:12]
    if entry["view"] == "surface":
        return {"run": run, "view": "heat map"}
    if entry["view"] == "layers":
        return {"run": run, "view": "MRS heat map"}
    if entry["view"] == "compare":  # at a small ε, where magnitude and random pruning part
        return {"runs": ",".join(r[:12] for r in runs["surface"] + runs["compare"]), "eps": "0.02"}
    return {"runs": ",".join(r[:12] for r in runs["budget"])}
