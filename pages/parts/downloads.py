"""Take a checkpoint with you: its weights and masks, its ONNX model and, for filter pruning, the physically
smaller model, each made when its button is clicked (Playground and Surface)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from engine import api

VARIANTS = (
    (False, "safetensors", "", "weights and pruning masks"),
    (False, "onnx", "", "the model, for deployment (takes images in [0, 1])"),
    (True, "safetensors", " smaller", "physically smaller model's weights (pruned filters removed)"),
    (True, "onnx", " smaller", "physically smaller model, for deployment"),
)


def has_smaller_model(efficiency: pd.DataFrame, step: int) -> bool:
    """Whether checkpoint `step` has a physically smaller model (its efficiency row measured one)."""
    row = efficiency[efficiency["step"] == step]
    return not row.empty and pd.notna(row["shrunk_params"].iloc[0])


def checkpoint_downloads(place: Any, run_id: str, step: int, smaller: bool) -> None:
    """Download buttons for checkpoint `step` of `run_id` in `place` (a column, the sidebar); with `smaller`,
    also the physically smaller model's."""
    for shrunk, fmt, tag, what in VARIANTS:
        if shrunk and not smaller:
            continue
        flag = " --shrunk" if shrunk else ""
        place.download_button(
            f"Step {step}{tag} as {fmt}",
            lambda fmt=fmt, shrunk=shrunk: api.model_file(run_id, step, fmt, shrunk=shrunk),  # made when clicked
            f"{run_id[:12]}-step{step}{tag.strip() and '-smaller'}.{fmt}",
            "application/octet-stream",
            help=f"This checkpoint's {what} (engine export {run_id[:12]} --step {step} --format {fmt}{flag}).",
            icon=":material/download:",
            key=f"download-{fmt}{tag.strip()}",
        )


def take_away(run_id: str, frame: pd.DataFrame, efficiency: pd.DataFrame) -> None:
    """Choose one checkpoint of the run (robust `frame`) and download it (Surface)."""
    sparsity = frame.groupby("step")["sparsity"].first()
    steps = list(sparsity.index)
    left, right = st.columns([2, 3])
    step = left.selectbox(
        "Take a checkpoint with you",
        steps,
        index=len(steps) - 1,
        format_func=lambda k: f"step {k} · sparsity {sparsity[k]:.1%}",
        key="take-away",
    )
    checkpoint_downloads(right, run_id, step, has_smaller_model(efficiency, step))
