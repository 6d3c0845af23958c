"""Papers: each seed paper's experiment at laptop scale, its figure from our store, its claim checked."""

import streamlit as st

from engine import api
from engine.errors import EngineError
from pages import choice_from_query, read, route_through_app
from pages.parts.decide import decide_claim

route_through_app()

st.title("Papers, reproduced small")
st.markdown(
    "Each preset shrinks one seed paper's experiment to a laptop CPU (Fashion-MNIST, small CNNs, minutes "
    "instead of GPU-days), runs its variants from one shared base model, redraws the paper's figure from the "
    "store and says whether the paper's claim holds **in this run**, with the numbers. At this scale some "
    "claims do not hold; the verdict says so rather than tuning the experiment until they do."
)

presets = api.paper_presets()
names = list(presets)
name = (
    st.segmented_control(
        "Paper", names, default=choice_from_query("paper", names, names[0]), format_func=lambda n: presets[n].title
    )
    or names[0]
)
st.query_params["paper"] = name
preset = presets[name]


def start() -> None:
    """Queue every variant of the chosen paper preset (finished runs are not computed again)."""
    try:
        api.submit_paper(name)
    except EngineError as exc:
        st.session_state["paper-error"] = str(exc)


st.subheader(preset.title)
st.caption(preset.paper)
st.markdown(f"**The claim.** {preset.claim}")
st.caption(api.paper_judged_by(name))
cold = f"about {preset.cold_seconds / 60:.0f} minutes" if preset.cold_seconds else "not measured yet"
left, right = st.columns([1, 3])
left.button(f"Run its {preset.n_runs()} runs", on_click=start, type="primary", key=f"run-paper-{name}")
right.caption(
    f"From an empty cache on 2 CPU cores: {cold}. Finished runs are read from the cache at once. "
    f"CLI: `python -m engine run-paper {name}`, then `python -m engine check-preset {name}`."
)
if "paper-error" in st.session_state:
    st.error(st.session_state.pop("paper-error"))

specs = api.paper_specs(name)
VERDICT_STYLE = {
    api.Decision.HOLDS: st.success,
    api.Decision.FAILS: st.warning,
    api.Decision.INCONCLUSIVE: st.info,
    api.Decision.INCOMPLETE: st.info,
}
MARKS = {
    api.Decision.HOLDS: ":green[holds]",
    api.Decision.FAILS: ":orange[does not hold]",
    api.Decision.INCONCLUSIVE: ":gray[cannot be decided yet]",
}


def live_jobs() -> dict[str, api.Job]:
    """Variant label → its job, for the variants whose run is queued or computing."""
    jobs = {label: read("latest_job", spec.run_id()) for label, spec in specs.items()}
    return {label: job for label, job in jobs.items() if job and job.status in api.LIVE_JOBS}


@st.fragment(run_every=3 if live_jobs() or api.claim_job(name) is not None else None)
def draw() -> None:
    """Verdict, findings, the paper's figures and the numbers; redrawn while a variant computes."""
    results = read("paper_results", name)
    for label, job in live_jobs().items():
        st.progress(float(job.fraction or 0.0), text=f"{label} · {api.describe_job(job)}")
    verdict = api.paper_verdict(name, results)
    VERDICT_STYLE[verdict.status](
        verdict.headline
        if verdict.status != api.Decision.INCOMPLETE
        else f"{verdict.headline}. Click “Run” above, or run `python -m engine run-paper {name}`."
    )
    for finding in verdict.findings:
        decide = f" *What would decide it:* {finding.to_decide}." if finding.to_decide else ""
        st.markdown(f"- {MARKS[finding.status]} — {finding.claim}: {finding.numbers}.{decide}")
    for note in verdict.notes:
        st.markdown(f"- :blue[reported, not judged] — {note}.")
    st.caption(
        "Each part is decided from the 95 % interval of its statistic (paired over the shared evaluation "
        "images): it holds when the interval clears the bar, fails when it lies below, and cannot be "
        "decided while it straddles it. An evaluation grown to decide is read at planned looks, each at the "
        "stricter level the headline states."
    )
    decide_claim(st.container(), name, verdict.status)
    if results.robust.empty:
        return
    if len(preset.seeds) > 1:
        st.caption(f"The verdict combines seeds {preset.seeds}; the figures show seed {preset.seeds[0]}.")
    for i, figure in enumerate(api.paper_figures(name, results)):
        st.plotly_chart(figure, width="stretch", key=f"paper-figure-{i}")
    with st.expander("How to read these figures"):
        st.markdown(preset.figure_note or preset.claim)
    if not verdict.table.empty:
        with st.expander("The numbers behind the verdict"):
            st.dataframe(verdict.table, hide_index=True, width="stretch")
    if not verdict.reference.empty:
        with st.expander("PGD against AutoAttack, checkpoint by checkpoint"):
            st.caption(
                "`above`: PGD's accuracy minus AutoAttack's on the same images, with its interval at the "
                "Bonferroni level over the checkpoints. Above zero, PGD missed adversarial examples that "
                "AutoAttack found: its accuracy over-reports robustness there."
            )
            st.dataframe(verdict.reference, hide_index=True, width="stretch")
    run_ids = ",".join(r[:12] for label, r in results.run_ids.items() if results.status[label] != api.RunStatus.MISSING)
    st.page_link(
        "pages/compare.py", label="Compare these runs", icon=":material/compare_arrows:", query_params={"runs": run_ids}
    )


draw()
