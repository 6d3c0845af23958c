"""Pages through Streamlit's AppTest: empty store, populated store, a running run, hostile links."""

import pytest

from tests.support import REPO, SURFACE_VIEWS, page


def test_home_on_an_empty_store_lists_presets_and_says_what_to_run(cache, monkeypatch):
    at = page("pages/home.py", cache, monkeypatch)
    assert not at.exception
    assert {b.label for b in at.button} >= {"Run quickstart", "Run smoke"}
    assert any("No runs yet" in i.value for i in at.info)


def test_the_tour_is_one_click_that_queues_the_surface_first_then_what_fills_every_view(cache, monkeypatch):
    import json

    from engine import api

    at = page("pages/home.py", cache, monkeypatch)
    assert any("the teaching surface first" in c.value and "in all on this machine" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Take the tour").click()
    at.run()
    assert not at.exception
    rows = api.open_store().db.execute("SELECT spec_json FROM jobs ORDER BY job_id").fetchall()
    specs = [json.loads(row[0]) for row in rows]
    assert specs[0] == json.loads(api.load_spec(preset="teaching").canonical_json())  # the surface comes first
    assert specs[1]["eval"]["mrs"] is not None and specs[1]["eval"]["transfer"]
    assert specs[2]["prune"]["method"] == "random"
    assert [s["prune"]["mode"] for s in specs[3:]] == ["ap", "bap"]
    assert len({json.dumps(s["train"]) + json.dumps(s["model"]) for s in specs}) == 1  # one trained base
    assert any(h.value == "The tour" for h in at.subheader)


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


@pytest.mark.parametrize(
    "view",
    SURFACE_VIEWS,
)
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
    assert any("this store does not hold" in w.value for w in at.warning)
    assert at.sidebar.selectbox[0].value == done_id and at.sidebar.radio[0].value == "3-D surface"


def test_surface_of_a_run_still_computing_shows_its_progress(populated, monkeypatch, tmp_path):

    root, done_id, running_id = populated
    from engine.store.db import StepRecord, Store

    # give the running run one finished step, copied from the done run's step 0
    store = Store(root)
    step = store.step(done_id, 0)
    rows = [r for r in store.robust([done_id]) if r["step"] == 0]
    store.put_step(
        StepRecord(
            {**step, "run_id": running_id}, [{k: r[k] for k in ("attack", "norm", "eps", "acc")} for r in rows], []
        )
    )
    at = page("pages/surface.py", root, monkeypatch, run=running_id[:12])
    assert not at.exception
    texts = [p.proto.text for p in at.get("progress")]
    assert any("step 1 of 2 · pruning to 78.8%, fine-tuning · about 40 s left" in t for t in texts), texts
    assert at.sidebar.radio[0].value == "heat map"  # light to redraw while the run needs the CPU
    assert any(c.value == "1 of 3 checkpoints evaluated" for c in at.caption), [c.value for c in at.caption]


def test_the_app_router_opens_home_by_default(cache, monkeypatch):
    at = page("app.py", cache, monkeypatch)
    assert not at.exception
    assert at.title[0].value == "AER Lab"


def test_runs_page_on_an_empty_store(cache, monkeypatch):
    at = page("pages/runs.py", cache, monkeypatch)
    assert not at.exception
    assert any("queue is empty" in i.value for i in at.info)


def test_runs_page_shows_live_jobs_with_cancel_and_finished_ones_with_links(populated, monkeypatch):
    root, done_id, running_id = populated
    at = page("pages/runs.py", root, monkeypatch)
    assert not at.exception
    texts = [p.proto.text for p in at.get("progress")]
    assert any(running_id[:12] in t and "step 1 of 2" in t for t in texts), texts
    assert any(b.label == "Cancel" for b in at.button)


def test_a_bad_yaml_spec_names_its_fields_and_submits_nothing(cache, monkeypatch):
    from engine import api

    at = page("pages/runs.py", cache, monkeypatch)
    at.text_area[0].set_value(
        "schedule: {name: gradual, final_sparsity: 2, end: 10, frequency: 5}\nmodel: {name: gpt}\n"
    )
    next(b for b in at.button if b.label == "Submit YAML").click()
    at.run()
    assert [e.value for e in at.error][0].startswith("schedule.final_sparsity:")  # types and ranges first
    at.text_area[0].set_value(
        "schedule: {name: gradual, final_sparsity: 0.5, end: 10, frequency: 5}\nmodel: {name: gpt}\n"
    )
    next(b for b in at.button if b.label == "Submit YAML").click()
    at.run()
    assert [e.value for e in at.error][0].startswith("model.name: unknown model 'gpt'")  # then the names
    assert api.jobs_frame(api.open_store()).empty


def test_a_good_yaml_spec_is_queued_once(cache, monkeypatch):
    from engine import api

    at = page("pages/runs.py", cache, monkeypatch)
    at.text_area[0].set_value(api.preset_path("smoke").read_text())
    for _ in range(2):
        next(b for b in at.button if b.label == "Submit YAML").click()
        at.run()
    assert not at.exception and any("Queued as job 1" in s.value for s in at.success)
    assert len(api.jobs_frame(api.open_store())) == 1


def test_transfer_page_draws_a_run_with_transfer_results(tmp_path, monkeypatch, smoke_tree):
    from engine import api
    from engine.science.catalog import validate
    from engine.spec.reading import apply_overrides

    monkeypatch.setenv("AER_CACHE_DIR", str(tmp_path))
    api.forget_stores()
    spec = validate(apply_overrides(smoke_tree, ["eval.transfer=true"]))
    api.run(spec, api.open_store())
    at = page("pages/transfer.py", tmp_path, monkeypatch, run=spec.run_id()[:12], attack="fgsm")
    assert not at.exception
    assert at.sidebar.selectbox[1].value == "fgsm"
    table = at.dataframe[0].value
    assert list(table.columns) == ["step", "sparsity", "clean_acc", "white-box", "transfer"]
    assert table["white-box"].iloc[0] == table["transfer"].iloc[0]


def test_surface_shows_the_auc_table(populated, monkeypatch):
    root, done_id, _ = populated
    at = page("pages/surface.py", root, monkeypatch, run=done_id[:12], view="heat map")
    assert not at.exception
    auc = at.dataframe[0].value
    assert {"step", "sparsity", "clean_acc", "auc", "sweet spots (ε)"} <= set(auc.columns)
    assert auc["auc"].between(0, 1).all()


@pytest.mark.parametrize("view", ["slice at one ε", "slice at one sparsity"])
def test_surface_slices_draw_each_accuracy_with_its_interval_band(populated, monkeypatch, view):
    import json

    root, done_id, _ = populated
    at = page("pages/surface.py", root, monkeypatch, run=done_id[:12], view=view)
    assert not at.exception
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    bands = [trace for trace in figure["data"] if trace.get("fill") == "toself"]
    lines = [trace for trace in figure["data"] if trace.get("mode") == "lines+markers"]
    assert bands and len(bands) == len(lines)


def test_the_walk_through_asks_each_question_on_the_exact_run_of_the_tour_that_answers_it(cache, monkeypatch):
    from engine import api
    from pages.parts.tour import tour_questions

    monkeypatch.setenv("AER_CACHE_DIR", str(cache))
    tour = api.tour()
    ids = [spec.run_id()[:12] for spec in tour.specs]  # surface, layers + transfer, compare, AP, BAP
    links = [link for question in tour_questions().values() for link in question]
    assert [path for path, *_ in links] == [
        "pages/layers.py",
        "pages/layers.py",
        "pages/transfer.py",
        "pages/compare.py",
        "pages/budget.py",
        "pages/playground.py",
        "pages/playground.py",
    ]
    queries = [query for *_, query in links]
    assert queries[0] == {"run": ids[1], "view": "MRS heat map"}
    assert queries[1] == {"run": ids[1], "view": "ratios at one step", "step": "1"} and queries[2] == {"run": ids[1]}
    assert queries[3] == {"runs": f"{ids[0]},{ids[2]}", "eps": "0.02"} and queries[4] == {"runs": f"{ids[3]},{ids[4]}"}
    before, after = queries[5], queries[6]  # no numbers yet: the middle and the last level of the schedule
    assert before["run"] == after["run"] == ids[0] and (before["step"], after["step"]) == ("3", "6")


def test_runs_page_queues_a_torchvision_network_by_name_on_a_registered_data_set(cache, monkeypatch):
    import json

    from engine import api

    at = page("pages/runs.py", cache, monkeypatch)
    at.selectbox(key="bring-model").set_value("another: torchvision:… or timm:…").run()
    at.text_input(key="bring-model-name").set_value("torchvision:resnet18").run()
    at.selectbox(key="bring-dataset").set_value("synthetic").run()
    assert not at.exception and not at.error
    assert any("example-passes" in c.value or "≈" in c.value for c in at.caption)
    at.button(key="bring-submit").click().run()
    assert any("Queued as job 1" in s.value for s in at.success)
    spec = json.loads(api.open_store().db.execute("SELECT spec_json FROM jobs").fetchone()[0])
    assert spec["model"] == {"name": "torchvision:resnet18", "width": 0.125} and spec["dataset"]["name"] == "synthetic"


def test_runs_page_names_an_unknown_architecture_before_submitting(cache, monkeypatch):
    at = page("pages/runs.py", cache, monkeypatch)
    at.selectbox(key="bring-model").set_value("another: torchvision:… or timm:…").run()
    at.text_input(key="bring-model-name").set_value("torchvision:resnet19").run()
    at.selectbox(key="bring-dataset").set_value("synthetic").run()
    assert any(e.value.startswith("model.name: unknown model 'torchvision:resnet19'") for e in at.error)
    assert not any(b.key == "bring-submit" for b in at.button)


def test_pages_call_only_the_engine_s_public_api():
    """Every `api.<name>` a page or app.py uses is in engine.api.__all__ (its contract with the pages)."""
    import re

    from engine import api

    files = [REPO / "app.py", *sorted((REPO / "pages").rglob("*.py"))]
    used = {name for path in files for name in re.findall(r"\bapi\.([A-Za-z_]\w*)", path.read_text())}
    assert used and used <= set(api.__all__), sorted(used - set(api.__all__))
