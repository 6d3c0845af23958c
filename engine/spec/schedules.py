"""Pruning schedules: pure functions from schedule parameters to the list of pruning steps.

Every schedule yields the whole sparsity axis of one run. Step 0 of a run is always the base
model (sparsity 0); the steps listed here follow it. Schedules are pydantic models, so the spec
validates their typed parameters and a new schedule is one registered class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.registry import Registry

SCHEDULES: Registry[type["Schedule"]] = Registry("schedule")

Sparsity = float


@dataclass(frozen=True)
class PruneStep:
    """One pruning step: prune to `sparsity`, then fine-tune for `finetune_steps` batches.

    `from_base` restarts from the base model's weights and mask (one-shot); otherwise pruning is
    cumulative on the previous step's model, and its mask only grows.
    """

    sparsity: float
    finetune_steps: int
    from_base: bool = False


class Schedule(BaseModel):
    """Base class: a frozen, validated set of schedule parameters with a `plan()`."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    def plan(self) -> list[PruneStep]:  # pragma: no cover - abstract
        """Return the pruning steps that follow the base model, in order."""
        raise NotImplementedError

    def sparsities(self) -> list[float]:
        """The target sparsity of every checkpoint, the base's 0 first."""
        return [0.0] + [step.sparsity for step in self.plan()]


MAX_CHECKPOINTS = 64
"""The most pruned checkpoints one run may have (each is trained, published and attacked)."""
MAX_BATCHES = 1_000_000
"""The most batches any schedule field may count."""


def _check_targets(targets: list[float], increasing: bool) -> list[float]:
    for value in targets:
        if not 0.0 < value < 1.0:
            raise ValueError(f"every target must be > 0 and < 1, got {value}")
    if increasing and any(b <= a for a, b in zip(targets, targets[1:])):
        raise ValueError("targets must be strictly increasing (pruning is cumulative)")
    return targets


@SCHEDULES.register("one_shot")
class OneShot(Schedule):
    """One-shot: prune the base model straight to each target, then optionally fine-tune.

    Each target starts again from the base, so the checkpoints are independent of each other.
    """

    name: Literal["one_shot"] = "one_shot"
    targets: list[float] = Field(
        min_length=1, max_length=MAX_CHECKPOINTS, examples=[[0.5, 0.75, 0.9]], description="sparsity of each checkpoint"
    )
    finetune_steps: int = Field(0, ge=0, le=MAX_BATCHES, description="fine-tune batches after each prune")

    @field_validator("targets")
    @classmethod
    def _sorted_targets(cls, targets: list[float]) -> list[float]:
        return _check_targets(sorted(set(targets)), increasing=False)

    def plan(self) -> list[PruneStep]:
        """One step per target, each from the base."""
        return [PruneStep(s, self.finetune_steps, from_base=True) for s in self.targets]


@SCHEDULES.register("iterative")
class Iterative(Schedule):
    """Iterative: prune cumulatively to each target in turn, fine-tuning after every level.

    As in Han et al. (2015) and "Pruning in the Face of Adversaries": masks persist, so a weight
    pruned at one level stays pruned at every later one.
    """

    name: Literal["iterative"] = "iterative"
    targets: list[float] = Field(
        min_length=1, max_length=MAX_CHECKPOINTS, examples=[[0.5, 0.75, 0.9]], description="increasing sparsities"
    )
    finetune_steps: int = Field(100, ge=0, le=MAX_BATCHES, description="fine-tune batches after each level")

    @field_validator("targets")
    @classmethod
    def _increasing_targets(cls, targets: list[float]) -> list[float]:
        return _check_targets(targets, increasing=True)

    def plan(self) -> list[PruneStep]:
        """One cumulative step per target."""
        return [PruneStep(s, self.finetune_steps) for s in self.targets]


def zhu_gupta(t: float, initial: float, final: float, begin: int, end: int, power: float) -> float:
    """Zhu & Gupta (2017, arXiv:1710.01878) sparsity at training step t.

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (t_end - t0))**power, held at s_i before t0 and
    at s_f after t_end.
    """
    if t <= begin:
        return initial
    if t >= end:
        return final
    progress = (t - begin) / (end - begin)
    return final + (initial - final) * (1.0 - progress) ** power


@SCHEDULES.register("gradual")
class Gradual(Schedule):
    """Gradual (Zhu & Gupta 2017): polynomial sparsity ramp from initial to final sparsity.

    Pruning events fall every `frequency` fine-tune batches from `begin` to `end`; the model
    trains `frequency` batches after each event (`final_finetune_steps` after the last) and a
    checkpoint is published before the next event. An event whose target does not exceed the
    current sparsity (the first one when initial_sparsity is 0) is skipped: the base model is
    already that point.
    """

    name: Literal["gradual"] = "gradual"
    initial_sparsity: float = Field(0.0, ge=0.0, lt=1.0, description="sparsity at the first event")
    final_sparsity: float = Field(gt=0.0, lt=1.0, examples=[0.9], description="sparsity at the last event")
    begin: int = Field(0, ge=0, le=MAX_BATCHES, description="batch of the first pruning event")
    end: int = Field(gt=0, le=MAX_BATCHES, examples=[400], description="batch of the last pruning event")
    frequency: int = Field(gt=0, le=MAX_BATCHES, examples=[100], description="batches between pruning events")
    power: float = Field(3.0, gt=0.0, le=100.0, description="exponent of the ramp (3: Zhu & Gupta's cubic)")
    final_finetune_steps: int | None = Field(
        None, ge=0, le=MAX_BATCHES, description="batches after the last event; null = frequency"
    )

    @model_validator(mode="after")
    def _check_window(self) -> "Gradual":
        if self.end <= self.begin:
            raise ValueError("end must be greater than begin")
        if (self.end - self.begin) % self.frequency:
            raise ValueError("end - begin must be a multiple of frequency")
        if self.final_sparsity <= self.initial_sparsity:
            raise ValueError("final_sparsity must exceed initial_sparsity")
        if (self.end - self.begin) // self.frequency >= MAX_CHECKPOINTS:
            raise ValueError(f"(end - begin) / frequency must be below {MAX_CHECKPOINTS} (one checkpoint per event)")
        return self

    def plan(self) -> list[PruneStep]:
        """One step per pruning event that raises the sparsity."""
        n_events = (self.end - self.begin) // self.frequency
        last_train = self.frequency if self.final_finetune_steps is None else self.final_finetune_steps
        steps, current = [], 0.0
        for j in range(n_events + 1):
            t = self.begin + j * self.frequency
            target = zhu_gupta(t, self.initial_sparsity, self.final_sparsity, self.begin, self.end, self.power)
            if target <= current:
                continue
            steps.append(PruneStep(target, self.frequency if j < n_events else last_train))
            current = target
        return steps
