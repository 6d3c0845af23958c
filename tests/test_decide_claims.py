"""Deciding a paper claim its images cannot: a plan of looks fixed before the first (the runs' own n,
doubled up to the test split, every look at the Bonferroni level over the looks), calibrated by
simulation; grown rows read at their last complete look; the Papers page's "Decide this" and
`check-preset --decide`."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from engine import api
from engine.jobs.decide import Growth, grow_to
from engine.papers import deciding
from engine.papers import presets as papers
from engine.report import sequential
from engine.report.flags import pack_flags
from engine.report.stats import tango
from engine.store import extended
from tests.paper_fakes import fill_paper
from tests.support import page


def test_the_plan_doubles_to_the_split_and_shares_alpha_over_its_looks():
    assert sequential.claim_looks(500, 10_000) == [500, 1000, 2000, 4000, 8000, 10_000]
    assert sequential.plan_level(500, 10_000) == pytest.approx(1 - 0.05 / 6)
    assert sequential.claim_looks(10_000, 10_000) == [10_000] and sequential.plan_level(10_000, 10_000) == 0.95
    assert sequential.last_look(1700, 500, 10_000) == 1000 and sequential.last_look(500, 500, 10_000) == 500
    assert sequential.next_look(1000, 500, 10_000) == 2000 and sequential.next_look(10_000, 500, 10_000) is None


def _false_decisions(levels: list[float], reps: int, discordance: float = 0.10, seed: int = 7) -> tuple[float, float]:
    """Grow a null comparison (no true difference) look by look until its interval excludes 0: the shares
    of runs that end in a false "holds" (first better) and a false "fails"."""
    rng = np.random.default_rng(seed)
    looks = sequential.claim_looks(500, 10_000)
    holds = fails = 0
    for _ in range(reps):
        b = c = seen = 0
        for look, level in zip(looks, levels):
            new_b, new_c, _ = rng.multinomial(look - seen, [discordance / 2, discordance / 2, 1 - discordance])
            b, c, seen = b + new_b, c + new_c, look
            low, high = tango(b, c, look, level)
            if low > 0 or high < 0:
                holds, fails = holds + (low > 0), fails + (high < 0)
                break
    return holds / reps, fails / reps


def test_growing_a_claim_until_decided_keeps_false_holds_at_the_nominal_rate():
    looks = len(sequential.claim_looks(500, 10_000))
    reps = 3000
    holds, fails = _false_decisions([sequential.plan_level(500, 10_000)] * looks, reps)
    se = np.sqrt(0.025 * 0.975 / reps)
    assert holds <= 0.025 + 2.5 * se and fails <= 0.025 + 2.5 * se  # one side of the 95 % promise each
    naive_holds, _ = _false_decisions([0.95] * looks, reps)  # each look at 95 %: the looks add up
    assert naive_holds > 0.06


# ---- grown rows judged at their last complete look ---------------------------------------------


def _hydra_close(variant, step, target, attack, eps):
    lwm = {0: 0.6, 1: 0.5, 2: 0.45, 3: 0.3}[step]
    return 0.8, lwm + (0.01 if variant == "HYDRA" else 0.0), 0


def _grow_rows(store, name: str, chunks: int, size: int = 500, seed: int = 3) -> None:
    """Add `chunks` chunks to every checkpoint of the claim's attack, flags drawn at the row's accuracy."""
    rng = np.random.default_rng(seed)
    attack = papers.load_paper(name).options["attack"]
    results = papers.collect(papers.load_paper(name), store)
    rows = results.robust[results.robust["attack"] == attack]
    for (run, step), group in rows.groupby(["run_id", "step"]):
        for chunk in range(1, chunks + 1):
            flags = [pack_flags(rng.random(size) < r.acc) for r in group.itertuples()]
            points = [
                SimpleNamespace(eps=float(e), n=size, correct=f, seconds=1.0) for e, f in zip(group["eps"], flags)
            ]
            with store.atomic() as db:
                extended.put_chunk(db, run, int(step), attack, chunk, points)


def test_a_grown_claim_is_read_at_its_last_complete_look_at_the_plan_level(store):
    fill_paper(store, "hydra", _hydra_close, shared=False)
    assert papers.check("hydra", store).status == "inconclusive"
    _grow_rows(store, "hydra", 2)  # 1,500 images: look 2 (1,000) is complete, look 3 (2,000) is not
    verdict = papers.check("hydra", store)
    assert "grown to 1,000 images (look 2 of 6 planned" in verdict.headline
    assert "99.17 %" in verdict.headline
    plan = deciding.claim_growth("hydra", store)
    assert (plan.n, plan.n_own, plan.next_look, plan.look) == (1500, 500, 2000, 2)
    assert plan.growth.chunks == 3 and len(plan.growth.checkpoints) == 8  # 2 runs × 4 checkpoints
    assert "look 2 of 6 planned (500 → 1,000 → 2,000 → 4,000 → 8,000 → 10,000 images" in plan.line()


def test_a_comparison_grown_elsewhere_leaves_the_claim_on_its_own_images_at_95(store):
    fill_paper(store, "hydra", _hydra_close, shared=False)
    before = papers.check("hydra", store)
    hydra = api.paper_specs("hydra")["HYDRA"].run_id()
    with store.atomic() as db:  # the Compare page grew HYDRA's last checkpoint alone
        points = [
            SimpleNamespace(eps=e, n=500, correct=pack_flags(np.ones(500, bool)), seconds=1.0) for e in (0, 0.05, 0.1)
        ]
        extended.put_chunk(db, hydra, 3, "pgd_linf", 1, points)
    assert papers.check("hydra", store).headline == before.headline


def test_a_claim_that_cannot_grow_says_why(store):
    fill_paper(store, "transfer", lambda *a: (0.8, 0.5, 0.6))
    with pytest.raises(api.SpecError, match="transfer: its claim cannot grow: it is judged on examples crafted"):
        deciding.claim_growth("transfer", store)
    with pytest.raises(api.SpecError, match="runs not finished yet"):
        deciding.claim_growth("hydra", store)


def test_a_growth_job_round_trips_and_is_told_from_a_question():
    growth = Growth((("abc", 0), ("abc", 1)), "pgd_linf", 3, "hydra: 2,000 images")
    assert Growth.from_json(growth.as_json()) == growth and growth.job_key().startswith("grow:")
    from engine.jobs.decide import is_decide_job, is_growth_job

    assert is_decide_job(growth.as_json()) and is_growth_job(growth.as_json())
    assert not is_growth_job(json.dumps({"decide": {}})) and not is_decide_job('{"model": {}}')


# ---- the Papers page ------------------------------------------------------------------------


def test_the_papers_page_offers_decide_this_beside_an_inconclusive_claim_and_queues_its_next_look(cache, monkeypatch):
    store = api.open_store()
    fill_paper(store, "hydra", _hydra_close, shared=False)
    at = page("pages/papers.py", cache, monkeypatch, paper="hydra")
    assert not at.exception
    assert any("look 1 of 6 planned" in c.value for c in at.caption)
    at.button(key="decide-claim-hydra").click().run()
    assert not at.exception
    job = api.claim_job("hydra", api.open_store())
    assert job is not None
    queued = Growth.from_json(api.job(job).spec_json)
    assert queued.chunks == 1 and queued.label == "hydra: 1,000 images" and len(queued.checkpoints) == 8
    assert [p.proto.text for p in at.get("progress")] == [f"Deciding (job {job}): queued"]


# ---- end to end: a reduced preset grown on real checkpoints -------------------------------------


@pytest.mark.slow
def test_check_preset_decide_grows_a_real_claim_look_by_look_and_resumes_the_same(cache, monkeypatch, capsys):
    monkeypatch.setattr(sequential, "CHUNK", 40)  # the synthetic split holds 500 images: looks 40 → 500
    api.run_paper("hydra", reduced=True, progress=False)
    store = api.open_store()
    first = deciding.claim_growth("hydra", store, reduced=True)
    assert first.looks == [40, 80, 160, 320, 500]
    grow_to(store, first.growth)  # look 2 by hand, then the CLI goes on
    grown = papers.check("hydra", store, reduced=True)
    from engine.__main__ import main

    assert main(["check-preset", "hydra", "--reduced", "--decide", "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["status"] != "incomplete"
    rows = api.paper_results("hydra", store, reduced=True).robust
    attacked = rows[rows["attack"] == "pgd_linf"]
    plan = deciding.claim_growth("hydra", store, reduced=True)
    assert verdict["status"] != "inconclusive" or plan.next_look is None  # decided, or the split is spent
    assert (attacked["n"] > attacked["n_own"]).all() and "grown to" in grown.headline
