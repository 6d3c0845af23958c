"""What-ifs: a schedule seen before it runs (drawn from the code the pipeline runs), and a run forked
with one change, its parent recorded, both opened side by side."""

from __future__ import annotations

import base64
import itertools
import json

import numpy as np
import pytest

from engine import api
from engine.spec.schedules import SCHEDULES
from tests.support import page


@pytest.mark.parametrize("name", SCHEDULES.names())
@pytest.mark.parametrize("variant", [{}, {"finetune_steps": 7}, {"power": 1.0, "begin": 100, "end": 500}])
def test_the_preview_walks_the_plan_the_pipeline_runs(name, variant):
    tree = api.schedule_start(name) | {k: v for k, v in variant.items() if k in api.schedule_start(name)}
    plan = SCHEDULES.get(name).model_validate(tree).plan()
    walk = api.schedule_walk(tree)
    marks = walk[walk["checkpoint"].notna()]
    assert list(marks["checkpoint"]) == list(range(len(plan) + 1))
    assert list(marks["sparsity"]) == [0.0] + [step.sparsity for step in plan]  # engine.pipeline.run's plan
    assert list(marks["batch"]) == [0, *itertools.accumulate(step.finetune_steps for step in plan)]
    assert walk["sparsity"].between(0, 1).all()


def test_a_stored_run_reached_the_targets_its_preview_drew(populated):
    root, done_id, _ = populated
    store = api.open_store(root)
    walk = api.schedule_walk(api.spec_tree(done_id, store)["schedule"])
    targets = [row["target_sparsity"] for row in store.steps(done_id)]
    assert targets == list(walk.loc[walk["checkpoint"].notna(), "sparsity"])


def preview_top(at, key: str) -> float:
    """The highest sparsity (%) the schedule preview `key` draws."""
    chart = next(c for c in at.get("plotly_chart") if key in c.proto.id)
    spec = json.loads(chart.proto.spec)
    return max(max(numbers(trace["y"])) for trace in spec["data"] if trace.get("name") == "this run")


def numbers(values) -> list[float]:
    """A plotly JSON array: a plain list, or plotly's typed array (base64 bytes and a dtype)."""
    if isinstance(values, dict):
        return list(np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]))
    return list(values)


def test_editing_the_schedule_redraws_the_preview_without_a_submit(cache, monkeypatch):
    at = page("pages/runs.py", cache, monkeypatch)
    assert preview_top(at, "form-preview") == pytest.approx(90)
    next(n for n in at.number_input if n.label == "final_sparsity").set_value(0.5)
    at.run()
    assert preview_top(at, "form-preview") == pytest.approx(50)
    next(n for n in at.number_input if n.label == "power").set_value(1.0)
    at.run()
    assert not at.exception and preview_top(at, "form-preview") == pytest.approx(50)
    next(s for s in at.selectbox if s.label == "Schedule").set_value("iterative")
    at.run()
    assert [t.label for t in at.text_input][:1] == ["targets"] and preview_top(at, "form-preview") == pytest.approx(90)
    assert api.jobs_frame(api.open_store()).empty  # nothing submitted


def test_an_invalid_schedule_names_its_field_instead_of_a_preview(cache, monkeypatch):
    at = page("pages/runs.py", cache, monkeypatch)
    next(n for n in at.number_input if n.label == "end").set_value(450)  # not a multiple of frequency
    at.run()
    assert not at.exception
    assert any(w.value == "schedule: end - begin must be a multiple of frequency" for w in at.warning)


def test_forking_prefills_the_parent_and_one_change_gives_a_child_that_differs_only_by_it(populated, monkeypatch):
    root, done_id, _ = populated
    at = page("pages/runs.py", root, monkeypatch, fork=done_id[:12])
    assert not at.exception
    parent = api.spec_tree(done_id, api.open_store(root))
    assert next(n for n in at.number_input if n.label == "final_sparsity").value == parent["schedule"]["final_sparsity"]
    assert any("Nothing changed yet" in i.value for i in at.info)
    next(n for n in at.number_input if n.label == "final_sparsity").set_value(0.5)
    at.run()
    changed = [m.value for m in at.markdown if "Changed from the parent" in m.value]
    assert changed and changed[0].count(":orange[") == 1 and "schedule.final_sparsity: 0.9 → 0.5" in changed[0]
    assert any("share the trained base" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Submit the what-if").click()
    at.run()
    store = api.open_store(root)
    job = api.jobs_frame(store).iloc[0]
    child_spec = json.loads(
        store.db.execute("SELECT spec_json FROM jobs WHERE job_id = ?", (int(job["job_id"]),)).fetchone()[0]
    )
    assert api.fork_changes(done_id, api.validate_tree(child_spec), store) == ["schedule.final_sparsity: 0.9 → 0.5"]
    assert store.db.execute("SELECT parent_id FROM lineage").fetchone()[0] == done_id


@pytest.mark.parametrize("path", ["pages/surface.py", "pages/layers.py", "pages/playground.py"])
def test_every_page_of_one_run_offers_what_if(populated, monkeypatch, path):
    root, done_id, _ = populated
    at = page(path, root, monkeypatch, run=done_id[:12])
    assert not at.exception
    links = [link.proto for link in at.get("page_link") if "What if" in link.proto.label]
    assert links and f"fork={done_id[:12]}" in links[0].page + "?" + str(links[0].query_string)


def test_the_estimate_says_when_it_is_a_guess_and_learns_from_runs_here(cache):
    from engine.jobs.worker import Worker
    from engine.store.estimate import history_rates

    store = api.open_store()
    first = api.load_spec(preset="smoke")
    guess = api.estimate(first, store)
    assert guess.history == 0 and "rough guess" in guess.line() and not guess.base_cached
    assert guess.base > 0 and guess.finetune > 0 and guess.attacks > 0 and "5 checkpoints" not in guess.line()
    api.submit(first, store)
    Worker(store).serve(exit_when_idle=True)
    errors = api.estimate_errors(store)
    assert len(errors) == 1 and errors["relative_error"].notna().all() and (errors["actual_seconds"] > 0).all()
    child = api.load_spec(preset="smoke", overrides=["schedule.final_sparsity=0.5"])  # same base
    learnt = api.estimate(child, store)
    assert learnt.history == 1 and learnt.base_cached and learnt.base == 0.0
    assert "from 1 earlier runs here" in learnt.line() and "base cached" in learnt.line()
    assert "the dense one already measured" in learnt.line()  # the fork reuses step 0
    assert "its measured dense point" in api.fork_reuse(first.run_id(), child, store)
    reseeded = api.load_spec(preset="smoke", overrides=["seed=1"])
    assert "trains its own base" in api.fork_reuse(first.run_id(), reseeded, store)
    transfers = api.load_spec(preset="smoke", overrides=["schedule.final_sparsity=0.5", "eval.transfer=true"])
    measured_again = api.estimate(transfers, store)  # transfer measures step 0 itself
    checkpoints = len(child.schedule.plan()) + 1
    per_checkpoint = learnt.attacks / (checkpoints - 1)  # each attack at its own rate, on one checkpoint
    assert measured_again.attacks == pytest.approx(per_checkpoint * checkpoints)
    assert "already measured" not in measured_again.line()
    probed = api.load_spec(preset="smoke", overrides=["schedule.final_sparsity=0.5", "eval.mrs={}"])
    with_probes = api.estimate(probed, store)  # every checkpoint's MRS probe, at the attack phase's rate
    rate = history_rates(store, "mlp", "synthetic")[0]["attack"]
    assert with_probes.attacks == pytest.approx((per_checkpoint + rate * probed.probe_passes()) * checkpoints)
    assert "every layer's MRS" in with_probes.line()


def test_a_fresh_install_guesses_the_tour_near_what_it_takes(cache):
    """No history: LeNet-5's own rough rates, not small_cnn's (five times dearer attacks), so the tour's
    button says about 3 minutes on 2 cores (measured: 131 s from the CLI, 158 s clicked in Chromium), not 11."""
    tour = api.tour(api.open_store())
    assert 150 < tour.seconds < 300 and 20 < tour.first_seconds < 60


def test_bap_counts_a_deepfool_step_as_several_passes_and_the_probe_its_layers():
    from engine.spec.runspec import DEEPFOOL_STEP_PASSES, PROBED_LAYERS, passes

    ap, bap = (api.load_spec(preset="teaching", overrides=[f"prune.mode={m}"]) for m in ("ap", "bap"))
    assert passes(*ap.finetune_mode()) == 1 + ap.prune.adversary.steps
    assert passes(*bap.finetune_mode()) == 1 + bap.prune.adversary.deepfool_steps * DEEPFOOL_STEP_PASSES
    probed = api.load_spec(preset="teaching", overrides=["eval.mrs={n_samples: 100, ascent_steps: 3}"])
    assert probed.probe_passes() == 100 * (10 + PROBED_LAYERS * 3) and ap.probe_passes() == 0
    plain = api.load_spec(preset="teaching")
    assert probed.work() - plain.work() == 7 * probed.probe_passes()  # seven checkpoints, each probed


def test_the_runs_page_shows_the_estimate_before_submit(cache, monkeypatch):
    at = page("pages/runs.py", cache, monkeypatch)
    assert not at.exception
    assert any(c.value.startswith(":material/timer: ≈ ") and "rough guess" in c.value for c in at.caption)
    seeds = api.preset_path("smoke").read_text().replace("seed: 0", "seed: [0, 1, 2, 3]")
    at.text_area[-1].set_value(seeds).run()  # the YAML tab: four seeds, four runs queued
    assert not at.exception
    assert any(c.value.startswith(":material/timer: 4 runs (one per seed), ≈ ") for c in at.caption)


def test_submit_all_queues_every_seed_or_none(store, smoke_tree):
    import pytest

    from engine import api
    from engine.errors import SpecError
    from engine.science.catalog import validate

    small = validate(smoke_tree)
    huge = validate(smoke_tree | {"train": {**smoke_tree.get("train", {}), "epochs": 1000}, "seed": 7})
    with pytest.raises(SpecError, match="allow-long"):
        api.submit_all([small, huge], store)
    assert api.jobs(store) == []  # the small one was not queued either
    assert [j.run_id for j in api.submit_all([small], store)] == [small.run_id()]


def test_each_attack_is_estimated_at_its_own_timed_rate_and_an_untimed_one_at_its_stated_prior(cache):
    from engine.jobs.worker import Worker
    from engine.store.estimate import ATTACK_COST_PRIOR, attack_seconds, history_rates

    store = api.open_store()
    api.submit(api.load_spec(preset="smoke"), store)
    Worker(store).serve(exit_when_idle=True)
    rates, _ = history_rates(store, "mlp", "synthetic")
    assert (
        rates["attack:pgd_linf"] > 0 and rates["attack:fgsm"] > 0 and rates["attack:pgd_linf"] != rates["attack:fgsm"]
    )
    smoke = api.load_spec(preset="smoke")
    alone = api.load_spec(preset="smoke", overrides=["eval.attacks=[{name: pgd_linf, eps: [0, 0.02], steps: 5}]"])
    assert attack_seconds(alone, rates, 1) == pytest.approx(
        smoke.eval.n_samples * alone.eval.attacks[0].passes() * rates["attack:pgd_linf"]
    )
    with_autoattack = api.load_spec(
        preset="smoke",
        overrides=["eval.attacks=[{name: pgd_linf, eps: [0, 0.02], steps: 5}, {name: autoattack, eps: [0, 0.02]}]"],
    )
    autoattack = with_autoattack.eval.attacks[1]
    untimed = attack_seconds(with_autoattack, rates, 1) - attack_seconds(alone, rates, 1)
    prior = ATTACK_COST_PRIOR["autoattack"]
    assert untimed == pytest.approx(smoke.eval.n_samples * autoattack.passes() * rates["attack"] * prior)
