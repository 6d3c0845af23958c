"""Run bundles move results between stores (Ray sweeps): an import is all or nothing, and a refused
bundle leaves no row behind (issue 29: a refused import left base rows, one pointing outside the cache)."""

import copy

import pytest

from engine import api
from engine.errors import IntegrityError
from engine.store.bundle import export_run, import_run
from engine.store.db import Store


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A finished smoke run exported from its store as a bundle."""
    source = Store(tmp_path_factory.mktemp("source"))
    run_id = api.run(api.load_spec(preset="smoke"), source)["run_id"]
    return export_run(source, run_id)


def test_an_imported_run_reads_as_it_did_where_it_ran(bundle, tmp_path):
    target = Store(tmp_path)
    import_run(target, bundle)
    run_id = bundle["run"]["run_id"]
    assert target.run(run_id)["status"] == "done" and len(target.steps(run_id)) == len(bundle["steps"])
    assert target.base(bundle["base"]["base_id"]) is not None  # its base came along
    assert {r["acc"] for r in target.robust([run_id])} == {r["acc"] for r in bundle["robust"]}


def tampered(bundle, how: str) -> dict:
    bad = copy.deepcopy(bundle)
    if how == "base outside the cache":
        bad["base"]["checkpoint"] = "../outside.safetensors"
    elif how == "a file's bytes changed":
        name = bad["steps"][1]["checkpoint"]
        bad["files"][name] = bad["files"][name][:-1] + b"\x00"
    elif how == "a checkpoint missing":
        del bad["files"][bad["steps"][2]["checkpoint"]]
    else:  # the run's spec edited: it no longer hashes to its id
        bad["run"]["spec_json"] = bad["run"]["spec_json"].replace('"seed":0', '"seed":1')
    return bad


@pytest.mark.parametrize(
    "how", ["base outside the cache", "a file's bytes changed", "a checkpoint missing", "the spec edited"]
)
def test_a_refused_bundle_leaves_nothing_behind(bundle, tmp_path, how):
    target = Store(tmp_path)
    with pytest.raises(IntegrityError):
        import_run(target, tampered(bundle, how))
    assert target.runs() == [] and target.db.execute("SELECT count(*) FROM bases").fetchone()[0] == 0
    assert not list(tmp_path.rglob("*.safetensors"))  # no file written either
