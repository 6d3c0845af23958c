"""The engine's page helpers: the Runs form's tree, the Surface table, link matching, shared bases."""

from __future__ import annotations

import pandas as pd
import pytest

from engine import api
from engine.errors import SpecError
from engine.report.tables import match_runs, sharing_a_base, surface_table
from engine.spec.form import FormChoices, form_tree, schedule_fields, schedule_start
from engine.store.db import Store

IDS = ["a" * 64, "ab" + "c" * 62, "b" * 64]


def test_a_link_matches_unique_prefixes_and_counts_the_rest():
    assert match_runs("aaaaaa,bbbbbbbb", IDS) == ([IDS[0], IDS[2]], 0)
    assert match_runs("abcccc,aaaaa,zzzzzz,../etc", IDS) == ([IDS[1]], 3)  # too short, unknown, not hex
    assert match_runs("aaaaaa,aaaaaaa", IDS) == ([IDS[0]], 1)  # the same run twice counts once


def test_runs_compare_only_when_another_run_shares_their_base():
    runs = pd.DataFrame({"run_id": ["r1", "r2", "r3"], "base_id": ["b1", "b1", "b2"]})
    assert sharing_a_base(runs).tolist() == [True, True, False]


def test_every_registered_schedule_starts_valid_and_its_form_fields_come_from_its_model():
    from engine.spec.schedules import SCHEDULES

    for name in SCHEDULES.names():
        fields = {f.name: f for f in schedule_fields(name)}
        assert set(fields) == set(SCHEDULES.get(name).model_fields) - {"name"}
        assert all(f.help for f in fields.values()), name  # every field says what it does
        SCHEDULES.get(name).model_validate(schedule_start(name))
    assert schedule_fields("gradual")[1].name == "final_sparsity" and schedule_fields("gradual")[1].value == 0.9


def test_the_form_lays_its_choices_over_the_preset_without_changing_it():
    preset = api.load_tree(preset="quickstart")
    before = repr(preset)
    tree = form_tree(preset, FormChoices(method="random", finetune="ap", train_eps=0.05, eps_text="0, 0.1", mrs=True))
    assert repr(preset) == before
    assert tree["prune"]["method"] == "random" and tree["prune"]["mode"] == "ap"
    assert tree["prune"]["adversary"] == {"eps": 0.05} and tree["eval"]["attacks"][0]["eps"] == [0.0, 0.1]
    assert tree["eval"]["mrs"] == {} and tree["dataset"] == preset["dataset"]
    spec = api.validate_tree(tree)
    assert spec.prune.method == "random" and spec.eval.attacks[0].eps == [0.0, 0.1]


def test_a_bad_eps_text_reaches_validation_which_names_the_field():
    with pytest.raises(SpecError) as error:
        api.validate_tree(api.form_tree("quickstart", FormChoices(eps_text="0, lots")))
    assert any(line.startswith("eval.attacks[0].eps") for line in error.value.problems)


def two_checkpoints() -> pd.DataFrame:
    """Robust rows of one run: the dense step and a pruned one that beats it at ε = 0.1."""
    return pd.DataFrame(
        {
            "run_id": "r",
            "attack": "pgd_linf",
            "norm": "Linf",
            "step": [0, 0, 1, 1],
            "sparsity": [0, 0, 0.5, 0.5],
            "clean_acc": [0.9] * 4,
            "eps": [0.0, 0.1] * 2,
            "acc": [0.9, 0.3, 0.9, 0.4],
            "n": 1000,
        }
    )


def test_the_surface_table_has_auc_sweet_spots_and_cost_per_step():
    robust = two_checkpoints()
    cost = pd.DataFrame({"step": [0, 1], "compression_ratio": [1.0, 2.0], "latency_ms_b1": [None, None]})
    for column in (
        "effective_compression",
        "theoretical_speedup",
        "size_bytes",
        "latency_ms_b128",
        "shrunk_params",
        "shrunk_latency_ms_b1",
        "shrunk_latency_ms_b128",
    ):
        cost[column] = None
    table = surface_table(robust, cost)
    assert table["step"].tolist() == [0, 1] and table["compression_ratio"].tolist() == [1.0, 2.0]
    assert table["sweet spots (ε)"].tolist() == [0, 1]  # step 1 beats dense at ε = 0.1 (ε = 0 is clean)
    assert "latency_ms_b1" not in table  # never measured: no empty column
    assert table.loc[1, "auc"] > table.loc[0, "auc"]


def test_the_store_version_moves_on_any_commit_and_only_then(store):
    first = api.store_version(store)
    assert api.store_version(store) == first
    store.begin_run("r" * 64, "b" * 64, "{}", "test", 2)
    second = api.store_version(store)
    assert second != first
    Store(store.root).begin_run("s" * 64, "b" * 64, "{}", "test", 2)  # another connection
    assert api.store_version(store) != second


def test_a_change_moves_the_version_seen_from_fresh_threads(store):
    """Streamlit runs every script run on a fresh thread: the version must not be per-thread."""
    import threading

    def version_on_a_new_thread() -> int:
        seen: list[int] = []
        thread = threading.Thread(target=lambda: seen.append(api.store_version(store)))
        thread.start()
        thread.join()
        return seen[0]

    before = version_on_a_new_thread()
    assert version_on_a_new_thread() == before
    Store(store.root).begin_run("t" * 64, "b" * 64, "{}", "test", 2)
    assert version_on_a_new_thread() != before


def test_an_unreliable_latency_is_never_a_number_and_the_note_says_why():
    from engine.report.tables import reliable_latencies

    cost = pd.DataFrame(
        {
            "step": [0, 1],
            "latency_ms_b1": [1.0, 1.1],
            "latency_spread_b1": [0.05, 0.6],
            "latency_ms_b128": [10.0, 10.4],
            "latency_spread_b128": [0.02, 0.03],
            "dense_latency_ms_b128": [10.0, 10.0],
            "dense_latency_spread_b128": [0.02, 0.02],
            "shrunk_latency_ms_b128": [None, 4.0],
            "shrunk_latency_spread_b128": [None, 0.9],
        }
    )
    frame = reliable_latencies(cost)
    assert frame["latency_ms_b1"].isna().tolist() == [False, True]  # rounds 60 % apart: blank, not 1.1
    assert frame["shrunk_latency_ms_b128"].isna().all()  # 90 % apart: its speed-up is not claimed either
    assert frame["shrunk speed-up (b128)"].isna().all()
    assert frame["latency vs dense (b128)"].tolist() == pytest.approx([1.0, 1.04])  # masked ≈ dense
    assert frame["latency note"].tolist() == [
        "",
        "checkpoint b1 unreliable (rounds 60 % above the fastest); "
        "shrunk_b128 unreliable (rounds 90 % above the fastest)",
    ]
    table = surface_table(two_checkpoints(), cost)
    assert table["latency_ms_b1"].isna().tolist() == [False, True] and "latency note" in table
