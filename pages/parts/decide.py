""" "Decide this": beside a comparison its images cannot decide, the button that grows them until they do
(engine/jobs/decide.py), with its cost, and the job's progress while the workers grow it."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from engine import api
from engine.errors import SpecError
from engine.report import figures
from engine.report.summaries import SWEET_SPOT_MARGIN

Checkpoint = tuple[str, int]


def cost_line(cost: Any) -> str:
    """What growing may take, in words: images that may decide it, seconds per chunk, what is left."""
    parts = []
    if cost.images_to_decide:
        parts.append(f"roughly {cost.images_to_decide:,} images in all would decide it")
    if cost.seconds_per_chunk:
        parts.append(f"about {cost.seconds_per_chunk:,.0f} s per 500 more")
    parts.append(f"at most {cost.images_left:,} more images in the test split")
    return "; ".join(parts)


def decide_button(
    place: Any, first: Checkpoint, second: Checkpoint, attack: str, eps: float, margin: float = 0.0, key: str = "decide"
) -> None:
    """In `place`: for an undecided comparison that can grow, a "Decide this" button and its cost; while a
    job grows it, that job's progress; once grown, nothing (the comparison above shows the new n)."""
    try:
        state = api.decision(first, second, attack, eps, margin)
    except SpecError as exc:
        place.caption(f"Cannot grow this comparison: {exc.problems[0]}")
        return
    if state["job_id"] is not None:
        with place:
            _follow(state["job_id"])
        return
    if state["verdict"] != api.Decision.INCONCLUSIVE:
        return
    if not state["can_grow"]:
        place.caption("Undecided, and the test split is spent: on this data set the two cannot be told apart here.")
        return
    place.caption(
        f"The {state['difference'].n:,} images cannot decide this. {cost_line(state['cost'])}. Deciding attacks "
        "further images of the test split on both checkpoints, 500 at a time, until the interval decides."
    )
    if place.button("Decide this", key=key, icon=":material/balance:"):
        api.submit_decision(first, second, attack, eps, margin)
        st.rerun()


@st.fragment(run_every=2)
def _follow(job_id: int) -> None:
    """The growing job's progress, every two seconds; the whole page redraws when it ends (the new n)."""
    job = api.job(job_id)
    if job.status not in api.LIVE_JOBS:
        st.rerun(scope="app")
    st.progress(min(float(job.fraction or 0.0), 1.0), text=f"Deciding (job {job_id}): {job.phase or 'queued'}")


def undecided_sweet_spots(place: Any, spots: pd.DataFrame, norm: str) -> None:
    """In `place`: the sweet spots these images cannot tell (☆), one chosen, with its "Decide this" (is the
    pruned checkpoint within 2 pt of the dense one?)."""
    open_ = spots[spots["verdict"] == api.Decision.INCONCLUSIVE]
    if open_.empty:
        return
    choices = list(open_.itertuples(index=False))
    spot = place.selectbox(
        "☆ Undecided sweet spot",
        choices,
        format_func=lambda r: f"step {r.step} · sparsity {r.sparsity:.0%} · ε = {figures.eps_label(r.eps, norm)}",
        help="Is this pruned checkpoint within 2 pt of the dense model? Its images cannot tell yet.",
    )
    decide_button(place, (spot.run_id, int(spot.step)), (spot.run_id, 0), spot.attack, float(spot.eps),
                  SWEET_SPOT_MARGIN, key="decide-spot")  # fmt: skip


def decide_claim(place: Any, name: str, status: str) -> None:
    """In `place`, beside a paper claim its images cannot decide: the growth plan and "Decide this", which
    grows the claim look by look through the workers (the next look queued each time one ends while the
    claim stays open); while a look grows, its progress."""
    flag = f"deciding-{name}"
    if status != api.Decision.INCONCLUSIVE:
        st.session_state.pop(flag, None)
        return
    state = api.claim_decision(name)
    if state["refused"]:
        place.caption(f"More images cannot decide this claim here: {state['refused']}.")
        return
    plan = state["plan"]
    if state["job_id"] is not None:
        job = api.job(state["job_id"])
        fraction = min(float(job.fraction or 0.0), 1.0)
        place.progress(fraction, text=f"Deciding (job {state['job_id']}): {job.phase or 'queued'}")
        return
    if plan.growth is None:
        place.caption(f"Still undecided on the whole test split: {plan.line()}.")
        return
    if st.session_state.get(flag):
        api.submit_claim_look(name)
        st.rerun(scope="app")
    place.caption(
        f"These images cannot decide the claim. Deciding attacks further images of the test split on every "
        f"checkpoint the claim reads, look by look: {plan.line()}."
    )
    if place.button("Decide this", key=f"decide-claim-{name}", icon=":material/balance:"):
        st.session_state[flag] = True
        api.submit_claim_look(name)
        st.rerun(scope="app")
