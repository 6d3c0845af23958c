"""Every registry of the science in one place: what a spec may name, with help, and validation
that checks those names.

Importing it loads torch (the registries' entries are torch modules and functions).
"""

from __future__ import annotations

from typing import Any

from engine.registry import Registry
from engine.science import user_data  # noqa: F401  (registers the folder and arrays data sets)
from engine.science.attacks import ATTACKS
from engine.science.data import DATASETS
from engine.science.losses import LOSSES
from engine.science.models import MODELS
from engine.science.pruning.methods import METHODS
from engine.spec.attack_options import describe_options
from engine.spec.runspec import RunSpec
from engine.spec.runspec import validate as validate_structure
from engine.spec.schedules import SCHEDULES

REGISTRIES: dict[str, Registry[Any]] = {
    "dataset": DATASETS,
    "model": MODELS,
    "training mode": LOSSES,
    "pruning method": METHODS,
    "schedule": SCHEDULES,
    "attack": ATTACKS,
}
"""Kind (as spec errors and the catalogue name it) → its registry."""


def validate(tree: dict[str, Any]) -> RunSpec:
    """Validate a raw spec tree, every registered name included (SpecError: one line per problem)."""
    return validate_structure(tree, REGISTRIES)


def catalog() -> dict[str, dict[str, str]]:
    """Every registry's entries with their help text: what a spec may name (an attack's options with
    their types, ranges and defaults included)."""
    entries = {kind: {name: registry.help(name) for name in registry.names()} for kind, registry in REGISTRIES.items()}
    for name, text in entries["attack"].items():
        entries["attack"][name] = f"{text} {describe_options(ATTACKS.get(name).Options)}"
    return entries
