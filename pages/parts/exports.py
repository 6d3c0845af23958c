"""Downloads of a finished run's results, made when clicked."""

import json

import streamlit as st

from engine import api


def export_buttons(run_id: str, key: str) -> None:
    """CSV and JSON downloads of a finished run's results."""
    left, right = st.columns(2)
    # callables: the files are made when clicked, not on every redraw of the queue
    left.download_button(
        "CSV",
        lambda: api.robust_frame([run_id]).to_csv(index=False),
        f"{run_id[:12]}.csv",
        "text/csv",
        key=f"csv-{key}",
    )
    right.download_button(
        "JSON",
        lambda: json.dumps(api.document(run_id), indent=2),
        f"{run_id[:12]}.json",
        "application/json",
        key=f"json-{key}",
    )
