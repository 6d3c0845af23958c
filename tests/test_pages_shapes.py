"""Pages never raise on runs of unusual shapes (issue 29): a run without attacks, two runs on one base
that share no attack; each page says what is missing in a line instead."""

import pytest

from tests.support import SURFACE_VIEWS, page

PAGES = ["pages/surface.py", "pages/compare.py", "pages/layers.py", "pages/transfer.py", "pages/budget.py"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """A cache with a smoke run attacked by PGD/FGSM, one attacked by DeepFool only, one not attacked."""
    from engine import api

    root = tmp_path_factory.mktemp("shapes-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AER_CACHE_DIR", str(root))
        api.forget_stores()
        store = api.open_store(root)
        attacked = api.run(api.load_spec(preset="smoke"), store)["run_id"]
        deepfool = "eval.attacks=[{name: deepfool, eps: [0, 0.5], steps: 5}]"
        other = api.run(api.load_spec(preset="smoke", overrides=[deepfool]), store)["run_id"]
        bare = api.run(api.load_spec(preset="smoke", overrides=["eval.attacks=[]", "seed=1"]), store)["run_id"]
        certified = "eval.attacks=[{name: smoothing, eps: [0, 0.25], options: {n0: 10, n: 50, sigma: 0.25}}]"
        api.run(api.load_spec(preset="smoke", overrides=[certified]), store)
        single = one_checkpoint_run(store, mp)
        tampered = api.run(api.load_spec(preset="smoke", overrides=["seed=3"]), store)["run_id"]
        store.db.execute("UPDATE runs SET spec_json = replace(spec_json, '0.9', '0.5') WHERE run_id = ?", (tampered,))
    api.forget_stores()
    return root, attacked, other, bare, single


def one_checkpoint_run(store, mp) -> str:
    """A run that failed after its dense checkpoint (the disk filled at step 1): one checkpoint only."""
    from engine import api
    from engine.errors import WriteFailed
    from engine.store import checkpoints

    real = checkpoints.publish_bytes

    def full_from_step_1(data, path):
        if path.name.startswith("step-001"):
            raise WriteFailed(f"{path.name}: cannot write (the disk is full)")
        return real(data, path)

    mp.setattr(checkpoints, "publish_bytes", full_from_step_1)
    spec = api.load_spec(preset="smoke", overrides=["seed=2"])
    with pytest.raises(WriteFailed):
        api.run(spec, store)
    mp.setattr(checkpoints, "publish_bytes", real)
    return spec.run_id()


@pytest.mark.parametrize("path", PAGES)
def test_a_run_without_attacks_is_shown_without_a_traceback(shapes, monkeypatch, path):
    root, _, _, bare, _ = shapes
    at = page(path, root, monkeypatch, run=bare[:12])
    assert not at.exception


@pytest.mark.parametrize("path", [*PAGES, "pages/playground.py", "pages/runs.py", "app.py"])
def test_every_page_opens_on_a_cache_of_every_shape_of_run(shapes, monkeypatch, path):
    """Runs attacked by PGD, by DeepFool only, by nothing, certified only (a smoothing certificate), one
    that failed after one checkpoint and one whose stored spec was edited: every page opens on its
    defaults without a traceback."""
    root, *_ = shapes
    assert not page(path, root, monkeypatch).exception


@pytest.mark.parametrize("path", [*PAGES, "pages/playground.py"])
def test_every_page_opens_on_a_run_with_one_checkpoint(shapes, monkeypatch, path):
    root, *_, single = shapes
    assert not page(path, root, monkeypatch, run=single[:12], runs=single[:12]).exception


@pytest.mark.parametrize(
    "view",
    SURFACE_VIEWS,
)
def test_every_surface_view_of_a_certified_only_run_opens(shapes, monkeypatch, view):
    from engine import api

    root, *_ = shapes
    monkeypatch.setenv("AER_CACHE_DIR", str(root))
    api.forget_stores()
    runs = api.runs_frame(api.open_store(root))
    certified = [
        r for r in runs["run_id"] if r not in shapes[1:] and "smoothing" in api.open_store(root).run(r)["spec_json"]
    ]
    at = page("pages/surface.py", root, monkeypatch, run=certified[0][:12], view=view)
    assert not at.exception


def test_surface_says_a_run_without_attacks_has_nothing_to_draw(shapes, monkeypatch):
    root, _, _, bare, _ = shapes
    at = page("pages/surface.py", root, monkeypatch, run=bare[:12])
    assert not at.exception and any("No robust accuracy for this run" in i.value for i in at.info)


def test_compare_says_two_runs_share_no_attack(shapes, monkeypatch):
    root, attacked, other, *_ = shapes
    at = page("pages/compare.py", root, monkeypatch, runs=f"{attacked[:12]},{other[:12]}")
    assert not at.exception and any("share no attack" in i.value for i in at.info)


def test_the_views_the_tests_open_are_the_surface_pages_own():
    import ast

    from tests.support import REPO

    tree = ast.parse((REPO / "pages" / "surface.py").read_text())

    (views,) = [
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign)
        if isinstance(n.targets[0], ast.Name) and n.targets[0].id == "VIEWS"
    ]
    assert views == SURFACE_VIEWS
