"""The docs stay true (in the manner of sqlite-utils' test_docs.py): everything registered is documented,
and every name the spec reference lists is registered."""

from __future__ import annotations

import re

import pytest

from tests.support import REPO

SPECS = (REPO / "docs" / "specs.md").read_text()
DOCS = "\n".join(path.read_text() for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])


def _catalog() -> dict[str, dict[str, str]]:
    from engine.science import catalog

    return catalog.catalog()


@pytest.mark.parametrize("registry", ["dataset", "model", "training mode", "pruning method", "schedule", "attack"])
def test_every_registered_name_is_in_the_spec_reference(registry):
    missing = [name for name in _catalog()[registry] if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", SPECS)]
    assert not missing, f"docs/specs.md does not name these {registry}s: {missing}"


@pytest.mark.parametrize(
    ("registry", "line"),
    [
        ("dataset", r"^dataset: \{name: \w+\}\s+# (.+)$"),
        ("model", r"^model: \{name: \w+\}\s+# (.+)$"),
        ("training mode", r"^#   mode: (natural .+),$"),
        ("training mode", r"^#   mode: null \(the base's\) \| (.+)$"),
    ],
)
def test_every_name_the_spec_reference_lists_is_registered(registry, line):
    (listed,) = re.findall(line, SPECS, flags=re.M)
    names = [name.strip() for name in listed.split("|")]
    assert len(names) >= 3 and set(names) <= set(_catalog()[registry]), names


def test_every_cli_command_and_paper_preset_is_documented():
    from engine.__main__ import _parser as parser
    from engine.papers.presets import paper_names

    commands = next(a for a in parser()._actions if a.dest == "command").choices
    assert not [c for c in commands if f"engine {c}" not in DOCS]
    assert not [name for name in paper_names() if f"`{name}`" not in DOCS]
