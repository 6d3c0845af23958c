"""Reading specs: YAML/JSON text into raw trees (safely), `a.b=value` overrides, and the presets folder.

Every door (a file, `--set`, the Runs editor and upload, sweeps, presets) comes through here, and
every tree leaves bounded: a regular file of at most MAX_SPEC_BYTES, at most MAX_VALUES values after
aliases are expanded, nested at most MAX_DEPTH deep, integers within ±2⁶³, strings of at most
MAX_STRING characters. A refusal is one line that names the source or the field and never echoes
the refused content. Nothing here validates the values: a raw tree goes to
engine.science.catalog.validate.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from engine import ENGINE_VERSION
from engine.errors import SpecError
from engine.paths import presets_dir

PRESETS_DIR = presets_dir()

MAX_SPEC_BYTES = 1_000_000
MAX_VALUES = 10_000
MAX_DEPTH = 16
MAX_STRING = 10_000
MAX_INT = 2**63
FRACTION = re.compile(r"^[0-9]+(?:\.[0-9]+)?/[0-9]+(?:\.[0-9]+)?$")
"""A number written as a fraction, as ε is in the literature (8/255)."""
FRACTION_TAG = "tag:aer-lab,2026:fraction"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader (libyaml: no recursion limit, 10x faster) that also reads `8/255` as a number."""


def _fraction(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    numerator, denominator = (float(part) for part in loader.construct_scalar(node).split("/"))
    if denominator == 0:
        raise yaml.constructor.ConstructorError(None, None, "a fraction divides by zero", node.start_mark)
    return numerator / denominator


_Loader.add_implicit_resolver(FRACTION_TAG, FRACTION, list("0123456789"))
_Loader.add_constructor(FRACTION_TAG, _fraction)
_LOADER = _Loader
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")


def shown_key(key: object) -> str:
    """A key as it may appear in a message: a field-like name as written, anything else not echoed."""
    return str(key) if isinstance(key, str) and _NAME.fullmatch(key) else "(a key that is not a field name)"


def _refuse(source: str, why: str) -> SpecError:
    return SpecError([f"{source}: {why}"])


def bounded(tree: Any, source: str = "spec") -> Any:
    """`tree` itself once it is within the reader's bounds (values, depth, integers, strings); SpecError
    in one line otherwise. Walks at most MAX_VALUES values, so an alias bomb or a cycle stops early."""
    stack: list[tuple[Any, str, int]] = [(tree, "", 0)]
    seen = 0
    while stack:
        node, path, depth = stack.pop()
        seen += 1
        where = path or source
        if seen > MAX_VALUES:
            raise _refuse(source, f"more than {MAX_VALUES:,} values once aliases are expanded")
        if depth > MAX_DEPTH:
            raise _refuse(source, f"nested more than {MAX_DEPTH} levels deep (or an alias refers to itself)")
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str) or len(key) > MAX_STRING:
                    raise _refuse(where, f"{shown_key(key)} is not a field name")
                stack.append((value, f"{path}.{shown_key(key)}" if path else shown_key(key), depth + 1))
        elif isinstance(node, list):
            stack.extend((value, f"{where}[{i}]", depth + 1) for i, value in enumerate(node))
        elif isinstance(node, bool) or node is None or isinstance(node, float):
            continue  # NaN and ±inf are refused with their field's name when validated
        elif isinstance(node, int) and not -MAX_INT < node < MAX_INT:
            raise _refuse(where, "integer out of range")
        elif isinstance(node, str) and len(node) > MAX_STRING:
            raise _refuse(where, f"text longer than {MAX_STRING:,} characters")
        elif not isinstance(node, (int, str)):
            raise _refuse(where, f"a {type(node).__name__} is not a spec value")
    return tree


def read_spec_text(path: Path) -> str:
    """The text of a spec file: a regular UTF-8 file of at most MAX_SPEC_BYTES, else SpecError in one
    line (a FIFO, a device or a folder is refused before it is opened; the content is never echoed)."""
    source = str(path)[:200]
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(source, "not a regular file")
        if info.st_size > MAX_SPEC_BYTES:
            raise _refuse(source, f"larger than {MAX_SPEC_BYTES:,} bytes")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # never blocks on a swapped-in FIFO
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise _refuse(source, "not a regular file")
            data = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise _refuse(source, f"cannot read ({exc.__class__.__name__})") from None
    if len(data) > MAX_SPEC_BYTES:
        raise _refuse(source, f"larger than {MAX_SPEC_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse(source, "not UTF-8 text") from None


def _child(node: Any, key: str, dotted: str) -> Any:
    """The section `key` of `node` (created when missing in a mapping); SpecError if there is none."""
    if isinstance(node, list):
        if not key.isdigit() or int(key) >= len(node):
            raise SpecError([f"{dotted}: no entry {key[:20]!r} in a list of {len(node)}"])
        return node[int(key)]
    if isinstance(node, dict):
        return node.setdefault(key, {})
    raise SpecError([f"{dotted}: {shown_key(key)} is inside a value, not a section"])


def set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.0.c` in a raw spec tree, creating missing sections."""
    *parents, last = dotted.split(".")
    node: Any = tree
    for key in parents:
        node = _child(node, key, dotted)
    if isinstance(node, list):
        _child(node, last, dotted)  # the entry must exist
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SpecError([f"{dotted}: {'.'.join(parents)} is a value, not a section"])


def _load_yaml(text: str, source: str) -> Any:
    """YAML (or JSON) text as Python values, safely (libyaml when present); SpecError in one line."""
    try:
        return yaml.load(text, Loader=_LOADER)
    except ValueError:  # Python reads integers of at most 4,300 digits
        raise _refuse(source, "a number too long to read") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise _refuse(source, f"not valid YAML or JSON ({exc.__class__.__name__})") from None


def _scalar(raw: str, key: str) -> Any:
    """The value of one override, parsed like YAML (`0.1`, `[0, 0.1]`, `null`) within the reader's bounds."""
    if len(raw) > MAX_STRING:
        raise _refuse(key, f"value longer than {MAX_STRING:,} characters")
    return bounded(_load_yaml(raw, key), key)


def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=value` overrides (values parsed as YAML scalars) to a raw spec tree."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or len(key) > 200:
            raise SpecError(["--set: expected key.path=value"])
        set_path(tree, key, _scalar(raw, key))
    return bounded(tree, "--set")


def parse_text(text: str, source: str = "spec") -> dict[str, Any]:
    """Parse YAML or JSON text (JSON is YAML) into a raw tree, safely and within the reader's bounds."""
    if len(text) > MAX_SPEC_BYTES:
        raise _refuse(source, f"larger than {MAX_SPEC_BYTES:,} characters")
    tree = _load_yaml(text, source)
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise _refuse(source, "the top level must be a mapping of sections")
    return bounded(tree, source)


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
    return apply_overrides(parse_text(read_spec_text(path), str(path)[:200]), overrides or [])


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


def excerpt(text: str, limit: int = 40) -> str:
    """A short, escaped excerpt of user text for a message: control characters (newlines, ANSI escapes)
    shown escaped, cut at `limit` characters with an ellipsis."""
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"
