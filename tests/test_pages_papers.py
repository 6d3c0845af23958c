"""The Papers page and the Home gallery through AppTest: empty store, hand-made stores, clicks, links."""

import pytest

from engine import api
from engine.papers import presets as papers
from tests.paper_fakes import NAMES, SCENARIOS, fill_paper
from tests.support import page


@pytest.fixture(scope="module")
def papers_cache(tmp_path_factory):
    """A store where the HYDRA claim holds and the MRPF claim fails (hand-made rows, no training)."""
    root = tmp_path_factory.mktemp("papers-pages")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AER_CACHE_DIR", str(root))
        api.forget_stores()
        store = api.open_store()
        fill_paper(store, "hydra", SCENARIOS["hydra"][0])
        fill_paper(store, "mrpf", SCENARIOS["mrpf"][1])
        api.forget_stores()
    return root


def test_an_empty_store_says_the_runs_are_missing_and_offers_to_run_them(cache, monkeypatch):
    at = page("pages/papers.py", cache, monkeypatch)
    assert not at.exception
    assert at.title[0].value == "Papers, reproduced small"
    assert any("runs not finished" in i.value and "run-paper" in i.value for i in at.info)
    assert at.query_params["paper"] == NAMES[0]


def test_run_queues_every_variant_of_the_chosen_paper(cache, monkeypatch):
    at = page("pages/papers.py", cache, monkeypatch, paper="mrpf")
    at.button(key="run-paper-mrpf").click().run()
    assert not at.exception
    queued = {j.run_id for j in api.jobs(api.open_store())}
    assert queued == {s.run_id() for s in api.paper_specs("mrpf").values()}
    assert len(at.get("progress")) == 4  # one live bar per queued variant


def test_a_claim_that_holds_shows_its_verdict_figure_and_numbers(papers_cache, monkeypatch):
    at = page("pages/papers.py", papers_cache, monkeypatch, paper="hydra")
    assert not at.exception
    assert at.success and at.success[0].value.startswith("Holds here")
    assert "40.0 % vs 30.0 %" in at.success[0].value
    assert len(at.get("plotly_chart")) == 1
    assert "HYDRA" in at.dataframe[0].value.columns
    assert any(c.value.startswith("Judged by pgd_linf (L∞, 10 steps) at ε = 0.1") for c in at.caption)
    assert any("reported, not judged" in m.value and "AutoAttack" in m.value for m in at.markdown)
    assert set(at.dataframe[1].value["variant"]) == {"LWM", "HYDRA"}  # PGD against AutoAttack, per checkpoint


def test_a_claim_that_fails_is_reported_not_hidden(papers_cache, monkeypatch):
    at = page("pages/papers.py", papers_cache, monkeypatch, paper="mrpf")
    assert not at.exception
    assert at.warning and at.warning[0].value.startswith("Does not hold here")
    assert any("does not hold" in m.value for m in at.markdown)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "HYDRA", "", "x" * 5000])
def test_a_hostile_paper_parameter_gives_the_default_paper(papers_cache, monkeypatch, bad):
    at = page("pages/papers.py", papers_cache, monkeypatch, paper=bad)
    assert not at.exception
    assert at.query_params["paper"] == NAMES[0]


def test_the_home_gallery_has_every_paper_with_its_cold_time(cache, monkeypatch):
    at = page("app.py", cache, monkeypatch)
    assert not at.exception
    for name in NAMES:
        assert at.button(key=f"paper-{name}")
    captions = " ".join(c.value for c in at.caption)
    for preset in api.paper_presets().values():
        assert preset.title in " ".join(m.value for m in at.markdown)
        assert f"≈ {preset.cold_seconds / 60:.0f} min cold" in captions


def test_a_gallery_click_queues_the_paper_and_opens_its_page(cache, monkeypatch):
    at = page("app.py", cache, monkeypatch)
    at.button(key="paper-hydra").click().run()
    assert not at.exception
    assert at.title[0].value == "Papers, reproduced small" and at.query_params["paper"] == "hydra"
    assert len(api.jobs(api.open_store())) == len(papers.load_paper("hydra").variants)
