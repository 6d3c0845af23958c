"""One end-to-end run per robust-pruning method through the pipeline, on synthetic data."""

from __future__ import annotations

import copy

import pytest

from engine import api
from engine.science.catalog import validate
from engine.spec.reading import apply_overrides
from tests.support import ROBUST_TREE as TREE


def run(*overrides, tree=TREE):
    return api.run(validate(apply_overrides(copy.deepcopy(tree), list(overrides))), api.open_store())


def honest(doc):
    for point in doc["points"]:
        curve = [r["acc"] for r in point["robust"]]
        assert curve[0] == point["clean_acc"] and curve == sorted(curve, reverse=True)


def test_hydra_with_no_score_steps_is_lwm_and_with_some_differs(cache):
    lwm = run()
    same = run("prune.method=hydra", "prune.score_steps=0")
    hydra = run("prune.method=hydra")
    assert lwm["base_id"] == same["base_id"] == hydra["base_id"]
    strip = lambda doc: [(p["clean_acc"], p["robust"], p["sparsity"]) for p in doc["points"]]
    assert strip(same) == strip(lwm)
    assert [p["sparsity"] for p in hydra["points"]] == pytest.approx([0.0, 0.5, 0.9], abs=1e-3)
    honest(hydra)


@pytest.mark.parametrize("mode", ["ap", "bap"])
def test_adversarial_pruning_stores_a_budget_per_pruning_step(cache, mode):
    doc = run(
        f"prune.mode={mode}",
        "prune.method=global_magnitude",
        "train.mode=natural",
        "schedule={name: gradual, final_sparsity: 0.8, begin: 0, end: 6, frequency: 3}",
    )
    honest(doc)
    budgets = [p.get("budget") for p in doc["points"]]
    assert budgets[0] is None and all(b is not None for b in budgets[1:])
    for b in budgets[1:]:
        assert b["budget_q10"] <= b["budget_q50"] <= b["budget_q90"]
        assert b["norm"] == ("RMS-L2" if mode == "bap" else "Linf")
    frame = api.budget_frame([doc["run_id"]])
    assert (
        list(frame["step"]) == list(range(1, len(doc["points"])))
        and len(frame) >= 2
        and frame["sparsity"].is_monotonic_increasing
    )


def test_trades_base_then_filter_pruning_measures_the_smaller_model(cache):
    doc = run("train.mode=trades", "prune.method=filter_layer")
    honest(doc)
    last = doc["points"][-1]
    assert last["efficiency"]["shrunk_params"] < last["efficiency"]["params"]
    assert last["efficiency"]["removed_channels"] == round(0.9 * 32) + round(0.9 * 64)
    for batch in (1, 128):  # the deployment path: dense and smaller model in ONNX Runtime, each with its spread
        for model in ("dense", "shrunk"):
            assert last["efficiency"][f"onnx_{model}_latency_ms_b{batch}"] > 0
            assert last["efficiency"][f"onnx_{model}_latency_spread_b{batch}"] >= 0
    assert all(layer["sparsity"] == 0 for layer in last["layers"] if layer["kind"] == "Linear")


def test_mrpf_stores_its_ratios_and_eval_mrs_every_layer(cache):
    doc = run(
        "prune.method=mrpf", "prune.mrs={n_samples: 32, ascent_steps: 2}", "eval.mrs={n_samples: 32, ascent_steps: 2}"
    )
    honest(doc)
    for point in doc["points"]:
        assert all(layer["mrs"] >= 0 for layer in point["layers"])
    pruned = doc["points"][1]["layers"]
    assert all("ratio" in layer for layer in pruned if layer["kind"] == "Conv2d")
    frame = api.layers_frame(doc["run_id"])
    assert {"mrs", "ratio", "step_sparsity"} <= set(frame.columns) and frame["mrs"].notna().all()


def test_filter_pruning_refuses_a_model_without_convs_before_training_its_base(cache):
    from engine.errors import SpecError

    with pytest.raises(SpecError, match="prune.method: filter_layer prunes Conv2d layers; model mlp has none"):
        run("prune.method=filter_layer", "model.name=mlp")
    assert not list((cache / "bases").glob("*.safetensors"))


@pytest.mark.slow
def test_adversarial_training_raises_pgd_accuracy_at_its_budget(cache):
    """Madry et al. and TRADES on synthetic data: PGD-AT and TRADES beat natural training at ε_train."""
    tree = copy.deepcopy(TREE)
    tree["dataset"]["train_size"], tree["train"]["epochs"] = 2000, 3
    tree["eval"] = {"n_samples": 300, "batch_size": 300, "attacks": [{"name": "pgd_linf", "eps": [0, 0.1], "steps": 5}]}
    tree["schedule"] = {"name": "one_shot", "targets": [0.5], "finetune_steps": 0}
    at_eps = {}
    for mode in ("natural", "pgd_at", "trades"):
        doc = run(f"train.mode={mode}", "train.adversary={eps: 0.1, steps: 3}", tree=tree)
        at_eps[mode] = doc["points"][0]["robust"][-1]["acc"]
    assert at_eps["pgd_at"] >= at_eps["natural"] + 0.2 and at_eps["trades"] >= at_eps["natural"] + 0.2, at_eps
