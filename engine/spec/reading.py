"""Reading specs: YAML/JSON text into raw trees (safely), `a.b=value` overrides, and the presets folder.

Nothing here validates: a raw tree goes to engine.science.catalog.validate.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from engine import ENGINE_VERSION
from engine.errors import SpecError
from engine.paths import REPO_ROOT

PRESETS_DIR = REPO_ROOT / "presets"


def set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.0.c` in a raw spec tree, creating missing sections."""
    keys = dotted.split(".")
    node: Any = tree
    for key in keys[:-1]:
        if isinstance(node, list):
            node = node[int(key)]
        else:
            node = node.setdefault(key, {})
            if not isinstance(node, (dict, list)):
                raise SpecError([f"{dotted}: {key!r} is not a section"])
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=value` overrides (values parsed as YAML scalars) to a raw spec tree."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SpecError([f"--set {item!r}: expected key.path=value"])
        try:
            set_path(tree, key.strip(), yaml.safe_load(raw))
        except (ValueError, IndexError, yaml.YAMLError) as exc:
            raise SpecError([f"{key.strip()}: cannot set ({exc})"]) from None
    return tree


def parse_text(text: str, source: str = "spec") -> dict[str, Any]:
    """Parse YAML or JSON text (JSON is YAML) into a raw tree, safely."""
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError([f"{source}: not valid YAML or JSON ({exc.__class__.__name__})"]) from None
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise SpecError([f"{source}: the top level must be a mapping of sections"])
    return tree


def presets() -> dict[str, str]:
    """Preset name → its one-line description (the first comment line of its YAML)."""
    out = {}
    for path in sorted(PRESETS_DIR.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        out[path.stem] = first.lstrip("# ").strip()
    return out


def preset_path(name: str) -> Path:
    """The YAML file of a named preset; SpecError naming the choices if there is none."""
    if name not in presets():
        raise SpecError([f"preset: unknown preset {name[:80]!r}; choose from {sorted(presets())}"])
    return PRESETS_DIR / f"{name}.yaml"


def load_tree(
    source: str | Path | None = None, *, preset: str | None = None, overrides: list[str] | None = None
) -> dict[str, Any]:
    """The raw spec tree of a YAML/JSON file or a preset, with overrides applied (not validated)."""
    if preset is not None and source is None:
        path = preset_path(preset)
    elif source is not None and preset is None:
        path = Path(source)
    else:
        raise SpecError(["spec: give a spec file or a preset, not both or neither"])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([f"{path}: cannot read ({exc.__class__.__name__})"]) from None
    return apply_overrides(parse_text(text, str(path)), overrides or [])


def raw_key(tree: dict[str, Any]) -> str:
    """Hash of a raw spec tree and the engine version: the key of the cache-hit fast path."""
    payload = f"{ENGINE_VERSION}\n{json.dumps(tree, sort_keys=True, default=str)}".encode()
    return hashlib.sha256(payload).hexdigest()


MAX_SEEDS = 64
"""The most runs one seed list may stand for."""


def seed_trees(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """A tree whose `seed` is a list stands for one run per seed, sharing everything else (in list order,
    repeats dropped); any other tree for itself. Each tree is validated on its own afterwards."""
    seeds = tree.get("seed")
    if not isinstance(seeds, list):
        return [tree]
    if not seeds or len(seeds) > MAX_SEEDS:
        raise SpecError([f"seed: a list of seeds needs 1 to {MAX_SEEDS} entries, not {len(seeds)}"])
    unique = list(dict.fromkeys(json.dumps(s, sort_keys=True, default=str) for s in seeds))
    return [{**copy.deepcopy(tree), "seed": json.loads(s)} for s in unique]
