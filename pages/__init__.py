"""Helpers shared by the pages (Streamlit's page discovery skips this file)."""

from typing import Any

import pandas as pd
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from engine import api
from engine.report.tables import match_runs


@st.cache_data(show_spinner=False, max_entries=256)
def _read(root: str, version: int, name: str, args: tuple, kwargs: tuple) -> Any:
    return getattr(api, name)(*args, **dict(kwargs), store=api.open_store(root))


def read(name: str, *args: Any, **kwargs: Any) -> Any:
    """`engine.api.<name>(*args, **kwargs)` on this cache, computed once until the store next changes,
    so the redraws of one state share one query (lists in `args` must be passed as tuples)."""
    store = api.open_store()
    return _read(str(store.root), api.store_version(store), name, args, tuple(sorted(kwargs.items())))


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


def runs_with_checkpoints(runs: pd.DataFrame, at_least: int, message: str) -> pd.DataFrame:
    """The runs with at least `at_least` finished steps; when there are none, say what to run and stop."""
    runs = runs[runs["steps_done"] >= at_least]
    if runs.empty:
        st.info(message)
        st.stop()
    return runs
