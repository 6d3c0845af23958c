"""The pipeline end to end on synthetic data: sparsity axis, honest curves, cache, resume, API."""

import copy
from typing import Any

import pytest
import torch

from engine import api
from engine.pipeline import run as run_pipeline
from engine.science.catalog import validate
from engine.science.training import accuracy
from engine.spec.reading import apply_overrides


def spec_of(tree, *overrides):
    return validate(apply_overrides(copy.deepcopy(tree), list(overrides)))


def test_smoke_run_gives_the_whole_sparsity_axis_with_honest_curves(store, smoke_tree):
    spec = spec_of(smoke_tree)
    doc = api.run(spec, store)
    assert doc["status"] == "done" and doc["cached"] is False
    targets = spec.schedule.sparsities()
    assert [p["step"] for p in doc["points"]] == list(range(len(targets)))
    n_prunable = sum(layer["numel"] for layer in doc["points"][0]["layers"] if layer["prunable"])
    for point, target in zip(doc["points"], targets):
        assert point["sparsity"] == pytest.approx(target, abs=1 / n_prunable)
        for attack in ("pgd_linf", "fgsm"):
            curve = [r["acc"] for r in point["robust"] if r["attack"] == attack]
            assert curve[0] == point["clean_acc"]
            assert all(b <= a for a, b in zip(curve, curve[1:]))


def test_second_run_is_served_from_the_cache(store, smoke_tree):
    spec = spec_of(smoke_tree)
    first = api.run(spec, store)
    seen: list[Any] = []
    second = api.run(spec, store, on_progress=seen.append)
    assert second["cached"] is True and seen == []
    assert second["points"] == first["points"]


def test_runs_differing_only_in_pruning_share_one_base(store, smoke_tree):
    api.run(spec_of(smoke_tree), store)
    phases = []
    api.run(spec_of(smoke_tree, "prune.method=random"), store, on_progress=lambda p: phases.append(p.phase))
    assert store.db.execute("SELECT count(*) FROM bases").fetchone()[0] == 1
    assert not any(phase.startswith("training the base model") for phase in phases)


def step_zero_rows(store, run_id: str) -> list[tuple]:
    return store.db.execute(
        "SELECT attack, eps, acc, n, correct FROM robust WHERE run_id = ? AND step = 0 ORDER BY attack, eps", (run_id,)
    ).fetchall()


def counting_evaluations(monkeypatch) -> list[int]:
    """Record the size of every evaluation the pipeline runs (one per step it attacks)."""
    import engine.pipeline as pipeline

    calls: list[int] = []
    real = pipeline.evaluate_model
    monkeypatch.setattr(
        pipeline, "evaluate_model", lambda model, x, *a, **k: calls.append(len(x)) or real(model, x, *a, **k)
    )
    return calls


def test_a_fork_reuses_the_dense_point_measured_on_the_same_base_and_images(store, smoke_tree, monkeypatch):
    first = spec_of(smoke_tree)
    api.run(first, store)
    calls = counting_evaluations(monkeypatch)
    fork = spec_of(smoke_tree, "schedule.final_sparsity=0.5")  # a what-if: same base, same evaluation
    doc = api.run(fork, store)
    assert doc["status"] == "done" and len(calls) == len(fork.schedule.sparsities()) - 1  # step 0 not attacked
    assert step_zero_rows(store, fork.run_id()) == step_zero_rows(store, first.run_id())
    assert store.edited_steps(fork.run_id()) == []  # its digest covers the copied rows


def test_the_dense_point_is_measured_again_when_anything_about_it_differs(store, smoke_tree, monkeypatch):
    first = spec_of(smoke_tree)
    api.run(first, store)
    calls = counting_evaluations(monkeypatch)
    other_images = spec_of(smoke_tree, "eval.n_samples=150", "schedule.final_sparsity=0.5")
    api.run(other_images, store)
    assert len(calls) == len(other_images.schedule.sparsities())
    with store.atomic() as db:  # an edited result is never copied
        db.execute("UPDATE robust SET acc = 0.01 WHERE run_id = ? AND step = 0 AND eps > 0", (first.run_id(),))
        db.execute("UPDATE robust SET acc = 0.01 WHERE run_id = ? AND step = 0 AND eps > 0", (other_images.run_id(),))
    calls.clear()
    edited_donor = spec_of(smoke_tree, "schedule.final_sparsity=0.7")
    api.run(edited_donor, store)
    assert len(calls) == len(edited_donor.schedule.sparsities())
    api.run(spec_of(smoke_tree, "eval.transfer=true"), store)  # a donor that transfers too
    calls.clear()
    transfer = spec_of(smoke_tree, "eval.transfer=true", "schedule.final_sparsity=0.6")
    api.run(transfer, store)  # transfer needs the base's own adversarial inputs: step 0 attacks again
    assert len(calls) == len(transfer.schedule.sparsities())


class Crash(RuntimeError):
    pass


def crash_at(step: int, done: int):
    """A progress callback that kills the run when it reaches `done` batches of `step`."""

    def report(progress):
        if progress.step == step and progress.done == done:
            raise Crash("killed")

    return report


def test_a_run_killed_mid_schedule_resumes_to_the_same_checkpoints(tmp_path, smoke_tree):
    from engine.store.db import Store

    spec = spec_of(smoke_tree, "schedule.end=60")  # four steps
    clean_store = Store(tmp_path / "uninterrupted")
    run_pipeline(spec, clean_store)

    crashed_store = Store(tmp_path / "crashed")
    with pytest.raises(Crash):
        run_pipeline(spec, crashed_store, crash_at(step=2, done=5))
    assert crashed_store.run(spec.run_id())["status"] == "failed"
    assert [s["step"] for s in crashed_store.steps(spec.run_id())] == [0, 1]
    run_pipeline(spec, crashed_store)
    expected = [(s["step"], s["sha256"], s["mask_sha256"]) for s in clean_store.steps(spec.run_id())]
    actual = [(s["step"], s["sha256"], s["mask_sha256"]) for s in crashed_store.steps(spec.run_id())]
    assert actual == expected and len(actual) == 4
    assert crashed_store.run(spec.run_id())["status"] == "done" and crashed_store.integrity_ok()


@pytest.mark.parametrize(
    "schedule",
    [
        ["schedule={name: one_shot, targets: [0.5, 0.9], finetune_steps: 5}"],
        ["schedule={name: iterative, targets: [0.5, 0.75], finetune_steps: 5}"],
    ],
)
@pytest.mark.parametrize("method", ["layer_magnitude", "random"])
def test_every_schedule_and_method_runs(store, smoke_tree, schedule, method):
    spec = spec_of(smoke_tree, *schedule, f"prune.method={method}", "eval.attacks=[]")
    doc = api.run(spec, store)
    assert [round(p["target_sparsity"], 3) for p in doc["points"]] == [0.0, *spec.schedule.targets]
    assert all(p["robust"] == [] for p in doc["points"])


def test_one_shot_masks_are_independent_of_each_other(store, smoke_tree):
    spec = spec_of(smoke_tree, "schedule={name: one_shot, targets: [0.5, 0.9]}", "eval.attacks=[]")
    api.run(spec, store)
    half, ninety = (api.load_checkpoint(spec.run_id(), k, store) for k in (1, 2))
    base = api.load_checkpoint(spec.run_id(), 0, store)
    # without fine-tuning, every kept weight equals the base's weight
    for name in ("fc1", "fc2"):
        w0, w1, w2 = (getattr(m, name).weight for m in (base, half, ninety))
        assert torch.equal(w1[w1 != 0], w0[w1 != 0]) and torch.equal(w2[w2 != 0], w0[w2 != 0])


def test_loaded_checkpoint_reproduces_the_stored_clean_accuracy(store, smoke_tree):
    spec = spec_of(smoke_tree)
    doc = api.run(spec, store)
    x, y = api.eval_subset(spec.run_id(), store)
    assert x.min() >= 0 and x.max() <= 1 and len(x) == spec.eval.n_samples
    for point in doc["points"]:
        model = api.load_checkpoint(spec.run_id(), point["step"], store)
        assert not model.training
        assert accuracy(model, x, y) == point["clean_acc"]


def test_frames_for_the_pages(store, smoke_tree):
    spec = spec_of(smoke_tree)
    api.run(spec, store)
    runs = api.runs_frame(store)
    assert runs.loc[0, "status"] == "done" and runs.loc[0, "steps_done"] == runs.loc[0, "n_steps"]
    robust = api.robust_frame([spec.run_id()], store)
    assert set(robust.columns) >= {"run_id", "step", "sparsity", "clean_acc", "attack", "norm", "eps", "acc"}
    assert api.robust_frame([], store).empty


def test_transfer_from_the_base_equals_white_box_at_step_0_and_never_rises(store, smoke_tree):
    spec = spec_of(smoke_tree, "eval.transfer=true")
    doc = api.run(spec, store)
    first = doc["points"][0]
    assert first["transfer"] == first["robust"]  # crafted on this very model
    for point in doc["points"]:
        for attack in ("pgd_linf", "fgsm"):
            curve = [r["acc"] for r in point["transfer"] if r["attack"] == attack]
            white = [r["acc"] for r in point["robust"] if r["attack"] == attack]
            assert curve[0] == point["clean_acc"] and all(b <= a for a, b in zip(curve, curve[1:]))
            assert len(curve) == len(white)
    params = api.robust_frame([spec.run_id()], store, "transfer")["params"].iloc[0]
    assert '"source": "base"' in params and '"seed": 0' in params


def test_a_resumed_run_recrafts_the_same_transfer_examples(tmp_path, smoke_tree):
    from engine.store.db import Store

    spec = spec_of(smoke_tree, "eval.transfer=true")
    whole = Store(tmp_path / "whole")
    run_pipeline(spec, whole)
    resumed = Store(tmp_path / "resumed")
    with pytest.raises(Crash):
        run_pipeline(spec, resumed, crash_at(step=2, done=3))
    run_pipeline(spec, resumed)
    assert resumed.robust([spec.run_id()], "transfer") == whole.robust([spec.run_id()], "transfer")


def test_every_robust_row_keeps_its_attack_parameters_and_seed(store, smoke_tree):
    import json

    spec = spec_of(smoke_tree)
    api.run(spec, store)
    params = json.loads(api.robust_frame([spec.run_id()], store)["params"].iloc[-1])
    assert params["name"] == "pgd_linf" and params["steps"] == 5 and params["seed"] == 0


def test_every_checkpoint_reports_its_efficiency(store, smoke_tree):
    spec = spec_of(smoke_tree)
    doc = api.run(spec, store)
    dense, pruned = doc["points"][0]["efficiency"], doc["points"][-1]["efficiency"]
    assert dense["compression_ratio"] == 1.0 and dense["theoretical_speedup"] == 1.0
    prunable = sum(layer["numel"] for layer in doc["points"][-1]["layers"] if layer["prunable"])
    assert pruned["params"] - pruned["nonzero_params"] == round(0.9 * prunable)
    assert (
        pruned["compression_ratio"] > 2
        and pruned["theoretical_speedup"] > 2
        and pruned["size_bytes"] < dense["size_bytes"]
    )
    assert pruned["latency_ms_b1"] > 0 and pruned["latency_ms_b128"] > pruned["latency_ms_b1"]
    for prefix in ("", "dense_"):  # the checkpoint and its dense reference, timed in turn, with their spreads
        assert all(
            pruned[f"{prefix}latency_spread_b{b}"] >= 0 and pruned[f"{prefix}latency_ms_b{b}"] > 0 for b in (1, 128)
        )
    frame = api.efficiency_frame([spec.run_id()], store)
    assert list(frame["step"]) == [0, 1, 2]


def test_a_worker_s_run_fits_its_threads_to_the_free_cores_before_the_base_and_every_step(
    store, smoke_tree, monkeypatch
):
    import engine.pipeline as pipeline

    calls: list[int] = []
    monkeypatch.setattr(pipeline, "fit_threads", lambda cap: calls.append(cap) or 1)
    spec = validate(smoke_tree)
    run_pipeline(spec, store, threads=2)
    assert calls == [2] * len([0, *spec.schedule.plan()])  # the base, then each pruned step
    calls.clear()
    run_pipeline(validate(smoke_tree | {"seed": 1}), store)  # a CLI run keeps the process's threads
    assert calls == []


def test_an_attack_with_at_scores_only_those_checkpoints_and_is_never_transferred(store, smoke_tree):
    tree = copy.deepcopy(smoke_tree)
    tree["eval"]["transfer"] = True
    targets = spec_of(tree).schedule.sparsities()
    tree["eval"]["attacks"][1]["at"] = [targets[-1]]  # FGSM at the last checkpoint only
    spec = validate(tree)
    doc = api.run(spec, store)
    for point, target in zip(doc["points"], targets):
        scored = {r["attack"] for r in point["robust"]}
        assert scored == ({"pgd_linf", "fgsm"} if target == targets[-1] else {"pgd_linf"})
        assert {r["attack"] for r in point["transfer"]} == {"pgd_linf"}
    assert spec.attack_passes() < spec_of(smoke_tree).attack_passes()  # the estimate counts its share


def test_at_names_a_checkpoint_of_the_schedule_and_leaves_other_run_ids_alone(smoke_tree):
    from engine.errors import SpecError

    plain = spec_of(smoke_tree)
    assert '"at"' not in plain.canonical_json()  # unset: not written, so no earlier run id moved
    tree = copy.deepcopy(smoke_tree)
    tree["eval"]["attacks"][0]["at"] = [0.5]
    with pytest.raises(SpecError, match=r"eval\.attacks\[0\]\.at: 0\.5 is not a checkpoint of the schedule"):
        validate(tree)
