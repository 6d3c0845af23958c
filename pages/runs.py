"""Runs: submit a spec (form or YAML), follow the queue live, cancel, retry, export."""

import json

import streamlit as st

from engine import api
from engine.errors import EngineError, SpecError
from pages import read, route_through_app

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
        allow_long = st.session_state.get("allow-long", False)
        for spec in specs:  # nothing is queued unless every seed's run is within the bound or allowed
            api.check_work(spec, allow_long)
        jobs = [api.submit(spec, allow_long=allow_long) for spec in specs]  # a list of seeds: one run each
        st.session_state["submitted"] = " ".join(
            f"Queued as job {job['job_id']} (run {job['run_id'][:12]}, seed {spec.seed}): {job['status']}."
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
form_tab, yaml_tab = st.tabs(["Form", "YAML"])
catalog = registry_names()
with form_tab, st.form("spec-form"):
    left, right = st.columns(2)
    preset = left.selectbox("Start from preset", list(api.presets()), index=list(api.presets()).index("quickstart"))
    method = right.selectbox(
        "Pruning method",
        list(catalog["pruning method"]),
        index=list(catalog["pruning method"]).index("global_magnitude"),
        help="Structured methods (filter_*, kernel_*, mrpf) prune conv layers only; hydra and "
        "lwm go with a one-shot schedule.",
    )
    schedule = left.radio("Schedule", ["gradual", "one-shot"], horizontal=True)
    final = right.slider("Final sparsity", 0.10, 0.99, 0.90, 0.01)
    steps = left.slider("Pruning steps", 2, 10, 5)
    base_mode = right.selectbox("Base training", ["natural", "pgd_at", "trades"])
    finetune = left.selectbox(
        "Fine-tuning loss",
        ["same as base", "natural", "pgd_at", "trades", "ap", "bap"],
        help="ap: 0.5 clean + 0.5 adversarial at a fixed ε; bap: per-example budgets from "
        "DeepFool, capped at the batch mean (see the Budget page).",
    )
    train_eps = right.number_input("Training ε (L∞, [0, 1] scale)", 0.0, 1.0, 0.1, 0.01)
    eps_text = left.text_input("PGD L∞ ε (comma-separated, [0, 1] scale)", "0, 0.01, 0.02, 0.04, 0.08")
    seed = right.number_input("Seed", 0, 2**31 - 1, 0)
    mrs = left.checkbox("Measure every layer's MRS at every step (Layers page)")
    if st.form_submit_button("Submit", type="primary"):
        choices = api.FormChoices(method, schedule, final, steps, base_mode, finetune, train_eps, eps_text, seed, mrs)
        submit(api.form_tree(preset, choices))

with yaml_tab:
    upload = st.file_uploader("Or upload a spec (YAML or JSON; checked by its content)", type=None)
    if upload is not None and upload.size > api.MAX_SPEC_BYTES:
        st.error(f"upload: larger than {api.MAX_SPEC_BYTES:,} bytes; a spec is a few hundred")
        upload = None
    default = (
        upload.getvalue().decode("utf-8", errors="replace") if upload else api.preset_path("quickstart").read_text()
    )
    text = st.text_area("Spec", default, height=320)
    if st.button("Submit YAML", type="primary"):
        submit(text)

for line in st.session_state.pop("problems", []):
    st.error(line)
if "submitted" in st.session_state:
    st.success(st.session_state.pop("submitted"))


def export_buttons(run_id: str, key: str) -> None:
    """CSV and JSON downloads of a finished run's results."""
    left, right = st.columns(2)
    left.download_button(
        "CSV", api.robust_frame([run_id]).to_csv(index=False), f"{run_id[:12]}.csv", "text/csv", key=f"csv-{key}"
    )
    right.download_button(
        "JSON", json.dumps(api.document(run_id), indent=2), f"{run_id[:12]}.json", "application/json", key=f"json-{key}"
    )


@st.fragment(run_every=2)
def queue_view() -> None:
    """The newest jobs with live progress, cancel, retry, links and exports."""
    jobs = read("jobs", limit=30)
    if not jobs:
        st.info("The queue is empty: submit a spec above, or click a preset on Home.")
        return
    for job in jobs:
        with st.container(border=True):
            st.progress(
                float(job["fraction"] or 0.0),
                text=f"Job {job['job_id']} · run {job['run_id'][:12]} · {api.describe_job(job)}",
            )
            cols = st.columns([1, 1, 2, 2])
            if job["status"] in api.LIVE_JOBS:
                cols[0].button("Cancel", key=f"cancel-{job['job_id']}", on_click=api.cancel, args=(job["job_id"],))
            if job["status"] in api.ENDED_JOBS:
                cols[0].button("Retry", key=f"retry-{job['job_id']}", on_click=api.retry, args=(job["job_id"],))
            if job["status"] == api.JobStatus.DONE or (job["step"] or 0) > 0:
                cols[1].page_link(
                    "pages/surface.py",
                    label="Surface",
                    icon=":material/landscape:",
                    query_params={"run": job["run_id"][:12]},
                )
            if job["status"] == api.JobStatus.DONE:
                with cols[3]:
                    export_buttons(job["run_id"], str(job["job_id"]))


st.subheader("Queue")
try:
    queue_view()
except EngineError as exc:
    st.error(str(exc))
