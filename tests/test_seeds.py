"""Seeds as an axis: a list of seeds is one run per seed; pages combine replicates as mean ± spread."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest

from engine import api
from engine.errors import SpecError
from engine.report import figures, summaries
from engine.spec.reading import seed_trees
from tests.support import page


def test_a_seed_list_is_one_tree_per_seed_sharing_everything_else(smoke_tree):
    trees = seed_trees({**smoke_tree, "seed": [2, 0, 2, 1]})
    assert [t["seed"] for t in trees] == [2, 0, 1]  # in order, repeats dropped
    assert all(
        {k: v for k, v in t.items() if k != "seed"} == {k: v for k, v in smoke_tree.items() if k != "seed"}
        for t in trees
    )
    assert seed_trees(smoke_tree) == [smoke_tree]


@pytest.mark.parametrize("seeds", [[], list(range(65))])
def test_an_empty_or_huge_seed_list_is_refused_naming_the_field(smoke_tree, seeds):
    with pytest.raises(SpecError, match="^seed: a list of seeds needs 1 to 64"):
        seed_trees({**smoke_tree, "seed": seeds})


def test_a_bad_seed_in_the_list_is_named_once(smoke_tree):
    with pytest.raises(SpecError) as error:
        api.validate_trees({**copy.deepcopy(smoke_tree), "seed": [0, -1, "x"]})
    assert all(line.startswith("seed:") for line in error.value.problems) and len(error.value.problems) == 2


def test_seeds_are_replicates_with_their_own_base_and_images(cache, smoke_tree):
    docs = api.run_trees({**copy.deepcopy(smoke_tree), "seed": [0, 1]})
    assert [d["spec"]["seed"] for d in docs] == [0, 1] and docs[0]["base_id"] != docs[1]["base_id"]
    runs = api.runs_frame().set_index("run_id")
    first, second = (runs.loc[d["run_id"]] for d in docs)
    assert first["family"] == second["family"] and first["base_family"] == second["base_family"]
    assert not api.same_images(docs[0]["run_id"], docs[1]["run_id"])
    point = docs[0]["points"][-1]["robust"][-1]
    gap = api.compare((docs[1]["run_id"], 0), (docs[0]["run_id"], 0), point["attack"], point["eps"])
    assert not gap.paired and gap.low <= gap.diff <= gap.high


def test_over_seeds_gives_mean_spread_and_count():
    frame = pd.DataFrame(
        {
            "run_id": ["a", "b", "c"],
            "step": 1,
            "attack": "pgd_linf",
            "eps": 0.1,
            "sparsity": 0.5,
            "clean_acc": 0.9,
            "acc": [0.4, 0.5, 0.6],
        }
    )
    summary = summaries.over_seeds(frame, {"a": "f", "b": "f", "c": "f"})
    row = summary.iloc[0]
    assert (row["acc"], row["acc_min"], row["acc_max"], row["seeds"]) == (pytest.approx(0.5), 0.4, 0.6, 3)
    fig = figures.families_at_eps(summary, 0.1, {"f": "setup"})
    assert fig.data[-1].name == "setup · 3 seed(s)" and fig.data[0].fill == "toself"


def test_compare_combines_replicates_over_seeds(cache, monkeypatch, smoke_tree):
    api.run_trees({**copy.deepcopy(smoke_tree), "seed": [0, 1]})
    at = page("pages/compare.py", cache, monkeypatch)
    assert not at.exception and at.toggle[0].value is True
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert any("2 seed(s)" in trace.get("name", "") for trace in figure["data"])
