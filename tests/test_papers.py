"""Paper presets: their specs, their claim checks on hand-made stores, their figures, and tiny versions end to end."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys

import pytest

from engine import api
from engine.errors import SpecError
from engine.papers import presets as papers
from engine.papers.claims import CHECKS
from tests.paper_fakes import NAMES, SCENARIOS, fill_paper, hydra_holds, mrpf_holds

# ---- the presets themselves -------------------------------------------------------------------


def test_there_is_one_preset_per_seed_paper():
    assert papers.paper_names() == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_preset_validates_full_and_reduced_and_its_options_fit_its_check(name):
    preset = papers.load_paper(name)
    full, tiny = papers.expand(preset), papers.expand(preset, reduced=True)
    assert list(full) == list(tiny) == list(preset.levels())
    assert len({s.run_id() for s in full.values()}) == len(full)  # every variant is its own run
    assert len({s.base_id() for s in full.values()}) == 1  # ... on one shared base model
    assert all(s.dataset.name == "synthetic" for s in tiny.values())
    inspect.signature(CHECKS.get(preset.check).judge).bind(None, **preset.options)  # raises if an option is unknown
    # measured (or estimated until re-measured), and minutes, not hours: AutoAttack, the reference that
    # checks a PGD verdict, costs 6-8 min per small_cnn checkpoint on 500 images on 2 cores (mrpf scores it on
    # its four 75 % checkpoints: 43 min)
    assert preset.cold_seconds and preset.cold_seconds < 45 * 60


PAPER_SETTING = {
    "bap": ("mnist", "lenet5"),
    "hydra": ("cifar10", "torchvision:vgg16_bn"),
    "hydra_smoothing": ("cifar10", "torchvision:vgg16_bn"),
    "mrpf": ("cifar10", "torchvision:resnet18"),
    "pfa": ("cifar10", "resnet8"),
    "transfer": ("cifar10", "torchvision:resnet18"),
}


@pytest.mark.parametrize("name", NAMES)
def test_every_preset_has_a_paper_scale_that_validates_and_is_estimated_not_run(store, name, monkeypatch):
    monkeypatch.setattr(papers, "cost_ratio", lambda *args: 40.0)  # timing the models is its own test
    preset = papers.load_paper(name)
    laptop, paper = papers.expand_all(preset), papers.expand_all(preset, paper=True)
    assert list(paper) == list(laptop) and not {s.run_id() for s in paper.values()} & {
        s.run_id() for s in laptop.values()
    }
    assert {(s.dataset.name, s.model.name) for s in paper.values()} == {PAPER_SETTING[name]}
    inspect.signature(CHECKS.get(preset.check).judge).bind(None, **{**preset.options, **preset.paper_scale.options})
    scale = api.paper_scale(name, store)
    laptop_seconds = sum(api.estimate(spec, store).seconds for spec in laptop.values())
    assert scale["runs"] == len(paper) and scale["passes"] > 10 * sum(s.work() for s in laptop.values())
    assert scale["seconds"] > 100 * laptop_seconds  # a GPU's work, and said so
    assert "Departs" in scale["note"] or "departs" in scale["note"]
    assert store.runs() == []  # estimated, nothing queued or run


def test_a_larger_model_s_training_step_is_timed_slower_than_the_guess_s_model(tmp_path):
    from engine.jobs.probe import cost_ratio

    assert cost_ratio(tmp_path, "resnet8", "cifar10") > 1.0  # 2.4× here (2026-12-04), a VGG16 49×
    assert cost_ratio(tmp_path, "small_cnn", "a_folder_of_mine") == 1.0  # shape known only from its files


def test_the_paper_scale_is_refused_without_allow_long_and_judged_on_its_own_runs(cache, monkeypatch, capsys):
    monkeypatch.setattr(papers, "cost_ratio", lambda *args: 40.0)
    from engine.__main__ import main

    assert main(["run-paper", "hydra", "--scale", "paper"]) == 2
    assert re.search(r"hydra at paper scale: 2 runs, .* h on this machine; add --allow-long", capsys.readouterr().err)
    assert api.open_store().runs() == []
    verdict = api.paper_verdict("hydra", store=api.open_store(), paper=True)
    assert verdict.status == "incomplete"


def test_presets_of_the_same_base_share_its_training():
    base = {name: next(iter(api.paper_specs(name).values())).base_id() for name in NAMES}
    assert base["bap"] == base["pfa"] and base["hydra"] == base["mrpf"]
    hydra = api.paper_specs("hydra")["HYDRA"]
    assert hydra.train.mode == "pgd_at" and hydra.schedule.model_dump()["targets"] == [0.8, 0.9, 0.94]


def test_hydra_s_smallest_k_leaves_every_layer_the_weights_the_paper_s_first_layer_keeps():
    """HYDRA prunes every layer to the same k; the paper's VGG16 keeps 17 of its first convolution's
    1,728 weights at k = 0.01, so the laptop preset's smallest k must leave each layer at least as many."""
    from engine.science.data import KNOWN_INFO
    from engine.science.models import build_model

    for name in ("hydra", "hydra_smoothing"):
        spec = api.paper_specs(name)["HYDRA"]
        k = 1 - max(spec.schedule.model_dump()["targets"])
        model = build_model(spec.model.name, KNOWN_INFO[spec.dataset.name])
        kept = {
            n: k * m.weight.numel() for n, m in model.named_modules() if hasattr(m, "weight") and m.weight.dim() > 1
        }
        assert min(kept.values()) >= 0.95 * int(0.01 * 64 * 3 * 9), (name, kept)


def test_an_unknown_preset_names_the_choices():
    with pytest.raises(SpecError, match="choose from"):
        papers.load_paper("../etc/passwd")


def _write(folder, name, text):
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")


BASE = """title: T
paper: P
claim: C
check: {check}
base: {{schedule: {{name: one_shot, targets: [0.5]}}}}
variants:
  a: {{prune.method: global_magnitude}}
  b: {{prune.method: {second}}}
"""


HYDRA_OPTIONS = "options: {attack: pgd_linf, eps: 0.1, hydra: b, lwm: a}\n"


def test_bad_presets_get_messages_naming_the_field(tmp_path, monkeypatch):
    monkeypatch.setattr(papers, "PAPERS_DIR", tmp_path)
    _write(tmp_path, "unknown", BASE.format(check="nope", second="random"))
    _write(tmp_path, "twins", BASE.format(check="hydra", second="global_magnitude") + HYDRA_OPTIONS)
    _write(tmp_path, "typo", BASE.format(check="hydra", second="random") + "colds: 3\n")
    with pytest.raises(SpecError, match="check: unknown claim check 'nope'"):
        papers.load_paper("unknown")
    with pytest.raises(SpecError, match="two variants give the same spec"):
        papers.expand(papers.load_paper("twins"))
    with pytest.raises(SpecError, match="typo: colds: unknown field"):
        papers.load_paper("typo")


def test_a_mistyped_or_missing_option_is_refused_when_the_preset_loads_naming_it(tmp_path, monkeypatch):
    monkeypatch.setattr(papers, "PAPERS_DIR", tmp_path)
    text = BASE.format(check="hydra", second="random")
    _write(tmp_path, "typo", text + "options: {attack: pgd_linf, epss: 0.1, hydra: b, lwm: a}\n")
    _write(tmp_path, "short", text + "options: {attack: pgd_linf, hydra: b, lwm: a}\n")
    with pytest.raises(SpecError, match=r"typo: options.epss: unknown option for the hydra check; choose from \["):
        papers.load_paper("typo")
    with pytest.raises(SpecError, match="short: options.eps: required by the hydra check"):
        papers.load_paper("short")


def test_a_new_paper_is_one_check_module_and_one_yaml(tmp_path, monkeypatch):
    """The newcomer's path for a paper preset: a check registered with its figures (one module) and the
    preset's YAML; loading, judging and drawing need nothing else."""
    import plotly.graph_objects as go

    from engine.papers import claims
    from engine.registry import Registry

    monkeypatch.setattr(claims, "CHECKS", Registry("claim check"))
    monkeypatch.setattr(papers, "CHECKS", claims.CHECKS)
    monkeypatch.setattr(papers, "PAPERS_DIR", tmp_path)

    def figures(results, options):
        return [go.Figure(go.Scatter(x=[0, 1], y=[options["eps"]] * 2))]

    @claims.register_check("toy", figures)
    def toy(results, eps: float) -> claims.Verdict:
        """A toy claim: holds whenever ε is positive."""
        return claims.Verdict("holds" if eps > 0 else "fails", f"toy at ε = {eps}")

    _write(tmp_path, "toy", BASE.format(check="toy", second="random") + "options: {eps: 0.1}\n")
    preset = papers.load_paper("toy")
    assert claims.CHECKS.help("toy") == "A toy claim: holds whenever ε is positive."
    assert claims.CHECKS.get("toy").judge(None, **preset.options).status == "holds"
    drawn = papers.figures(preset, None)  # the toy draws from its options alone
    assert list(drawn[0].data[0].y) == [0.1, 0.1]


def test_every_paper_check_is_registered_with_its_figures_from_its_own_module():
    from engine.papers import claims

    assert claims.CHECKS.names() == sorted({papers.load_paper(name).check for name in NAMES})
    for name in claims.CHECKS:
        check = claims.CHECKS.get(name)
        assert check.judge.__module__ == check.figures.__module__ == f"engine.papers.checks.{name}"


# ---- claim checks on hand-made stores ---------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_a_claim_that_holds_in_the_store_is_said_to_hold_with_its_numbers(store, name):
    fill_paper(store, name, SCENARIOS[name][0])
    verdict = papers.check(name, store)
    assert verdict.status == "holds", verdict.headline
    assert verdict.headline.startswith("Holds here") and all(f.holds for f in verdict.findings)
    assert "%" in verdict.headline or "pt" in verdict.headline  # the numbers behind it
    assert not verdict.table.empty
    json.dumps(verdict.as_dict())  # JSON-ready


@pytest.mark.parametrize("name", NAMES)
def test_a_claim_that_fails_in_the_store_is_reported_as_failing(store, name):
    fill_paper(store, name, SCENARIOS[name][1])
    verdict = papers.check(name, store)
    assert verdict.status == "fails", verdict.headline
    assert verdict.headline.startswith("Does not hold here")
    assert any(not f.holds for f in verdict.findings)


def test_the_numbers_in_a_verdict_are_the_stores(store):
    fill_paper(store, "hydra", hydra_holds)
    verdict = papers.check("hydra", store)
    last = verdict.table.iloc[-1]
    assert last["target"] == 0.94 and last["HYDRA"] == pytest.approx(0.4) and last["LWM"] == pytest.approx(0.3)
    assert "40.0 % vs 30.0 %; statistic +10.0 pt [" in verdict.findings[0].numbers


def _hydra_close(variant, step, target, attack, eps):
    """HYDRA one point ahead of LWM at every step: a gap well inside the noise of the evaluation images."""
    lwm = {0: 0.6, 1: 0.5, 2: 0.45, 3: 0.3}[step]
    return 0.8, lwm + (0.01 if variant == "HYDRA" and step else 0), 0


def test_a_gap_inside_the_noise_is_inconclusive_and_says_what_would_decide_it(store):
    fill_paper(store, "hydra", _hydra_close, shared=False)  # variants agree only by chance: no pairing gain
    verdict = papers.check("hydra", store)
    assert verdict.status == "inconclusive", verdict.headline
    ahead, grows = verdict.findings
    assert ahead.status == "inconclusive" and "evaluation images" in ahead.to_decide and "margin 2 pt" in ahead.numbers
    assert grows.status == "inconclusive" and "more images alone will not decide it" in grows.to_decide  # gap constant
    assert (
        verdict.headline.startswith("Cannot be decided")
        and verdict.as_dict()["findings"][1]["status"] == "inconclusive"
    )


def test_the_same_gap_on_shared_images_is_decided_by_pairing(store):
    fill_paper(store, "hydra", _hydra_close)  # nested flags: HYDRA right on every image LWM gets right, and more
    ahead = papers.check("hydra", store).findings[0]
    assert ahead.status == "holds", ahead.numbers  # +1 pt, every discordant image in HYDRA's favour


def test_a_preset_with_runs_missing_is_incomplete_and_says_which(store):
    fill_paper(store, "mrpf", mrpf_holds, only=["MRPF", "uniform L1"])
    verdict = papers.check("mrpf", store)
    assert verdict.status == "incomplete"
    assert "2 of 4 runs not finished" in verdict.headline and "uniform random (missing)" in verdict.headline


# ---- figures ----------------------------------------------------------------------------------

# transfer: clean, transfer and white-box lines, each over its interval band
FIGURE_TRACES = {
    "hydra": [4],
    "hydra_smoothing": [4, 4],
    "bap": [4 * 5, None],
    "pfa": [None, None, None, None, 7],  # PGD, DeepFool, JSMA, AutoAttack, then r adversarial
    "transfer": [6, 6],
    "mrpf": [4, 4],
}


@pytest.mark.parametrize("name", NAMES)
def test_each_paper_figure_is_drawn_from_the_store(store, name):
    fill_paper(store, name, SCENARIOS[name][0])
    figures = api.paper_figures(name, api.paper_results(name, store))
    assert len(figures) == len(FIGURE_TRACES[name])
    for figure, traces in zip(figures, FIGURE_TRACES[name]):
        assert len(figure.data) == traces if traces is not None else len(figure.data) > 0


def test_paper_figures_of_an_empty_store_say_there_is_nothing_yet(store):
    for name in NAMES:
        figures = api.paper_figures(name, api.paper_results(name, store))
        assert all(len(f.data) == 0 and f.layout.annotations for f in figures)


# ---- the tiny versions, end to end ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bap", "mrpf", "pfa", "transfer"])
def test_the_reduced_preset_runs_end_to_end_and_gets_a_verdict(store, name):
    papers.run(name, store, reduced=True, progress=False)
    results = api.paper_results(name, store, reduced=True)
    assert results.missing() == []
    verdict = api.paper_verdict(name, results)
    assert verdict.status in ("holds", "fails", "inconclusive") and verdict.findings
    assert all(len(f.data) for f in api.paper_figures(name, results))


@pytest.mark.slow
def test_the_cli_runs_a_reduced_paper_and_checks_it_as_json(cache):
    run = subprocess.run(
        [sys.executable, "-m", "engine", "run-paper", "hydra", "--reduced", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    ran = json.loads(run.stdout)
    assert ran["status"] in ("holds", "fails", "inconclusive") and ran["seconds"] > 0 and len(ran["table"]) == 3
    check = subprocess.run(
        [sys.executable, "-m", "engine", "check-preset", "hydra", "--reduced"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0 and ran["headline"] in check.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "engine", "check-preset", "hydra"], capture_output=True, text=True, timeout=120
    )
    assert missing.returncode == 1 and "2 of 2 runs not finished" in missing.stdout


@pytest.mark.slow
def test_a_reduced_paper_runs_on_ray_into_the_same_store(cache):
    run = subprocess.run(
        [sys.executable, "-m", "engine", "run-paper", "transfer", "--reduced", "--executor", "ray", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout)["status"] in ("holds", "fails", "inconclusive")
    store = api.open_store()
    assert all(store.run(s.run_id())["status"] == "done" for s in api.paper_specs("transfer", True).values())


def test_results_come_in_the_presets_order_of_variants(store):
    fill_paper(store, "bap", SCENARIOS["bap"][0])
    results = api.paper_results("bap", store)
    preset = papers.load_paper("bap")
    assert list(dict.fromkeys(results.robust["variant"])) == list(preset.levels())
    assert [results.levels[label][0] for label in dict.fromkeys(results.budget["variant"])] == [
        *["AP δ=0.02"] * 4,
        *["AP δ=0.1"] * 4,
        *["BAP"] * 4,
    ]
    assert results.grid("BAP") == {0.5: "BAP @ 0.5", 0.75: "BAP @ 0.75", 0.9: "BAP @ 0.9", 0.95: "BAP @ 0.95"}


def test_pfa_reports_global_vs_local_without_judging_it(store):
    from tests.paper_fakes import pfa_holds

    def local_leads(variant, step, target, attack, eps):
        clean, robust, transfer = pfa_holds(variant, step, target, attack, eps)
        return clean, (0.6 if variant == "unstructured local" and step else robust), transfer

    fill_paper(store, "pfa", local_leads)
    verdict = papers.check("pfa", store)
    assert verdict.status == "holds", verdict.headline  # local ahead of global is no failure of the claim
    assert "not judged: unstructured local 60.0 %" in verdict.findings[2].numbers


# ---- several seeds ----------------------------------------------------------------------------


@pytest.fixture
def seeded_hydra(tmp_path, monkeypatch):
    """The hydra preset with three seeds, in a presets folder of its own."""
    text = (papers.PAPERS_DIR / "hydra.yaml").read_text(encoding="utf-8")
    (tmp_path / "hydra.yaml").write_text(text + "seeds: [0, 1, 2]\n", encoding="utf-8")
    monkeypatch.setattr(papers, "PAPERS_DIR", tmp_path)
    api.paper_specs.cache_clear()
    yield papers.load_paper("hydra")
    api.paper_specs.cache_clear()


def _seed(label: str) -> int:
    return int(label.rsplit("seed ", 1)[1])


def test_a_preset_with_seeds_runs_each_variant_once_per_seed(seeded_hydra):
    specs = api.paper_specs("hydra")
    assert list(specs) == [f"{v} · seed {s}" for s in (0, 1, 2) for v in ("LWM", "HYDRA")]
    assert {s.seed for s in specs.values()} == {0, 1, 2} and len({s.run_id() for s in specs.values()}) == 6
    assert list(papers.expand(seeded_hydra, seed=1)) == ["LWM", "HYDRA"]


def test_a_claim_holding_on_every_seed_holds_and_seeds_that_disagree_leave_it_open(store, seeded_hydra):
    def lead(size):
        def accuracy(label, step, target, attack, eps):
            clean, robust, _ = hydra_holds(label.split(" · ")[0], step, target, attack, eps)
            return clean, robust + (size[_seed(label)] * step / 3 if label.startswith("HYDRA") else 0), 0

        return accuracy

    fill_paper(store, "hydra", lead({0: 0.02, 1: 0.03, 2: 0.025}))
    verdict = papers.check("hydra", store)
    ahead = verdict.findings[0]
    assert ahead.status == "holds", ahead.numbers
    assert ahead.numbers.startswith("3 seeds (seed 0 ") and set(verdict.table["seed"]) == {0, 1, 2}
    assert api.paper_verdict("hydra", api.paper_results("hydra", store), store).headline == verdict.headline


def test_seeds_that_disagree_leave_the_claim_open(store, seeded_hydra):
    def disagree(label, step, target, attack, eps):
        clean, robust, _ = hydra_holds(label.split(" · ")[0], step, target, attack, eps)
        gap = {0: 0.15, 1: -0.15, 2: 0.15}[_seed(label)] * step / 3
        return clean, robust + (gap if label.startswith("HYDRA") else 0), 0

    fill_paper(store, "hydra", disagree)
    per_seed = [papers.judge(seeded_hydra, papers.collect(seeded_hydra, store, seed=s)).findings[0] for s in (0, 1, 2)]
    assert [f.status for f in per_seed] == ["holds", "fails", "holds"]  # each seed alone is decided...
    combined = papers.check("hydra", store).findings[0]
    assert combined.status == "inconclusive" and "more seeds" in combined.to_decide  # ...together they are not


def test_a_seeded_preset_is_incomplete_until_every_seed_has_run(store, seeded_hydra):
    fill_paper(store, "hydra", hydra_holds, only=["LWM · seed 0", "HYDRA · seed 0"])
    verdict = papers.check("hydra", store)
    assert verdict.status == "incomplete" and "seed 1" in verdict.headline


# ---- MRPF at equal effective size -------------------------------------------------------------


def _uniform_rises_with_size(label, step, target, attack, eps):
    robust = 0.3 + 0.3 * (1 - target)  # bigger models are more robust: 0.45 at 50 %, 0.525 at 25 %
    if label == "MRPF":
        robust = 0.3 + 0.3 * 0.5 + 0.01  # one point above uniform at the same *nominal* sparsity
    return 0.8, (0.6 if step == 0 else robust), 0


def test_mrpf_is_compared_with_uniform_at_its_own_size_not_its_nominal_sparsity(store):
    def mrpf_keeps_more(label, target):  # MRPF's physically smaller model is bigger than uniform's
        return 10_000 * (1 - target / 2) if label == "MRPF" else 10_000 * (1 - target)

    fill_paper(store, "mrpf", _uniform_rises_with_size, size=mrpf_keeps_more)
    verdict = papers.check("mrpf", store)
    ahead = verdict.findings[0]
    assert ahead.status == "fails", ahead.numbers  # at 7,500 parameters uniform has 52.5 %, MRPF 46 %
    assert "7,500 parameters (50% target) 46.0 % vs 52.4 %" in ahead.numbers
    row = verdict.table.set_index("step").loc[1]
    assert row["uniform L1 at equal size"] == pytest.approx(0.524)  # 0.525 stored as 262/500 images
    assert row["MRS conv1"] == 0.8 and row["pruned conv2"] == pytest.approx(0.75)  # each layer's MRS and ratio


def test_mrpf_at_uniform_s_own_size_is_compared_checkpoint_to_checkpoint(store):
    fill_paper(store, "mrpf", _uniform_rises_with_size)  # equal sizes: MRPF's one-point lead
    ahead = papers.check("mrpf", store).findings[0]
    assert ahead.status == "holds", ahead.numbers  # non-inferior within the 2-pt margin
    assert "5,000 parameters (50% target) 46.0 % vs 45.0 %" in ahead.numbers


def test_mrpf_smaller_than_every_uniform_run_cannot_be_compared(store):
    def tiny_mrpf(label, target):
        return 100.0 if label == "MRPF" and target else 10_000 * (1 - target)

    fill_paper(store, "mrpf", mrpf_holds, size=tiny_mrpf)
    ahead = papers.check("mrpf", store).findings[0]
    assert ahead.status == "inconclusive" and "add uniform L1 targets" in ahead.to_decide


def _hydra_both_dead(variant, step, target, attack, eps):
    """Both methods collapse at the smallest k (one class left: 7.6 % clean and robust), equal there."""
    if step == 3:
        return 0.076, 0.076, 0
    return hydra_holds(variant, step, target, attack, eps)


def test_two_models_collapsed_to_chance_decide_nothing(store):
    fill_paper(store, "hydra", _hydra_both_dead)
    verdict = papers.check("hydra", store)
    assert verdict.status == "inconclusive", verdict.headline
    assert all(f.status == "inconclusive" and "collapsed" in f.to_decide for f in verdict.findings)
    assert "7.6 %" in verdict.findings[0].to_decide
