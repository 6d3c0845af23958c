"""Paper presets: one click per seed paper, its experiment shrunk to a laptop CPU, its claim checked.

A paper preset (`presets/papers/<name>.yaml`) is a sweep of named variants sharing one base spec:

    title: HYDRA vs magnitude pruning
    paper: Sehwag et al., NeurIPS 2020 (arXiv:2002.10509)
    claim: HYDRA's PGD accuracy at the smallest k is at least LWM's, and its lead grows as k shrinks.
    check: hydra                      # a registered claim check (engine.papers.claims)
    options: {eps: 0.1}               # the check's parameters
    base: {dataset: ..., model: ..., schedule: ...}
    variants:
      LWM: {prune.method: lwm}        # dotted overrides of the base
      HYDRA: {prune.method: hydra}
    grid: {schedule.final_sparsity: [0.5, 0.9]}   # optional: every variant at each value ("LWM @ 0.5", ...)
    seeds: [0, 1, 2]                  # optional: every run once per seed, the verdict combined across seeds
    reduced: {dataset.name: synthetic, ...}   # overrides for the tiny version the tests run
    cold_seconds: 312                 # measured from an empty cache on 2 cores

Variants are named so the check can say which curve is which; runs sharing the base spec share
one trained base model, and runs already in the store are never computed again.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import time
from typing import Any

from pydantic import Field, ValidationError
from tqdm import tqdm

import engine.papers.checks  # noqa: F401  (registers every paper's check and figures)
from engine.errors import SpecError
from engine.jobs import sweep
from engine.jobs.probe import cost_ratio
from engine.papers import reference
from engine.papers.claims import CHECKS, Verdict, across_seeds, eps_text, incomplete, judged_at
from engine.papers.results import PaperResults, gather
from engine.paths import presets_dir
from engine.pipeline import run as run_pipeline
from engine.report import sequential
from engine.science.attacks.base import ATTACKS
from engine.science.catalog import validate
from engine.spec.reading import parse_text, read_spec_text, set_path
from engine.spec.runspec import TEST_SPLIT_SIZES, Frozen, RunSpec, format_errors
from engine.store.db import Store
from engine.store.estimate import estimate as estimate_run

PAPERS_DIR = presets_dir() / "papers"
UNGROWABLE = {"transfer": "it is judged on examples crafted on the base model and replayed, which do not grow"}
"""Checks whose claims cannot grow by more images (engine/papers/deciding.py), and why."""


class PaperScale(Frozen):
    """The paper's own setting of a preset, for a GPU or a cluster: overrides of the base (data set,
    architecture, training, attack strength, sparsity levels), the check's options at that scale (the
    paper's ε), and a note saying what it keeps of the paper and where it still departs."""

    overrides: dict[str, Any] = Field(min_length=1, description="dotted overrides of the base")
    options: dict[str, Any] = Field(default_factory=dict, description="the check's options at this scale")
    note: str = Field(min_length=1, description="what matches the paper, what departs, and why")


class PaperPreset(Frozen):
    """A paper's experiment: a base spec, named variants of it, the claim and the check that tests it."""

    title: str = Field(min_length=1, max_length=120)
    paper: str = Field(min_length=1, description="citation")
    claim: str = Field(min_length=1, description="the expected qualitative outcome, in one sentence")
    check: str = Field(description="registered claim check (engine.papers.claims)")
    options: dict[str, Any] = Field(default_factory=dict, description="the check's parameters")
    figure_note: str = Field("", description="how to read the paper's figure")
    base: dict[str, Any]
    variants: dict[str, dict[str, Any]] = Field(min_length=1)
    grid: dict[str, list[Any]] = Field(
        default_factory=dict,
        max_length=1,
        description="one dotted key → values: every variant runs once per value, labelled 'variant @ value'",
    )
    seeds: list[int] = Field(
        default_factory=list,
        max_length=10,
        description="several seeds: every run once per seed, each seed judged on its own, the verdict combined",
    )
    reduced: dict[str, Any] = Field(default_factory=dict, description="overrides of the tiny version")
    paper_scale: PaperScale | None = Field(None, description="the paper's own setting (`run-paper NAME --scale paper`)")
    cold_seconds: float | None = Field(None, ge=0, description="measured cold run time on 2 CPU cores")

    def levels(self) -> dict[str, tuple[str, Any]]:
        """Run label → (variant, grid value); the value is None without a grid."""
        if not self.grid:
            return {label: (label, None) for label in self.variants}
        (values,) = self.grid.values()
        return {f"{label} @ {_short(value)}": (label, value) for label in self.variants for value in values}

    def n_runs(self) -> int:
        """How many runs the preset makes (variants × grid values × seeds)."""
        return len(self.levels()) * max(1, len(self.seeds))


def _short(value: Any) -> str:
    """A grid value as a label shows it: numbers without trailing zeros, anything else as written."""
    return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def paper_names() -> list[str]:
    """The names of the paper presets, sorted."""
    return sorted(path.stem for path in PAPERS_DIR.glob("*.yaml"))


def load_paper(name: str) -> PaperPreset:
    """Read and validate a paper preset by name; SpecError naming the field or the choices."""
    if name not in paper_names():
        raise SpecError([f"paper: unknown paper preset {name[:80]!r}; choose from {paper_names()}"])
    path = PAPERS_DIR / f"{name}.yaml"
    try:
        preset = PaperPreset.model_validate(parse_text(read_spec_text(path), str(path)))
    except ValidationError as exc:
        raise SpecError([f"{name}: {line}" for line in format_errors(exc)]) from None
    if preset.check not in CHECKS:
        raise SpecError([f"{name}: check: unknown claim check {preset.check!r}; choose from {CHECKS.names()}"])
    check = CHECKS.get(preset.check)
    problems = check.option_problems(preset.options)
    if preset.paper_scale is not None:
        scaled = preset.options | preset.paper_scale.options
        problems += [f"paper_scale.{line}" for line in check.option_problems(scaled)]
    if problems:
        raise SpecError([f"{name}: {line}" for line in dict.fromkeys(problems)])
    return preset


def expand(
    preset: PaperPreset, reduced: bool = False, seed: int | None = None, paper: bool = False
) -> dict[str, RunSpec]:
    """Run label → validated spec for one seed (None: the preset's first, else the base's); `reduced`
    applies the tiny-version overrides to the base first, `paper` the paper-scale ones."""
    if paper and preset.paper_scale is None:
        raise SpecError([f"{preset.title}: this preset has no paper-scale setting"])
    base = copy.deepcopy(preset.base)
    overrides = preset.paper_scale.overrides if paper and preset.paper_scale else preset.reduced if reduced else {}
    for key, value in overrides.items():
        set_path(base, key, copy.deepcopy(value))
    seed = preset.seeds[0] if seed is None and preset.seeds else seed
    if seed is not None:
        base["seed"] = seed
    specs, problems = {}, []
    for label, (variant, value) in preset.levels().items():
        tree = copy.deepcopy(base)
        for key, override in preset.variants[variant].items():
            set_path(tree, key, copy.deepcopy(override))
        for key in preset.grid:
            set_path(tree, key, copy.deepcopy(value))
        try:
            specs[label] = validate(tree)
        except SpecError as exc:
            problems += [f"[{label}] {line}" for line in exc.problems]
    ids = [spec.run_id() for spec in specs.values()]
    if len(set(ids)) < len(ids):
        problems.append("variants: two variants give the same spec; each must change something")
    if problems:
        raise SpecError(problems)
    return specs


def expand_all(preset: PaperPreset, reduced: bool = False, paper: bool = False) -> dict[str, RunSpec]:
    """Every run of a preset: with several seeds, each run label once per seed ("BAP · seed 1")."""
    if len(preset.seeds) <= 1:
        return expand(preset, reduced, paper=paper)
    return {
        f"{label} · seed {seed}": spec
        for seed in preset.seeds
        for label, spec in expand(preset, reduced, seed, paper).items()
    }


def paper_scale_seconds(preset: PaperPreset, store: Store) -> float:
    """Estimated seconds of the preset's paper-scale runs on this machine, each trained base counted once
    (engine.store.estimate: rates from this machine's history of the same model and data set; without
    one, the rough guess scaled by how much slower a training step of the model is than one of the model
    the guess was measured on, both timed here)."""
    seconds, bases = 0.0, set()
    for spec in expand_all(preset, paper=True).values():
        estimate = estimate_run(spec, store)
        total = estimate.seconds - (estimate.base if spec.base_id() in bases else 0.0)
        ratio = cost_ratio(
            store.root,
            spec.model.name,
            spec.dataset.name,
            spec.model.width,
            spec.dataset.path,
            spec.train.batch_size,
        )
        seconds += total * (1.0 if estimate.history else ratio)
        bases.add(spec.base_id())
    return seconds


def judge(preset: PaperPreset, results: PaperResults, paper: bool = False) -> Verdict:
    """The verdict of a preset's claim on gathered results (incomplete while runs are missing); `paper`
    judges with the paper-scale options (the paper's ε)."""
    if results.missing():
        return incomplete(results)
    options = judging_options(preset, paper)
    return with_reference(_judged(preset, results, options), results, options)


def judging_options(preset: PaperPreset, paper: bool = False) -> dict[str, Any]:
    """The check's options, with the paper-scale ones (the paper's ε) over them when `paper`."""
    scaled = preset.paper_scale.options if paper and preset.paper_scale else {}
    return {**preset.options, **scaled}


def with_reference(found: Verdict, results: PaperResults, options: dict[str, Any]) -> Verdict:
    """A verdict judged on PGD with AutoAttack's accuracy at the claim's ε beside it, checkpoint by
    checkpoint (engine/papers/reference.py), where the runs scored AutoAttack too."""
    attack, eps = options.get("attack", ""), options.get("eps")
    if not reference.judged_on_pgd(attack) or eps is None:
        return found
    table = reference.reference_table(results, attack, float(eps))
    if table.empty:
        return found
    return dataclasses.replace(
        found, notes=[*found.notes, reference.reference_line(table, attack, float(eps))], reference=table
    )


def judged_by(preset: PaperPreset, paper: bool = False) -> str:
    """Which attacks judge the claim and which are reported beside it, in one sentence (the Papers page
    and `papers`)."""
    options = judging_options(preset, paper)
    spec = next(iter(expand(preset, paper=paper).values()))
    by_name = {entry.name: entry for entry in spec.eval.attacks}
    judging = by_name.get(options.get("attack", ""))
    if judging is None:
        return "Judged by the check's own measures (no attack named)."
    strength = eps_text if ATTACKS.get(judging.name).norm == "Linf" else "{:g}".format
    eps = options.get("eps")
    at = f" at ε = {strength(float(eps))}" if eps is not None else f" over ε = {', '.join(map(strength, judging.eps))}"
    size = TEST_SPLIT_SIZES.get(spec.dataset.name)
    growable = preset.check not in UNGROWABLE and len(preset.seeds) <= 1 and size and size > spec.eval.n_samples
    grows = f", growing toward {size:,} when a look decides" if growable else ""
    how = ", crafted on the base model and replayed on each pruned one" if preset.check in UNGROWABLE else ""
    text = f"Judged by {attack_words(judging)}{how}{at} on {spec.eval.n_samples:,} test images{grows}"
    others = [attack_words(entry) for entry in spec.eval.attacks if entry is not judging]
    if reference.judged_on_pgd(judging.name) and reference.REFERENCE_ATTACK in by_name:
        others = [o for o in others if not o.startswith(reference.REFERENCE_ATTACK)]
        side = " (the white-box side)" if preset.check in UNGROWABLE else ""
        checking = by_name[reference.REFERENCE_ATTACK]
        where = f" at {', '.join(f'{100 * at:g} %' for at in checking.at)} sparsity" if checking.at else ""
        text += f"; AutoAttack (Croce & Hein's standard, {checking.steps} iterations) checks it{side}{where}"
    return f"{text}{'; also drawn: ' + ', '.join(others) if others else ''}."


def attack_words(entry: Any) -> str:
    """An attack of a spec as a reader names it: name, norm and iterations ("pgd_linf (L∞, 10 steps)")."""
    attack = ATTACKS.get(entry.name)
    norm = {"Linf": "L∞"}.get(attack.norm, attack.norm)
    kind = "certified" if attack.certified else f"{entry.steps} steps"
    return f"{entry.name} ({norm}, {kind})"


def figures(preset: PaperPreset, results: PaperResults) -> list[Any]:
    """The figures of a paper preset's claim, from its gathered results (registered with its check)."""
    return CHECKS.get(preset.check).figures(results, preset.options)


def _judged(preset: PaperPreset, results: PaperResults, options: dict[str, Any]) -> Verdict:
    grown = results.grown_n(options.get("attack", ""))
    if grown is None:
        return CHECKS.get(preset.check).judge(results, **options)
    n, n_own = grown
    look, looks = sequential.last_look(n, n_own, results.n_test), sequential.claim_looks(n_own, results.n_test)
    if look == n_own:  # another comparison grew some of these checkpoints: the claim reads its own images
        return CHECKS.get(preset.check).judge(results.truncated(options["attack"], look), **options)
    level = sequential.plan_level(n_own, results.n_test)
    with judged_at(level):
        found = CHECKS.get(preset.check).judge(results.truncated(options["attack"], look), **options)
    plan = (
        f"grown to {look:,} images (look {looks.index(look) + 1} of {len(looks)} planned: {n_own:,} doubling to "
        f"{results.n_test:,}; every interval at {100 * level:.4g} %, Bonferroni over the looks)"
    )
    return dataclasses.replace(found, headline=f"{found.headline} [{plan}]")


def collect(
    preset: PaperPreset, store: Store, reduced: bool = False, seed: int | None = None, paper: bool = False
) -> PaperResults:
    """What the store holds for a preset's runs of one seed (None: the first), each row tagged with its
    run label, variant and grid value."""
    return gather(expand(preset, reduced, seed, paper), store, preset.levels())


def check(name: str, store: Store, reduced: bool = False, paper: bool = False) -> Verdict:
    """The verdict of a paper preset's claim on what the store holds (see engine.papers.claims.Verdict);
    with several seeds, each seed is judged on its own and the findings combined (claims.across_seeds)."""
    preset = load_paper(name)
    if len(preset.seeds) <= 1:
        return judge(preset, collect(preset, store, reduced, paper=paper), paper)
    verdicts = {seed: judge(preset, collect(preset, store, reduced, seed, paper), paper) for seed in preset.seeds}
    return across_seeds(verdicts, shared_images(next(iter(expand(preset, reduced, paper=paper).values()))))


def shared_images(spec: RunSpec) -> float:
    """The share of evaluation images two seeds of this spec have in common: n / (test split), as each
    seed draws its own subset; 1 where the subset is the whole split or the split's size is unknown."""
    size = TEST_SPLIT_SIZES.get(spec.dataset.name)
    return 1.0 if not size else min(spec.eval.n_samples, size) / size


def run(
    name: str, store: Store, reduced: bool = False, executor: str = "local", progress: bool = True, paper: bool = False
) -> float:
    """Run every variant of a paper preset to completion (finished runs are skipped); wall seconds.

    Locally the variants run one after another in this process, with a tqdm bar over them; with
    `executor="ray"` they run as Ray tasks (engine.jobs.sweep.run_ray). `paper` runs the paper-scale
    setting (days on a CPU: the CLI asks for --allow-long first).
    """
    specs = expand_all(load_paper(name), reduced, paper)
    started = time.perf_counter()
    if executor == "ray":
        sweep.run_ray(list(specs.items()), store)
        return time.perf_counter() - started
    with tqdm(total=len(specs), unit="run", desc=name, disable=not progress, file=sys.stderr) as bar:
        for label, spec in specs.items():
            bar.set_postfix_str(label)
            run_pipeline(spec, store)
            bar.update(1)
    return time.perf_counter() - started
