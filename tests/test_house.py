"""House rules that lint alone cannot state, run by `make lint` beside ruff, mypy and import-linter: every
import inside a function says why it is there."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAZY = re.compile(r"#\s*noqa:[^#]*\bPLC0415\b(?P<reason>.*)$")


def _lazy_imports() -> list[tuple[str, str]]:
    """(file:line, the reason written after the noqa) of every marked in-function import."""
    found = []
    for path in [REPO / "app.py", *(REPO / "engine").rglob("*.py"), *(REPO / "pages").rglob("*.py")]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if match := LAZY.search(line):
                found.append((f"{path.relative_to(REPO)}:{number}", match["reason"].strip(" ,()")))
    return found


def test_every_import_inside_a_function_says_why():
    lazy = _lazy_imports()
    assert len(lazy) > 50  # the engine keeps torch, pandas and scipy off its fast paths this way
    assert [where for where, reason in lazy if len(reason.split()) < 2] == []
