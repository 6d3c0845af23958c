"""The package itself: one list of runtime pins, a console script, and an engine without import cycles."""

from __future__ import annotations

import tomllib

import grimp

from tests.support import REPO


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_requirements_txt_pins_exactly_the_runtime_dependencies_of_pyproject():
    lines = (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
    pinned = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    project = _pyproject()["project"]
    extras = {pin for pins in project["optional-dependencies"].values() for pin in pins}
    assert pinned == set(project["dependencies"]) | extras and "ray==2.60.0" in extras
    assert not {p.split("==")[0] for p in pinned} & {"pytest", "hypothesis", "playwright", "ruff", "mypy"}


def test_the_aer_console_script_runs_the_engine_cli():
    from engine.__main__ import cli

    module, _, function = _pyproject()["project"]["scripts"]["aer"].partition(":")
    assert (module, function) == ("engine.__main__", "cli") and callable(cli)


def _cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_the_engine_has_no_import_cycles_counting_imports_inside_functions():
    graph = grimp.build_graph("engine")
    edges = {m: {t for t in graph.find_modules_directly_imported_by(m) if t in graph.modules} for m in graph.modules}
    assert _cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_importing_the_api_and_the_cli_loads_no_torch():
    """The in-function engine imports exist for this: `ls`, `show`, `status` and page imports stay fast."""
    import subprocess
    import sys

    code = "import sys, engine.api, engine.__main__, pages; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_missing_optional_package_is_one_line_saying_how_to_install_it(monkeypatch, tmp_path):
    import sys

    import pytest

    from engine.errors import MissingDependency
    from engine.jobs.sweep import run_ray
    from engine.science.attacks.third_party import torchattacks

    monkeypatch.setitem(sys.modules, "torchattacks", None)  # an import of it now fails, as when absent
    with pytest.raises(MissingDependency, match=r"pip install --no-deps torchattacks==3\.5\.1") as info:
        torchattacks()
    assert "\n" not in str(info.value)
    from engine.science.attacks.fmn import fmn_module

    fmn_module.cache_clear()
    monkeypatch.setitem(sys.modules, "adv_lib", None)
    with pytest.raises(MissingDependency, match=r"the FMN attacks needs adv_lib, .*pip install --no-deps adv-lib"):
        fmn_module()
    fmn_module.cache_clear()
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependency, match=r"a Ray sweep needs ray, .*pip install 'aer-lab\[ray\]'"):
        run_ray([], None)  # refused before the store is used


def test_an_installed_package_ships_every_preset_and_keeps_its_cache_in_the_users_cache_folder(monkeypatch, tmp_path):
    """`pip install .` (not a checkout): the presets come from pyproject's data-files, the cache from XDG
    (checked by hand in a fresh venv: `aer presets` lists them and `aer run --preset smoke` runs)."""
    from engine import paths

    shipped = {
        f"{target.removeprefix('share/aer-lab/')}/{path.name}"
        for target, patterns in _pyproject()["tool"]["setuptools"]["data-files"].items()
        for pattern in patterns
        for path in REPO.glob(pattern)
    }
    in_repo = {str(path.relative_to(REPO)) for path in (REPO / "presets").rglob("*.yaml")}
    assert shipped == in_repo
    monkeypatch.setattr(paths, "CHECKOUT", False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert paths.presets_dir() == paths.INSTALLED_PRESETS and paths.default_cache() == tmp_path / "aer-lab"
