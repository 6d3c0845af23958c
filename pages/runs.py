"""Runs: submit a spec (form or YAML), follow the queue live, cancel, retry, export."""

import streamlit as st

from engine import api
from engine.errors import EngineError, SpecError
from pages import (
    job_row,
    queue_refresh,
    read,
    route_through_app,
    run_labels,
    runs_from_query,
)
from pages.parts.bring import bring_your_own
from pages.parts.exports import export_buttons
from pages.parts.schedule import schedule_editor, schedule_preview

route_through_app()


st.title("Runs")
st.markdown(
    "Submit a pruning run and follow it here. Workers compute in the background, so you can close "
    "the tab and come back; a run asked for twice is computed once."
)


def submit(tree_or_text) -> None:
    """Validate and queue; keep the per-field problems for display instead of submitting."""
    try:
        if isinstance(tree_or_text, str):
            specs = api.specs_from_text(tree_or_text)
        else:
            specs = api.validate_trees(tree_or_text)
        jobs = api.submit_all(specs, allow_long=st.session_state.get("allow-long", False))  # one run per seed
        st.session_state["submitted"] = " ".join(
            f"Queued as job {job.job_id} (run {job.run_id[:12]}, seed {spec.seed}): {job.status}."
            for job, spec in zip(jobs, specs)
        )
    except SpecError as exc:
        st.session_state["problems"] = exc.problems


@st.cache_resource(show_spinner=False)
def registry_names() -> dict[str, list[str]]:
    """Every registry's names (imports torch once per server)."""
    return {kind: list(entries) for kind, entries in api.catalog().items()}


st.checkbox(
    "Allow a long run",
    key="allow-long",
    help=f"A run estimated above {api.MAX_WORK:,} example-passes (hours on a laptop) is refused unless this is ticked.",
)
catalog = registry_names()
runs = read("runs_frame")


def cost_line(tree: dict) -> None:
    """The run's expected time before it is queued (nothing while the spec has a problem: submit names it)."""
    try:
        specs = api.validate_trees(tree)
    except SpecError:
        return
    lines = [api.estimate(spec) for spec in specs]
    if len(specs) == 1:
        st.caption(f":material/timer: {lines[0].line()}")
    else:  # one run per seed: what the whole submission will queue
        total = sum(estimate.seconds for estimate in lines)
        st.caption(
            f":material/timer: {len(specs)} runs (one per seed), ≈ {api.duration(total)} in all; the first: "
            f"{lines[0].line()}"
        )


forked = runs_from_query("fork", list(runs["run_id"]), [])


def what_if(parent: str) -> None:
    """The parent's spec in an editor: its schedule as widgets with a live preview over the parent's,
    everything else as YAML; the fields that differ are listed; submit queues the child and opens
    Compare with both."""
    parent_tree = read("spec_tree", parent)
    st.subheader("What if…")
    st.markdown(f"Forked from **{run_labels(runs)[parent]}**. Change anything; the changes are listed below.")
    schedule = schedule_editor("fork", parent_tree["schedule"], catalog["schedule"])
    valid = schedule_preview(schedule, parent_tree["schedule"], key="fork-preview")
    rest = {key: value for key, value in parent_tree.items() if key != "schedule"}
    text = st.text_area("Everything else (the parent's spec)", api.spec_text(rest), height=260, key="fork-text")
    try:
        specs = api.validate_trees({**api.parse_text(text), "schedule": schedule}) if valid else []
    except SpecError as exc:
        for line in exc.problems:
            st.error(line)
        return
    if not specs:
        return
    child = specs[0]
    st.caption(api.estimate(child).line())
    changed = api.fork_changes(parent, child)
    if not changed:
        st.info("Nothing changed yet: this is the parent run.")
        return
    st.markdown("**Changed from the parent**\n" + "\n".join(f"- :orange[{line}]" for line in changed))
    st.caption(api.fork_reuse(parent, child))
    if st.button("Submit the what-if", type="primary", key="fork-submit"):
        try:
            api.submit(child, allow_long=st.session_state.get("allow-long", False), parent=parent)
        except SpecError as exc:
            st.session_state["problems"] = exc.problems
            return
        st.switch_page("pages/compare.py", query_params={"runs": f"{parent[:12]},{child.run_id()[:12]}"})


if forked:
    what_if(forked[0])
    st.divider()

form_tab, yaml_tab, bring_tab = st.tabs(["Form", "YAML", "Your model & data"])
with yaml_tab.expander("Attacks a spec may name, with their options (types, ranges, defaults)"):
    st.markdown("\n".join(f"- **{name}**: {text}" for name, text in api.catalog()["attack"].items()))
with form_tab:
    schedule = schedule_editor("form", api.schedule_start("gradual"), catalog["schedule"])
    schedule_preview(schedule, key="form-preview")
    with st.container(border=True):  # not a form: the estimate below follows every change
        left, right = st.columns(2)
        presets = list(api.presets())
        preset = left.selectbox("Start from preset", presets, index=presets.index("quickstart"))
        methods, modes = list(catalog["pruning method"]), list(catalog["training mode"])
        method = right.selectbox(
            "Pruning method",
            methods,
            index=methods.index("global_magnitude"),
            help="Structured methods (filter_*, kernel_*, mrpf) prune conv layers only; hydra and "
            "lwm go with a one-shot schedule.",
        )
        base_mode = left.selectbox("Base training", modes, index=modes.index("natural"))
        finetune = right.selectbox(
            "Fine-tuning loss",
            [api.SAME_AS_BASE, *modes],
            help="ap: 0.5 clean + 0.5 adversarial at a fixed ε; bap: per-example budgets from "
            "DeepFool, capped at the batch mean (see the Budget page).",
        )
        train_eps = left.number_input("Training ε (L∞, [0, 1] scale)", 0.0, 1.0, 0.1, 0.01)
        eps_text = right.text_input("PGD L∞ ε (comma-separated, [0, 1] scale)", "0, 0.01, 0.02, 0.04, 0.08")
        seed = left.number_input("Seed", 0, 2**31 - 1, 0)
        mrs = right.checkbox("Measure every layer's MRS at every step (Layers page)")
        tree = api.form_tree(
            preset, api.FormChoices(method, schedule, base_mode, finetune, train_eps, eps_text, seed, mrs)
        )
        cost_line(tree)
        if st.button("Submit", type="primary"):
            submit(tree)

with bring_tab:
    bring_your_own(catalog["model"], catalog["dataset"], submit)

with yaml_tab:
    upload = st.file_uploader("Or upload a spec (YAML or JSON; checked by its content)", type=None)
    if upload is not None and upload.size > api.MAX_SPEC_BYTES:
        st.error(f"upload: larger than {api.MAX_SPEC_BYTES:,} bytes; a spec is a few hundred")
        upload = None
    default = (
        upload.getvalue().decode("utf-8", errors="replace") if upload else api.preset_path("quickstart").read_text()
    )
    text = st.text_area("Spec", default, height=320)
    yaml_tree: dict | None = None  # a text that does not parse: submit names the problem
    try:
        yaml_tree = api.parse_text(text)
    except SpecError:
        pass
    if isinstance(yaml_tree, dict) and isinstance(yaml_tree.get("schedule"), dict):
        schedule_preview(yaml_tree["schedule"], key="yaml-preview")
        cost_line(yaml_tree)
    if st.button("Submit YAML", type="primary"):
        submit(text)

for line in st.session_state.pop("problems", []):
    st.error(line)
if "submitted" in st.session_state:
    st.success(st.session_state.pop("submitted"))


@st.fragment(run_every=queue_refresh())
def queue_view() -> None:
    """The newest jobs with live progress, cancel, retry, links and exports."""
    jobs = read("jobs", limit=30)
    if not jobs:
        st.info("The queue is empty: submit a spec above, or click a preset on Home.")
        return
    for job in jobs:
        with st.container(border=True):
            columns = job_row(job, retry=True)
            if job.status == api.JobStatus.DONE:
                with columns[3]:
                    export_buttons(job.run_id, str(job.job_id))


st.subheader("Queue")
try:
    queue_view()
except EngineError as exc:
    st.error(str(exc))
