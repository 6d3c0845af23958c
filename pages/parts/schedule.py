"""The schedule editor and its preview, shared by the Runs page's form and its what-if fork (a folder
under pages/ is not a page)."""

import streamlit as st

from engine import api
from engine.report import figures


def _number(field, value, key: str):
    """A number widget for a numeric schedule field, typed and bounded as the field is."""
    cast = int if field.kind == "int" else float
    bounds = {
        name: cast(bound) for name, bound in (("min_value", field.low), ("max_value", field.high)) if bound is not None
    }
    value = None if value is None else cast(value)
    step, fmt = (1, "%d") if field.kind == "int" else (0.01, "%.4f")
    return st.number_input(field.name, value=value, step=step, format=fmt, help=field.help, key=key, **bounds)  # type: ignore[call-overload]  # int or float by the field


def schedule_editor(key: str, start: dict, names: list[str]) -> dict:
    """Widgets for every field of the chosen registered schedule (from its model: a schedule registered
    later appears with no page change), starting from `start`; the schedule tree they describe."""
    name = st.selectbox("Schedule", names, index=names.index(start.get("name", names[0])), key=f"{key}-schedule")
    base = start if name == start.get("name") else api.schedule_start(name)
    tree: dict = {"name": name}
    columns = st.columns(4)
    for i, field in enumerate(api.schedule_fields(name)):
        value, widget_key = base.get(field.name, field.value), f"{key}-{name}-{field.name}"
        with columns[i % len(columns)]:
            if field.kind == "floats":
                shown = ", ".join(f"{v:g}" for v in value or [])
                text = st.text_input(field.name, shown, help=f"{field.help} (comma-separated)", key=widget_key)
                tree[field.name] = api.parse_numbers(text)
            elif field.kind == "bool":
                tree[field.name] = st.checkbox(field.name, bool(value), help=field.help, key=widget_key)
            else:
                tree[field.name] = _number(field, value, widget_key)
    return tree


def schedule_preview(tree: dict, parent: dict | None = None, key: str = "preview") -> bool:
    """The schedule's walk drawn live (the parent's dashed beneath), or the field that stops it; whether
    the schedule is valid."""
    try:
        walk = api.schedule_walk(tree)
        parent_walk = api.schedule_walk(parent) if parent else None
    except api.SpecError as exc:
        st.warning(" · ".join(exc.problems), icon=":material/timeline:")
        return False
    st.plotly_chart(figures.schedule_preview(walk, parent_walk), width="stretch", key=key)
    checkpoints = int(walk["checkpoint"].notna().sum())
    st.caption(
        f"{checkpoints} checkpoints evaluated (the trained base included) over {int(walk['batch'].max())} "
        "fine-tuning batches; the same schedule code the run executes draws this curve."
    )
    return True
