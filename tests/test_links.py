"""Shared links: every page with hostile or stale query parameters, fuzzed with hypothesis.

A link may carry anything; each page must answer with its default view (and at most a short
note), never a traceback, and never read a file outside the cache.
"""

import builtins
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import page

PAGES = ["home", "papers", "surface", "compare", "layers", "budget", "transfer", "playground", "runs"]
KEYS = ["run", "runs", "attack", "view", "eps", "step", "img", "x", "paper"]
HOSTILE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "../../etc/passwd",
            "/etc/passwd",
            "..",
            "%2e%2e%2f",
            "nan",
            "inf",
            "-1",
            "1e400",
            "'; DROP TABLE runs; --",
            "0" * 64,
            "f" * 5000,
            "\x00",
            "{{7*7}}",
        ]
    ),
)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_works_beside_a_running_job(populated, monkeypatch, path):
    root, _, _ = populated
    at = page(f"pages/{path}.py", root, monkeypatch)
    assert not at.exception


@pytest.mark.parametrize("path", PAGES)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from(KEYS), HOSTILE, max_size=4))
def test_hostile_links_never_raise_or_read_outside_the_cache(populated, monkeypatch, path, params):
    root, _, _ = populated
    opened = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    at = page(f"pages/{path}.py", root, monkeypatch, **params)
    assert not at.exception, (path, params, at.exception)
    for name in opened:
        resolved = Path(name).resolve() if not name.isdigit() else None
        assert resolved is None or not any(v and v in name for v in params.values() if len(v) > 2), (name, params)


def test_code_and_tests_cite_only_documents_the_repository_holds():
    """A docstring or comment citing a Markdown file (top level or under docs/) names one that exists here."""
    import re

    from tests.support import REPO

    cited: dict[str, Any] = {}
    for path in [REPO / "app.py", *REPO.glob("engine/**/*.py"), *REPO.glob("pages/**/*.py"), *REPO.glob("tests/*.py")]:
        for name in re.findall(r"\b((?:docs/)?[A-Za-z_-]+\.md)\b", path.read_text()):
            cited.setdefault(name, path.relative_to(REPO))
    missing = {
        name: str(where)
        for name, where in cited.items()
        if not (REPO / name).exists() and not (REPO / "docs" / name).exists()
    }
    assert cited and not missing, missing
