"""Evaluate until decided: a comparison grows chunk by chunk, through the engine, a real worker and the
pages, and a kill in the middle changes no number."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from engine import api
from engine.jobs import decide
from engine.pipeline import run
from engine.report import sequential
from engine.report.stats import unpack_flags
from engine.science.catalog import validate

ATTACK = "pgd_linf"


def _tree(smoke_tree: dict, method: str) -> dict:
    tree = copy.deepcopy(smoke_tree)
    tree["prune"]["method"] = method
    tree["eval"] = {
        "n_samples": 100,
        "batch_size": 100,
        "attacks": [{"name": ATTACK, "eps": [0, 0.05, 0.1], "steps": 3}],
    }
    return tree


@pytest.fixture
def pair(store, smoke_tree, monkeypatch):
    """Two runs on one base (magnitude and random pruning), scored on 100 of synthetic's 500 test images,
    grown in chunks of 100."""
    monkeypatch.setattr(sequential, "CHUNK", 100)
    ids = []
    for method in ("global_magnitude", "random"):
        spec = validate(_tree(smoke_tree, method))
        run(spec, store)
        ids.append(spec.run_id())
    return store, ids


def _rows(store, run_id, step):
    return {
        row["eps"]: (row["n"], row["acc"], row["correct"])
        for row in store.robust([run_id], flags=True)
        if row["step"] == step and row["attack"] == ATTACK
    }


def test_a_checkpoint_against_itself_never_decides_and_grows_until_the_split_is_spent(pair):
    store, (first, _) = pair
    question = decide.Question((first, 2), (first, 2), ATTACK, 0.05)
    outcome = decide.grow(store, question)
    assert outcome.verdict == "inconclusive" and outcome.exhausted
    assert outcome.difference.n == 500 and outcome.difference.sequential
    grown = _rows(store, first, 2)
    assert {n for n, _, _ in grown.values()} == {500}, "every ε of the attack keeps one n"
    accs = [grown[eps][1] for eps in sorted(grown)]
    assert all(b <= a for a, b in zip(accs, accs[1:])), "the grown curve never rises with ε"
    frame = api.robust_frame([first])
    step2 = frame[(frame["step"] == 2) & (frame["attack"] == ATTACK)]
    assert set(step2["n"]) == {500} and set(step2["n_own"]) == {100}
    assert set(frame[frame["step"] == 1]["n"]) == {100}, "only the checkpoints asked about grow"


def test_grown_images_continue_the_runs_own_seeded_order(pair):
    """The chunk after the run's own n_samples is the next images of the same permutation: a run that had
    scored 200 images has, on its first 200, what the 100-image run has after one chunk (up to order)."""
    from engine.pipeline import eval_chunk, eval_split
    from engine.science.data import data_of

    store, (first, _) = pair
    spec = validate(api.spec_tree(first))
    data = data_of(spec.dataset)
    own, chunk = eval_split(data, spec), eval_chunk(data, spec, 1)
    wider = eval_split(
        data, validate({**api.spec_tree(first), "eval": {**api.spec_tree(first)["eval"], "n_samples": 200}})
    )
    both = np.sort(np.concatenate([own[1].numpy(), chunk[1].numpy()]))
    assert len(chunk[0]) == 100 and np.array_equal(both, np.sort(wider[1].numpy()))
    assert len(eval_chunk(data, spec, 5)[0]) == 0, "the split is spent after four chunks"


def test_a_kill_between_chunks_changes_no_number(pair, tmp_path, smoke_tree, monkeypatch):
    store, (first, second) = pair
    question = decide.Question((first, 2), (second, 2), ATTACK, 0.1)

    def killed(chunk, index, possible):
        if chunk == 3 and index == 1:
            raise KeyboardInterrupt  # the second checkpoint's third chunk is in flight

    with pytest.raises(KeyboardInterrupt):
        decide.grow(store, question, on_chunk=killed, to_the_end=True)
    assert _rows(store, first, 2)[0.1][0] == 400 and _rows(store, second, 2)[0.1][0] == 300
    resumed = decide.grow(store, question, to_the_end=True)

    monkeypatch.setenv("AER_CACHE_DIR", str(tmp_path / "fresh"))
    api.forget_stores()
    fresh = api.open_store()
    for method in ("global_magnitude", "random"):
        run(validate(_tree(smoke_tree, method)), fresh)
    uninterrupted = decide.grow(fresh, question, to_the_end=True)
    assert resumed.difference == uninterrupted.difference and resumed.exhausted
    for run_id in (first, second):
        assert _rows(store, run_id, 2) == _rows(fresh, run_id, 2)


def test_a_real_difference_stops_growing_once_decided(pair):
    store, (first, _) = pair
    # the dense model against its 90 %-sparse checkpoint at a large ε: far apart, decided within the split
    question = decide.Question((first, 0), (first, 2), ATTACK, 0.0, margin=0.0)
    before = decide.standing(store, question)
    outcome = decide.grow(store, question)
    if before.verdict != "inconclusive":
        assert outcome.difference.n == 100 and not outcome.difference.sequential  # nothing to grow
    else:
        assert outcome.verdict != "inconclusive" or outcome.exhausted


def test_questions_that_cannot_grow_are_refused_by_name(pair, smoke_tree, store):
    from engine.errors import SpecError

    _, (first, second) = pair
    other = _tree(smoke_tree, "random")
    other["seed"] = 1
    spec = validate(other)
    run(spec, store)
    with pytest.raises(SpecError, match="different images"):
        decide.check_question(store, decide.Question((first, 2), (spec.run_id(), 2), ATTACK, 0.05))
    with pytest.raises(SpecError, match="smoothing draws noise per image"):
        decide.check_question(store, decide.Question((first, 2), (second, 2), "smoothing", 0.25))
    with pytest.raises(SpecError, match="has no attack fgsm"):
        decide.check_question(store, decide.Question((first, 2), (second, 2), "fgsm", 0.05))


def test_the_api_states_the_question_its_cost_and_queues_it_once(pair):
    store, (first, second) = pair
    standing = api.decision((first[:12], 2), (second[:12], 2), ATTACK, 0.05)
    assert standing["can_grow"] and standing["cost"].images_left == 400 and standing["job_id"] is None
    assert standing["cost"].seconds_per_chunk is not None and standing["cost"].seconds_per_chunk > 0
    job = api.submit_decision((first, 2), (second, 2), ATTACK, 0.05)
    again = api.submit_decision((first, 2), (second, 2), ATTACK, 0.05)
    assert job.job_id == again.job_id and job.run_id.startswith("decide:")
    assert api.decision((first, 2), (second, 2), ATTACK, 0.05)["job_id"] == job.job_id


@pytest.mark.slow
def test_a_real_worker_grows_the_comparison_and_the_pages_read_the_new_n(pair):
    from engine.jobs.worker import Worker

    store, (first, second) = pair
    job = api.submit_decision((first, 2), (first, 2), ATTACK, 0.1)  # itself: never decided, grows to the end
    Worker(store, lease_seconds=30).serve(exit_when_idle=True)
    done = api.job(job.job_id)
    assert done.status == "done", done
    difference = api.compare((first, 2), (second, 2), ATTACK, 0.1)
    assert difference.n == 100 and not difference.sequential, "the other run's checkpoint did not grow"
    assert api.compare((first, 2), (first, 2), ATTACK, 0.1).n == 500
    flags = [unpack_flags(r["correct"], r["n"]) for r in store.robust([first], flags=True) if r["step"] == 2]
    assert all(len(f) == 500 for f in flags)


def test_the_cli_decides_and_prints_before_and_after(pair, capsys):
    from engine.__main__ import main

    store, (first, second) = pair
    code = main(["decide", f"{first[:10]}:2", f"{first[:10]}:2", "--attack", ATTACK, "--eps", "0.05"])
    out = capsys.readouterr().out
    assert code == 0 and "before: inconclusive" in out and "after: inconclusive" in out
    assert "paired over the same 500 images, grown until decided" in out and "the test split is spent" in out
    assert main(["decide", f"{first[:10]}", f"{second[:10]}:2", "--attack", ATTACK, "--eps", "0.05"]) == 2
    assert "write RUN:STEP" in capsys.readouterr().err


def test_compare_offers_decide_this_and_then_shows_the_grown_n(pair, monkeypatch):
    from engine.jobs.worker import Worker
    from tests.support import page

    store, (first, second) = pair
    undecided = [
        eps
        for eps in (0.0, 0.05, 0.1)
        if decide.standing(store, decide.Question((second, 2), (first, 2), ATTACK, eps)).verdict == "inconclusive"
    ]
    assert undecided, "the fixture's runs leave some ε undecided on 100 images"
    eps = undecided[-1]
    at = page(
        "pages/compare.py", store.root, monkeypatch, runs=f"{first[:12]},{second[:12]}", attack=ATTACK, eps=str(eps)
    )
    assert not at.exception
    assert any("cannot decide this" in c.value and "per 500 more" in c.value for c in at.caption)
    at.button(key="decide").click().run()
    assert not at.exception
    jobs = [j for j in api.jobs() if j.run_id.startswith("decide:")]
    assert len(jobs) == 1 and jobs[0].status == "queued"
    Worker(store, lease_seconds=30).serve(exit_when_idle=True)
    at = page(
        "pages/compare.py", store.root, monkeypatch, runs=f"{first[:12]},{second[:12]}", attack=ATTACK, eps=str(eps)
    )
    sentence = next(m.value for m in at.markdown if m.value.startswith("Last checkpoints at ε"))
    assert "grown until decided" in sentence


def test_surface_offers_to_decide_an_undecided_sweet_spot(pair, monkeypatch):
    from engine.report.summaries import sweet_spots
    from tests.support import page

    store, (first, _) = pair
    spots = sweet_spots(api.robust_frame([first], flags=True))
    assert (spots["verdict"] == "inconclusive").any(), "on 100 images some ☆ is undecided"
    at = page("pages/surface.py", store.root, monkeypatch, run=first[:12], view="heat map")
    assert not at.exception
    assert any(s.label == "☆ Undecided sweet spot" for s in at.selectbox)
    assert at.button(key="decide-spot").label == "Decide this"
