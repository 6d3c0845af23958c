"""The Budget and Layers pages through AppTest: empty store, populated store, hostile links."""

import copy

import pytest

from tests.support import ROBUST_TREE as TREE
from tests.support import page


@pytest.fixture(scope="module")
def robust_cache(tmp_path_factory):
    """A cache with an AP run and a BAP run (MRS at every step) and an MRPF run, on synthetic data."""
    from engine import api
    from engine.science.catalog import validate
    from engine.spec.reading import apply_overrides

    root = tmp_path_factory.mktemp("robust-pages")
    gradual = "schedule={name: gradual, final_sparsity: 0.8, begin: 0, end: 6, frequency: 3}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AER_CACHE_DIR", str(root))
        api.forget_stores()
        ids = {}
        for name, overrides in {
            "ap": ["train.mode=natural", "prune.method=global_magnitude", "prune.mode=ap", gradual],
            "bap": [
                "train.mode=natural",
                "prune.method=global_magnitude",
                "prune.mode=bap",
                gradual,
                "eval.mrs={n_samples: 32, ascent_steps: 2}",
            ],
            "mrpf": ["prune.method=mrpf", "prune.mrs={n_samples: 32, ascent_steps: 2}"],
        }.items():
            spec = validate(apply_overrides(copy.deepcopy(TREE), overrides))
            ids[name] = api.run(spec, api.open_store())["run_id"]
        api.forget_stores()
    return root, ids


FILLED_BY = {
    "pages/layers.py": lambda specs: len(specs) == 1 and specs[0]["eval"]["mrs"] is not None,
    "pages/budget.py": lambda specs: sorted(s["prune"]["mode"] for s in specs) == ["ap", "bap"],
    "pages/transfer.py": lambda specs: len(specs) == 1 and specs[0]["eval"]["transfer"],
    "pages/compare.py": lambda specs: len(specs) == 1 and specs[0]["prune"]["method"] == "random",
}


@pytest.mark.parametrize("path", list(FILLED_BY))
def test_an_empty_view_queues_what_fills_it_from_the_browser(cache, monkeypatch, path):
    """No empty view sends a browser user to a terminal: it says what would fill it, what that costs,
    and one click queues those runs (here on the teaching preset: the store holds no run to fork)."""
    import json

    from engine import api

    at = page(path, cache, monkeypatch)
    assert not at.exception and at.info
    assert any(c.value.startswith("Queues") and "the teaching preset" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Fill this view").click()
    at.run()
    assert not at.exception
    rows = api.open_store().db.execute("SELECT spec_json FROM jobs ORDER BY job_id").fetchall()
    assert FILLED_BY[path]([json.loads(row[0]) for row in rows])
    assert not any(b.label == "Fill this view" for b in at.button)  # the page now follows the queued jobs


def test_a_run_without_mrs_offers_a_copy_of_itself_that_measures_it(robust_cache, monkeypatch):
    root, ids = robust_cache
    at = page("pages/layers.py", root, monkeypatch, run=ids["ap"][:12])
    assert not at.exception
    assert any("measured no MRS" in i.value for i in at.info)
    assert any(f"forked from run {ids['ap'][:12]}" in c.value for c in at.caption)
    assert any(b.label == "Fill this view" for b in at.button)


def test_budget_page_shows_ap_and_bap_side_by_side(robust_cache, monkeypatch):
    root, ids = robust_cache
    at = page("pages/budget.py", root, monkeypatch)
    assert not at.exception
    assert set(at.multiselect[0].value) == {ids["ap"], ids["bap"]}
    assert len(at.get("plotly_chart")) == 2
    table = at.dataframe[0].value
    assert set(table["norm"]) == {"Linf", "RMS-L2"} and (table["budget_q50"] > 0).all()
    assert set(at.query_params["runs"].split(",")) == {ids["ap"][:12], ids["bap"][:12]}


def test_budget_page_restores_its_runs_from_the_link_and_drops_strangers(robust_cache, monkeypatch):
    root, ids = robust_cache
    at = page("pages/budget.py", root, monkeypatch, runs=f"{ids['bap'][:12]},../../etc/passwd,{'f' * 5000}")
    assert not at.exception
    assert at.multiselect[0].value == [ids["bap"]]
    assert any("Ignored 2 run(s)" in w.value for w in at.warning)


@pytest.mark.parametrize(
    "view",
    ["MRS heat map", "MRS reach heat map", "sparsity heat map", "effective sparsity heat map", "ratios at one step"],
)
def test_layers_page_draws_every_view(robust_cache, monkeypatch, view):
    root, ids = robust_cache
    at = page("pages/layers.py", root, monkeypatch, view=view)
    assert not at.exception
    assert at.selectbox[0].value == ids["bap"]  # the newest run with MRS values
    assert at.radio[0].value == view and len(at.get("plotly_chart")) == 1
    table = at.dataframe[0].value
    assert {"mrs", "mrs_reach", "effective_nonzero"} <= set(table.columns)
    assert table["mrs_reach"].dropna().between(0, 1).all() and table["mrs_reach"].notna().any()
    assert (table["effective_nonzero"] <= table["numel"]).all()


def test_layers_page_opens_the_linked_run(robust_cache, monkeypatch):
    root, ids = robust_cache
    at = page("pages/layers.py", root, monkeypatch, run=ids["mrpf"][:12], view="ratios at one step")
    assert not at.exception
    assert at.selectbox[0].value == ids["mrpf"]
    frame = at.dataframe[0].value
    assert frame["ratio"].notna().any()
    assert (frame["ratio_mrs"].notna() == frame["ratio"].notna()).all()  # the MRS that set each ratio, kept
    assert any("no MRS" in i.value for i in at.info) is False


def test_the_runs_form_queues_hydra_on_an_adversarial_base_with_bap_fine_tuning(cache, monkeypatch):
    import json

    from engine import api

    at = page("pages/runs.py", cache, monkeypatch)
    by_label = lambda widgets, label: next(w for w in widgets if w.label == label)
    by_label(at.selectbox, "Schedule").set_value("one_shot")  # outside the form: the editor redraws at once
    at.run()
    assert [w.label for w in at.text_input][:1] == ["targets"]
    by_label(at.selectbox, "Pruning method").set_value("hydra")
    by_label(at.selectbox, "Base training").set_value("pgd_at")
    by_label(at.selectbox, "Fine-tuning loss").set_value("bap")
    by_label(at.checkbox, "Measure every layer's MRS at every step (Layers page)").check()
    next(b for b in at.button if b.label == "Submit").click()
    at.run()
    assert not at.exception and any("Queued as job 1" in s.value for s in at.success)
    run_id = api.jobs_frame(api.open_store())["run_id"].iloc[0]
    spec = json.loads(
        api.open_store().db.execute("SELECT spec_json FROM jobs WHERE run_id LIKE ?", (run_id + "%",)).fetchone()[0]
    )
    assert spec["prune"]["method"] == "hydra" and spec["prune"]["mode"] == "bap"
    assert spec["train"]["mode"] == "pgd_at" and spec["schedule"]["name"] == "one_shot"
    assert spec["eval"]["mrs"] is not None


@pytest.mark.parametrize("axis", ["sparsity", "effective sparsity", "flops", "latency", "onnx latency"])
def test_compare_draws_runs_on_one_base_every_way(robust_cache, monkeypatch, axis):
    root, ids = robust_cache
    at = page("pages/compare.py", root, monkeypatch, x=axis)
    assert not at.exception
    assert set(at.multiselect[0].value) == {ids["ap"], ids["bap"]}  # the MRPF run has another base
    assert len(at.get("plotly_chart")) == 3 and at.radio[0].value == axis
    assert at.query_params["x"] == axis
    # the two runs share their evaluation images: their last checkpoints are compared per image
    sentence = next(m.value for m in at.markdown if m.value.startswith("Last checkpoints at ε"))
    assert "paired over the same 64 images" in sentence and "95 % interval" in sentence and "p = " in sentence


def test_compare_restores_runs_and_eps_from_the_link(robust_cache, monkeypatch):
    root, ids = robust_cache
    at = page(
        "pages/compare.py", root, monkeypatch, runs=f"{ids['bap'][:12]},{ids['ap'][:12]}", eps="0.0", attack="nonsense"
    )
    assert not at.exception
    assert at.multiselect[0].value == [ids["bap"], ids["ap"]]
    assert at.sidebar.select_slider[0].value == 0.0 and at.sidebar.selectbox[0].value == "pgd_linf"


def test_playground_on_an_empty_store_says_what_to_run(cache, monkeypatch):
    at = page("pages/playground.py", cache, monkeypatch)
    assert not at.exception and any("teaching" in i.value for i in at.info)


@pytest.mark.parametrize("eps", ["nan", "inf", "-1", "1e400"])
def test_playground_refuses_non_finite_budgets(robust_cache, monkeypatch, eps):
    root, _ = robust_cache
    at = page("pages/playground.py", root, monkeypatch, eps=eps)
    assert not at.exception and at.sidebar.number_input[0].value == 0.1


@pytest.mark.parametrize("attack", ["pgd_linf", "fgsm", "pgd_l2", "deepfool"])
def test_playground_attacks_a_cached_checkpoint(robust_cache, monkeypatch, attack):
    root, ids = robust_cache
    at = page("pages/playground.py", root, monkeypatch, run=ids["ap"][:12], attack=attack, img="5")
    assert not at.exception
    assert at.sidebar.selectbox[0].value == ids["ap"] and at.sidebar.selectbox[2].value == attack
    assert len(at.get("plotly_chart")) == 1
    table = at.dataframe[0].value
    assert list(table["image"]) == [5, 6, 7] and table["dense, attacked"].str.contains("%").all()
    assert "ms" in at.caption[0].value


def test_playground_offers_the_checkpoint_for_download(robust_cache, monkeypatch):
    root, ids = robust_cache
    at = page("pages/playground.py", root, monkeypatch, run=ids["ap"][:12], step="1")
    labels = [button.proto.label for button in at.get("download_button")]
    assert labels == ["Step 1 as safetensors", "Step 1 as onnx"], labels  # weight pruning: no smaller model


def test_a_filter_pruned_checkpoint_also_offers_its_physically_smaller_model(robust_cache, monkeypatch):
    from engine import api

    root, ids = robust_cache
    at = page("pages/playground.py", root, monkeypatch, run=ids["mrpf"][:12], step="1")
    labels = [button.proto.label for button in at.get("download_button")]
    assert labels[2:] == ["Step 1 smaller as safetensors", "Step 1 smaller as onnx"], labels
    surface = page("pages/surface.py", root, monkeypatch, run=ids["mrpf"][:12])
    chooser = surface.selectbox(key="take-away")
    assert not surface.exception and chooser.value == max(int(option.split()[1]) for option in chooser.options)
    surface_labels = [button.proto.label for button in surface.get("download_button")]
    assert any(label.endswith("smaller as onnx") for label in surface_labels), surface_labels
    monkeypatch.setenv("AER_CACHE_DIR", str(root))
    api.forget_stores()
    small, masked = (
        api.model_file(ids["mrpf"], 1, "safetensors", shrunk=True),
        api.model_file(ids["mrpf"], 1, "safetensors"),
    )
    assert len(small) < len(masked)


def test_playground_waits_its_turn_in_the_servers_line(robust_cache, monkeypatch):
    """Every slot busy with other sessions' attacks: the page joins the line, and once a slot frees it
    attacks and says how long it waited."""
    import threading

    from engine.jobs.turns import PLAYGROUND

    root, ids = robust_cache
    release, holding = threading.Event(), threading.Barrier(PLAYGROUND.slots + 1)

    def other_session(number: int) -> None:
        with PLAYGROUND.turn(f"other-{number}"):
            holding.wait()
            release.wait()

    def free_once_the_page_waits() -> None:
        while PLAYGROUND.waiting() == 0 and not release.is_set():
            release.wait(0.01)  # polling the line for the page's place, not sleeping for luck
        release.set()

    others = [threading.Thread(target=other_session, args=(i,)) for i in range(PLAYGROUND.slots)]
    for thread in others:
        thread.start()
    holding.wait()
    freer = threading.Thread(target=free_once_the_page_waits)
    freer.start()
    try:
        at = page("pages/playground.py", root, monkeypatch, run=ids["ap"][:12], img="5")
    finally:
        release.set()
        for thread in [*others, freer]:
            thread.join(timeout=30)
    assert not at.exception and len(at.get("plotly_chart")) == 1
    assert "s in line" in at.caption[0].value, at.caption[0].value


def test_playground_ignores_hostile_parameters(robust_cache, monkeypatch):
    root, _ = robust_cache
    at = page("pages/playground.py", root, monkeypatch, run="../../etc", step="99", eps="nan'; DROP", img="-4")
    assert not at.exception
    assert at.sidebar.number_input[0].value >= 0


def test_a_missing_checkpoint_is_repaired_from_the_browser(cache, monkeypatch, smoke_tree):
    """No terminal: the Playground names the missing file and one button forgets it and queues the run."""
    import json

    from engine import api
    from engine.science.catalog import validate

    spec = validate(smoke_tree)
    api.run(spec, api.open_store())
    row = api.open_store().step(spec.run_id(), 1)
    (cache / row["checkpoint"]).unlink()
    at = page("pages/playground.py", cache, monkeypatch, run=spec.run_id()[:12], step="1")
    assert any("is missing" in e.value for e in at.error)
    at.button(key="repair").click().run()
    assert any("Queued as job" in s.value for s in at.success)
    queued = json.loads(api.open_store().db.execute("SELECT spec_json FROM jobs").fetchone()[0])
    assert queued == json.loads(spec.canonical_json())
    assert 1 not in {r["step"] for r in api.open_store().steps(spec.run_id())}  # forgotten: the job recomputes it
