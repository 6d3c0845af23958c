"""The Runs page's form as a raw spec tree: the choices a person makes, laid over a preset.

Pure: it builds a tree and never validates it, so the spec's own validation names a bad field
exactly as it would in a YAML file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from engine.spec.runspec import schedule_of
from engine.spec.schedules import SCHEDULES

SAME_AS_BASE = "same as base"
"""The fine-tuning choice that keeps the base's training loss."""


@dataclass(frozen=True)
class FormChoices:
    """What the form asks: method, schedule (a schedule tree, from the schedule editor), losses,
    attack grid, seed and the MRS probe."""

    method: str = "global_magnitude"
    schedule: dict[str, Any] = field(default_factory=lambda: schedule_start("gradual"))
    base_mode: str = "natural"
    finetune: str = SAME_AS_BASE
    train_eps: float = 0.1
    eps_text: str = "0, 0.01, 0.02, 0.04, 0.08"
    seed: int = 0
    mrs: bool = False


def parse_eps(text: str) -> list[float] | str:
    """Comma-separated ε values (`0.03` or `8/255`) as floats; the text itself when it does not parse
    (validation names it)."""
    try:
        return [number(e) for e in text.split(",") if e.strip()]
    except (ValueError, ZeroDivisionError):
        return text


def number(text: str) -> float:
    """`0.03` or a fraction `8/255` as a float (ValueError otherwise)."""
    numerator, slash, denominator = text.strip().partition("/")
    return float(numerator) / float(denominator) if slash else float(numerator)


def form_tree(preset_tree: dict[str, Any], choices: FormChoices) -> dict[str, Any]:
    """The raw spec the form describes, on top of a preset's tree (which is not modified)."""
    tree = copy.deepcopy(preset_tree)
    adversary = {"eps": float(choices.train_eps)}
    prune = {**tree.get("prune", {}), "method": choices.method}
    if choices.finetune != SAME_AS_BASE:
        prune.update({"mode": choices.finetune, "adversary": adversary})
    tree.update(
        {
            "prune": prune,
            "seed": int(choices.seed),
            "schedule": copy.deepcopy(choices.schedule),
            "train": {**tree.get("train", {}), "mode": choices.base_mode, "adversary": adversary},
        }
    )
    attacks = [{"name": "pgd_linf", "eps": parse_eps(choices.eps_text), "steps": 10}]
    tree["eval"] = {**tree.get("eval", {}), "attacks": attacks}
    if choices.mrs:
        tree["eval"]["mrs"] = {}
    return tree


@dataclass(frozen=True)
class FormField:
    """One field of a registered schedule (or any spec section) as a form widget sees it."""

    name: str
    kind: str  # "float", "int", "floats" (a list of numbers) or "bool"
    value: Any  # the starting value: the field's default, else its documented example
    help: str
    low: float | None = None  # inclusive bounds where the field states them
    high: float | None = None
    optional: bool = False  # null is allowed (and means the default behaviour its help describes)


def _kind(annotation: Any) -> tuple[str, bool]:
    """The widget kind of a field's type, and whether None is allowed."""
    args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    optional = type(None) in getattr(annotation, "__args__", ())
    base = args[0] if optional and len(args) == 1 else annotation
    if base is bool:
        return "bool", optional
    if base is int:
        return "int", optional
    if base is float:
        return "float", optional
    return "floats", optional


def _bounds(metadata: list[Any]) -> tuple[float | None, float | None]:
    low = high = None
    for item in metadata:
        low = getattr(item, "ge", None) if getattr(item, "ge", None) is not None else low
        high = getattr(item, "le", None) if getattr(item, "le", None) is not None else high
    return low, high


def schedule_fields(name: str) -> list[FormField]:
    """The editable fields of the registered schedule `name`, from its own pydantic model (so a
    schedule registered later appears in the form with no page change)."""
    fields = []
    for field_name, info in SCHEDULES.get(name).model_fields.items():
        if field_name == "name":
            continue
        kind, optional = _kind(info.annotation)
        value = info.default if not info.is_required() else (info.examples or [None])[0]
        low, high = _bounds(info.metadata)
        fields.append(FormField(field_name, kind, value, info.description or "", low, high, optional))
    return fields


def schedule_start(name: str) -> dict[str, Any]:
    """A schedule tree of the registered schedule `name` with every field at its starting value."""
    return {"name": name, **{f.name: f.value for f in schedule_fields(name)}}


def schedule_walk(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """The sparsity of the model a run trains, point by point, as the pipeline walks the schedule
    (engine.pipeline.run: the base, then `plan()`): against cumulative fine-tuning batches, a jump
    at every prune, a flat stretch while fine-tuning, a checkpoint at its end; a one-shot step
    returns to the base first. Validates the schedule (SpecError naming the field)."""
    rows: list[dict[str, Any]] = [{"batch": 0, "sparsity": 0.0, "checkpoint": 0}]
    batch, current = 0, 0.0
    for k, step in enumerate(schedule_of(tree).plan(), start=1):
        if step.from_base and current > 0:
            rows.append({"batch": batch, "sparsity": 0.0, "checkpoint": None})
        rows.append({"batch": batch, "sparsity": step.sparsity, "checkpoint": None})
        batch += step.finetune_steps
        rows.append({"batch": batch, "sparsity": step.sparsity, "checkpoint": k})
        current = step.sparsity
    return rows


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out |= _flat(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: tree}


def changes(parent: dict[str, Any], child: dict[str, Any]) -> list[str]:
    """'field: parent value → child value' for every field that differs between two full spec trees
    (lists compared whole)."""
    before, after = _flat(parent), _flat(child)
    return [
        f"{key}: {before.get(key, '—')} → {after.get(key, '—')}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]
