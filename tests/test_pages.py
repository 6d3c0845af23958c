"""Pages through Streamlit's AppTest: empty store, populated store, a running run, hostile links."""

import copy

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO

TIMEOUT = 60


@pytest.fixture(scope="module")
def populated(tmp_path_factory, request):
    """A cache holding one finished smoke run and one run still computing."""
    import yaml

    from engine import api
    from engine.spec import apply_overrides, validate

    root = tmp_path_factory.mktemp("pages-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AER_CACHE_DIR", str(root))
        api._store_at.cache_clear()
        tree = yaml.safe_load((REPO / "presets" / "smoke.yaml").read_text())
        done = validate(copy.deepcopy(tree))
        api.run(done, api.open_store())
        running = validate(apply_overrides(copy.deepcopy(tree), ["seed=5"]))
        store = api.open_store()
        store.begin_run(running.run_id(), running.base_id(), running.canonical_json(), "test", 3)
        api._store_at.cache_clear()
    return root, done.run_id(), running.run_id()


def page(path: str, cache_root, monkeypatch, **query) -> AppTest:
    import streamlit as st

    from engine import api

    monkeypatch.setenv("AER_CACHE_DIR", str(cache_root))
    api._store_at.cache_clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(REPO / path), default_timeout=TIMEOUT)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def test_home_on_an_empty_store_lists_presets_and_says_what_to_run(cache, monkeypatch):
    at = page("pages/home.py", cache, monkeypatch)
    assert not at.exception
    assert {b.label for b in at.button} >= {"Run quickstart", "Run smoke"}
    assert any("No runs yet" in i.value for i in at.info)


def test_home_lists_the_runs_of_a_populated_store(populated, monkeypatch):
    root, done_id, _ = populated
    at = page("pages/home.py", root, monkeypatch)
    assert not at.exception
    table = at.dataframe[0].value
    assert done_id[:12] in set(table["run_id"]) and set(table["status"]) == {"done", "running"}


def test_surface_on_an_empty_store_says_what_to_run(cache, monkeypatch):
    at = page("pages/surface.py", cache, monkeypatch)
    assert not at.exception
    assert any("quickstart" in i.value for i in at.info)


@pytest.mark.parametrize("view", ["3-D surface", "heat map", "slice at one ε", "slice at one sparsity"])
def test_surface_draws_every_view_of_a_finished_run(populated, monkeypatch, view):
    root, done_id, _ = populated
    at = page("pages/surface.py", root, monkeypatch, run=done_id[:12], view=view, attack="fgsm")
    assert not at.exception
    assert at.sidebar.selectbox[0].value == done_id and at.sidebar.selectbox[1].value == "fgsm"
    assert at.sidebar.radio[0].value == view
    assert at.query_params["run"] == [done_id[:12]] or at.query_params["run"] == done_id[:12]


@pytest.mark.parametrize("hostile", ["../../etc/passwd", "x" * 5000, "ffffffffffff", "<script>alert(1)</script>"])
def test_a_hostile_or_stale_run_link_shows_the_default_view(populated, monkeypatch, hostile):
    root, done_id, _ = populated
    at = page("pages/surface.py", root, monkeypatch, run=hostile, view="nonsense", attack="../x")
    assert not at.exception
    assert any("not in this store" in w.value for w in at.warning)
    assert at.sidebar.selectbox[0].value == done_id and at.sidebar.radio[0].value == "3-D surface"


def test_surface_of_a_run_still_computing_shows_its_progress(populated, monkeypatch, tmp_path):
    from engine import api

    root, done_id, running_id = populated
    from engine.store import Store

    # give the running run one finished step, copied from the done run's step 0
    store = Store(root)
    step = store.step(done_id, 0)
    rows = [r for r in store.robust([done_id]) if r["step"] == 0]
    store.put_step({**step, "run_id": running_id},
                   [{k: r[k] for k in ("attack", "norm", "eps", "acc")} for r in rows], [])
    at = page("pages/surface.py", root, monkeypatch, run=running_id[:12])
    assert not at.exception
    assert any("computing" in (p.proto.text) for p in at.get("progress"))



def test_the_app_router_opens_home_by_default(cache, monkeypatch):
    at = page("app.py", cache, monkeypatch)
    assert not at.exception
    assert at.title[0].value == "AER Lab"
