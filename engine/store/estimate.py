"""How long a run will take, before it is queued: per-phase rates fitted to the timings earlier runs
stored on this machine, with a stated rough guess where there is no history.

Each phase's rate is a median over history of seconds per example-pass (one forward and backward
of one example, the unit of `RunSpec.work`), or seconds per checkpoint for the fixed costs:
- base training: a base's `train_seconds` over its epochs × examples × passes (0 when cached);
- fine-tuning: each step's `train_seconds` over its batches × batch size × passes;
- attacks: each curve's `seconds` over images × ε × steps × restarts (step 0 not counted when another
  run on the same base already measured it the same way), pooled, and per attack (`attack:<name>`):
  each attack is estimated at its own rate where this machine has timed it, else at the pooled rate
  times its stated prior (ATTACK_COST_PRIOR); MRS probes (`RunSpec.probe_passes`) at the pooled rate;
- per checkpoint: the rest of a step's wall time (publishing, efficiency, clean accuracy, transfer,
  store).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from engine.spec.runspec import RunSpec, passes
from engine.spec.runspec import validate as validate_structure
from engine.store.db import Store

GUESS = {"base": 200e-6, "finetune": 200e-6, "attack": 250e-6, "checkpoint": 1.5}
"""Rates used when this machine has no history of a phase: seconds per example-pass (per checkpoint
for the last), measured on a 2-core laptop CPU with small_cnn (2026-11)."""

ATTACK_COST_PRIOR = {"autoattack": 0.55, "autoattack_l2": 0.55}
"""An attack's seconds per nominal example-pass against PGD's, used until this machine has timed the
attack itself: AutoAttack's nominal count assumes every image survives all four of its attacks, while it
runs each on the survivors of the one before. Measured on a naturally trained small_cnn on Fashion-MNIST,
500 images, 2 CPU cores (2026-12-04): AutoAttack at ε = 0.05 60–69 µs per nominal pass, PGD-10 at
ε ≤ 0.1 110–116 µs."""

GUESS_BASIS = ("small_cnn", "fashion_mnist")
"""The model and data set GUESS was measured on (a larger model's guess is scaled by its FLOPs)."""

MODEL_GUESS = {"lenet5": {"base": 190e-6, "finetune": 95e-6, "attack": 55e-6, "checkpoint": 0.6}}
"""Rough guesses for a model much cheaper than small_cnn, so that a fresh install's first estimate (the
tour's, the teaching preset's) is near the truth: LeNet-5 on Fashion-MNIST, the tour's five runs on a
quiet 2-core CPU (2026-12); its attacks run five times faster than small_cnn's."""


def guess_basis(model: str) -> tuple[str, str]:
    """The model and data set on which the rough guess for `model` was measured."""
    return (model, "fashion_mnist") if model in MODEL_GUESS else GUESS_BASIS


@dataclass(frozen=True)
class Estimate:
    """Seconds per phase, the total, and where the rates came from."""

    base: float
    finetune: float
    attacks: float
    checkpoints: float
    base_cached: bool
    history: int  # earlier runs whose timings set the rates (0: the rough guess)
    words: str  # what the run does, in a few words

    def scaled(self, ratio: float) -> Estimate:
        """Every phase `ratio` times as long: a rough guess for another model, scaled by how much slower
        a training step of it is here (engine.jobs.probe)."""
        if ratio == 1.0:
            return self
        return replace(
            self,
            base=self.base * ratio,
            finetune=self.finetune * ratio,
            attacks=self.attacks * ratio,
            checkpoints=self.checkpoints * ratio,
            words=f"{self.words}, the guess scaled ×{ratio:.2g} by a timed step of the model",
        )

    @property
    def seconds(self) -> float:
        """The whole run."""
        return self.base + self.finetune + self.attacks + self.checkpoints

    def line(self) -> str:
        """'≈ 40 s: base cached, 4 checkpoints × …' for the page before submit."""
        basis = f"from {self.history} earlier runs here" if self.history else "a rough guess: no history here"
        return f"≈ {duration(self.seconds)}: {self.words} ({basis})"


def _model_and_data(spec_json: str) -> tuple[str, str]:
    spec = json.loads(spec_json)
    return spec["model"]["name"], spec["dataset"]["name"]


def duration(seconds: float) -> str:
    """Seconds in words: "40 s", "12 min", "2.5 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _median(values: list[float], fallback: float) -> float:
    values = [v for v in values if v > 0]
    return statistics.median(values) if values else fallback


def _attack_rates(spec: RunSpec, curves: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Seconds per nominal example-pass of each attack a finished run timed, keyed `attack:<name>`."""
    rates: dict[str, list[float]] = {}
    by_name = {a.name: a for a in spec.eval.attacks}
    for curve in curves:
        attack = by_name.get(curve["attack"])
        if attack is not None and attack.passes():
            nominal = spec.eval.n_samples * attack.passes()
            rates.setdefault(f"attack:{attack.name}", []).append(curve["seconds"] / nominal)
    return rates


def _run_rates(spec: RunSpec, steps: list[dict[str, Any]], attacks: dict[int, float]) -> dict[str, list[float]]:
    """Rates measured by one finished run: its fine-tuning, attacks and per-checkpoint overhead (a run
    that probed MRS says nothing of the overhead: its probes' seconds are not stored apart)."""
    rates: dict[str, list[float]] = {"finetune": [], "attack": [], "checkpoint": []}
    plan = spec.schedule.plan()
    per_batch = spec.prune.batch_size * passes(*spec.finetune_mode())
    attack_passes = spec.attack_passes()
    for row, previous in zip(steps[1:], steps):
        batches = plan[row["step"] - 1].finetune_steps if row["step"] - 1 < len(plan) else 0
        if batches:
            rates["finetune"].append(row["train_seconds"] / (batches * per_batch))
        wall = row["finished_at"] - previous["finished_at"]
        if not spec.probe_passes():
            rates["checkpoint"].append(wall - row["train_seconds"] - attacks.get(row["step"], 0.0))
    for step, seconds in attacks.items():
        if attack_passes and step < len(steps):
            rates["attack"].append(seconds / attack_passes)
    return rates


def history_rates(store: Store, model: str, dataset: str) -> tuple[dict[str, float], int]:
    """Median rates per phase from this store's finished runs of the same model on the same dataset
    (another model's rates say little: an MLP on synthetic data runs 30× faster than a CNN); fitted
    once per state of the store, since the Runs page asks on every edit."""
    return _fitted(store, store.last_change(), model, dataset)


@lru_cache(maxsize=16)
def _fitted(store: Store, version: int, model: str, dataset: str) -> tuple[dict[str, float], int]:
    collected: dict[str, list[float]] = {"base": [], "finetune": [], "attack": [], "checkpoint": []}
    runs = [r for r in store.runs() if r["status"] == "done"]
    same = [r for r in runs if _model_and_data(r["spec_json"]) == (model, dataset)]
    for run in same[:50]:
        try:
            spec = validate_structure(json.loads(run["spec_json"]))  # names were checked when it ran
        except Exception:  # noqa: BLE001 - a run of an older engine whose spec no longer validates
            continue
        steps = store.steps(run["run_id"])
        curves = store.db.execute(
            "SELECT DISTINCT step, attack, seconds FROM robust WHERE run_id = ? AND seconds IS NOT NULL",
            (run["run_id"],),
        ).fetchall()
        per_step: dict[int, float] = {}
        for curve in curves:
            per_step[curve["step"]] = per_step.get(curve["step"], 0.0) + curve["seconds"]
        found = _run_rates(spec, steps, per_step) | _attack_rates(spec, [dict(c) for c in curves])
        for phase, values in found.items():
            collected.setdefault(phase, []).extend(values)
        base = store.base(run["base_id"])
        if base:
            collected["base"].append(base["train_seconds"] / spec.base_passes())
    guess = MODEL_GUESS.get(model, GUESS)
    rates = {phase: _median(values, guess.get(phase, 0.0)) for phase, values in collected.items()}
    return rates, len(same[:50])


def attack_seconds(spec: RunSpec, rates: dict[str, float], attacked: int) -> float:
    """Seconds of every attack on `attacked` checkpoints: each attack at its own timed rate here, else at
    the attack phase's rate times its stated prior (ATTACK_COST_PRIOR), each on its share of the checkpoints."""
    targets = spec.schedule.sparsities()
    seconds = 0.0
    for attack in spec.eval.attacks:
        share = sum(map(attack.scores, targets)) / len(targets)
        rate = rates.get(f"attack:{attack.name}") or rates["attack"] * ATTACK_COST_PRIOR.get(attack.name, 1.0)
        seconds += attacked * share * spec.eval.n_samples * attack.passes() * rate
    return seconds


def shares_dense_point(spec: RunSpec, store: Store) -> bool:
    """Whether the run will reuse another run's step 0 instead of attacking it (engine.pipeline.dense_results)."""
    if spec.eval.transfer:
        return False  # transfer keeps the base's adversarial inputs, so it measures step 0 itself
    return store.dense_results(spec) is not None


def estimate(spec: RunSpec, store: Store) -> Estimate:
    """The run's expected seconds per phase on this machine (see the module's docstring)."""
    rates, history = history_rates(store, spec.model.name, spec.dataset.name)
    cached = store.base(spec.base_id()) is not None
    batches, checkpoints = spec.finetune_batches(), len(spec.schedule.plan()) + 1
    attacked = checkpoints - shares_dense_point(spec, store)
    attacks = ", ".join(f"{a.name} × {len(a.eps) - 1} ε" for a in spec.eval.attacks) or "no attacks"
    attacks += ", every layer's MRS" if spec.eval.mrs else ""
    words = (
        f"{'base cached' if cached else 'base trained'}, {checkpoints} checkpoints"
        f"{' (the dense one already measured)' if attacked < checkpoints else ''}, {batches} fine-tuning batches, "
        f"{attacks} on {spec.eval.n_samples} images"
    )
    return Estimate(
        base=0.0 if cached else spec.base_passes() * rates["base"],
        finetune=batches * spec.prune.batch_size * passes(*spec.finetune_mode()) * rates["finetune"],
        attacks=attack_seconds(spec, rates, attacked) + checkpoints * spec.probe_passes() * rates["attack"],
        checkpoints=checkpoints * rates["checkpoint"],
        base_cached=cached,
        history=history,
        words=words,
    )
