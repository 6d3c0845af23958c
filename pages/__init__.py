"""Helpers shared by the pages (Streamlit's page discovery skips this file)."""

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from engine import api
from engine.errors import EngineError
from engine.report.tables import match_runs


@st.cache_data(show_spinner=False, max_entries=256)
def _read(root: str, version: int, name: str, args: tuple, kwargs: tuple) -> Any:
    return getattr(api, name)(*args, **dict(kwargs), store=api.open_store(root))


def read(name: str, *args: Any, **kwargs: Any) -> Any:
    """`engine.api.<name>(*args, **kwargs)` on this cache, computed once until the store next changes,
    so the redraws of one state share one query (lists in `args` must be passed as tuples)."""
    store = api.open_store()
    return _read(str(store.root), api.store_version(store), name, args, tuple(sorted(kwargs.items())))


@st.cache_data(show_spinner=False, max_entries=256)
def _derived(root: str, version: int, module: str, name: str, args: tuple) -> Any:
    return getattr(importlib.import_module(module), name)(*args)


def derived(function: Callable[..., Any], *args: Any) -> Any:
    """`function(*args)`, a pure reading of this cache (a summary, an estimate, the presets), computed once
    for every session until the store next changes: a class of twenty opening Home computes its cliff
    once, not twenty times. `function` lives in an importable module (engine.api, pages.parts.*), never
    in a page script; `args` are hashable."""
    store = api.open_store()
    return _derived(str(store.root), api.store_version(store), function.__module__, function.__qualname__, args)


T = TypeVar("T")


def chosen(value: T | None) -> T:
    """A selectbox's choice where it offers options and an index (Streamlit types every choice as optional,
    for a box without options); never None here."""
    if value is None:
        raise RuntimeError("a choice with options and an index came back empty")
    return value


def route_through_app() -> None:
    """Hand a page over to app.py's router when a fresh server ran it on its own.

    With a folder named pages/ beside app.py, Streamlit 1.67 answers the first visit to a deep link
    (/surface?…) by running that page alone under an auto-discovered page list. This switches the
    server to the router and reruns once per session (AppTest resets the switch before every run,
    so a rerun every time would drop its widget events).
    """
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        if not st.session_state.get("routed"):
            st.session_state["routed"] = True
            st.rerun()


def runs_from_query(name: str, run_ids: list[str], default: list[str]) -> list[str]:
    """The runs a link names (comma-separated id prefixes of at least 6 hex digits), else `default`.

    Unknown, ambiguous or malformed entries are dropped with one short note; nothing else is read.
    """
    raw = st.query_params.get(name)
    if raw is None:
        return default
    chosen, dropped = match_runs(raw, run_ids)
    if dropped:
        st.warning(f"Ignored {dropped} run(s) of the link that this store does not hold.")
    return chosen or default


def choice_from_query(name: str, choices: list, default):
    """A query parameter's value if it is one of `choices`, else `default` (with a short note)."""
    raw = st.query_params.get(name)
    if raw is None:
        return default
    for choice in choices:
        if str(choice) == raw:
            return choice
    st.toast(f"Ignored the link's {name!r}: not one of the available choices.")
    return default


def run_labels(runs: pd.DataFrame) -> dict[str, str]:
    """Run id → '1a2b3c4d5e6f · the spec in words'."""
    return {r.run_id: f"{r.run_id[:12]} · {r.label}" for r in runs.itertuples()}


def refresh_while_running(runs: pd.DataFrame, chosen: list[str], seconds: float = 3.0) -> float | None:
    """`run_every` for a fragment: redraw every few seconds while any chosen run still computes."""
    running = set(runs.loc[runs["status"] == api.RunStatus.RUNNING, "run_id"])
    return seconds if running & set(chosen) else None


def queue_refresh() -> float:
    """`run_every` for a page's list of jobs: every 2 s while a job is queued or computing, else every 10 s
    (a job submitted from another session still shows; an idle class does not keep the server busy)."""
    return 2.0 if any(job.status in api.LIVE_JOBS for job in read("jobs", limit=50)) else 10.0


def runs_with_checkpoints(runs: pd.DataFrame, at_least: int, message: str) -> pd.DataFrame:
    """The runs with at least `at_least` finished steps; when there are none, say what to run and stop."""
    runs = runs[runs["steps_done"] >= at_least]
    if runs.empty:
        st.info(message)
        st.stop()
    return runs


def what_if_link(run_id: str) -> None:
    """A sidebar link that opens the Runs page's what-if editor filled with this run's spec."""
    st.sidebar.page_link(
        "pages/runs.py",
        label="What if… (fork this run)",
        icon=":material/call_split:",
        query_params={"fork": run_id[:12]},
        help="Open this run's spec in the Runs editor, change a field, and compare the two runs.",
    )


def _cancel(job_id: int) -> None:
    api.cancel(job_id)


def _retry(job_id: int) -> None:
    api.retry(job_id)


def job_row(job: api.Job, retry: bool = False) -> list:
    """One job: live progress, Cancel while it is live (Retry once it ended, where asked), a link to its
    surface once it has a step; the row's columns, the last one free for the caller."""
    st.progress(float(job.fraction or 0.0), text=f"Job {job.job_id} · run {job.run_id[:12]} · {api.describe_job(job)}")
    columns = st.columns([1, 2, 1, 2])
    if job.status in api.LIVE_JOBS:
        columns[0].button("Cancel", key=f"cancel-{job.job_id}", on_click=_cancel, args=(job.job_id,))
    elif retry and job.status in api.ENDED_JOBS:
        columns[0].button("Retry", key=f"retry-{job.job_id}", on_click=_retry, args=(job.job_id,))
    if job.status == api.JobStatus.DONE or (job.step or 0) > 0:
        columns[1].page_link(
            "pages/surface.py",
            label="Open its surface",
            icon=":material/landscape:",
            query_params={"run": job.run_id[:12]},
        )
    return columns


def fill_view(view: str, message: str, parent: str | None = None) -> None:
    """An empty view's way out: why it is empty, what would fill it and its cost, and one button that
    queues those runs and follows them here (the CLI stays a hint in `message`, never the only way).
    While any run computes (a what-if just submitted, say), the page follows it and redraws itself at
    each checkpoint that lands, so it fills without a reload."""
    st.info(message)
    watched = st.session_state.get(f"filling-{view}")
    live = watched or [job.job_id for job in api.jobs(limit=20) if job.status in api.LIVE_JOBS]
    if live:
        _follow(view, live)
    if watched:
        return
    try:
        runs = api.filler(view, parent)
    except EngineError as exc:
        st.warning(str(exc))
        return
    st.caption(runs.line())
    if st.button("Fill this view", key=f"fill-{view}", type="primary", icon=":material/play_arrow:"):
        try:
            st.session_state[f"filling-{view}"] = [job.job_id for job in api.fill(view, parent)]
        except EngineError as exc:
            st.warning(str(exc))
            return
        st.rerun()


@st.fragment(run_every=2)
def _follow(view: str, job_ids: list[int]) -> None:
    """The computing runs' progress, redrawn every two seconds; the whole page redraws whenever one of
    them lands a checkpoint or ends (its data may now fill the view)."""
    jobs = [api.job(job_id) for job_id in job_ids]
    for job in jobs:
        job_row(job, retry=True)
    progress = [(job.job_id, job.status, job.step) for job in jobs]
    seen = st.session_state.setdefault(f"progress-{view}", progress)
    ended = all(job.status not in api.LIVE_JOBS for job in jobs)
    if progress != seen or (ended and f"filling-{view}" in st.session_state):
        st.session_state[f"progress-{view}"] = progress
        if ended:
            st.session_state.pop(f"filling-{view}", None)
        st.rerun(scope="app")
