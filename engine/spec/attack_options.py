"""Each attack's `options: {...}` as a typed model: names, types, ranges and defaults, checked at the
spec's door (`eval.attacks[0].options.n_classes: …`), and the work each option multiplies.

Torch-free, so the work bound can count options before anything is imported. An attack class names
its model (`Options = APGDTOptions`); a new attack may define its model in its own module instead:
registering the class files it in ATTACK_OPTIONS. Ranges refuse values that would make an attack
vacuous (no target class, a negative overshoot, no query) or unbounded (1e12 queries); the upper
bounds are far above every published protocol (AutoAttack: 5,000 Square queries, 9 target classes, 1–5 restarts).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.spec.reading import excerpt as shown

DEEPFOOL_STEP_PASSES = 5
"""Example-passes one DeepFool step costs: a forward and one backward per class through the retained
graph (ten classes). Measured in a BAP fine-tuning batch of LeNet-5 on 2 CPU cores (2026-12): 0.33 s
against 0.096 s for AP's PGD-7, i.e. about 5.3 passes per DeepFool step."""

MAX_CLASSES = 1000  # an ImageNet head; a dataset's own class count is checked where the model is known


class Options(BaseModel):
    """An attack without options; the base of every options model (unknown keys refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    cost_note: ClassVar[str] = "steps × restarts per ε"

    def passes(self, n_eps: int, steps: int, restarts: int) -> int:
        """Example-passes per image over the whole ε grid, at most: one forward and backward per step
        of every restart at every ε."""
        return n_eps * steps * restarts

    def copies_per_image(self) -> int:
        """Copies of each image the attack holds at once (noise samples): its largest tensor is the
        evaluation batch × this × the image."""
        return 1


class SearchOptions(Options):
    """PGD's ε search: `scan` attacks every ε from scratch (the only sound search)."""

    search: Literal["scan"] = Field("scan", description="how the ε grid is searched; scan attacks each ε anew")


class APGDCEOptions(Options):
    """APGD-CE (Croce & Hein 2020)."""

    n_restarts: int = Field(1, ge=1, le=20, description="random restarts, each `steps` iterations")
    cost_note: ClassVar[str] = "steps × n_restarts per ε"

    def passes(self, n_eps: int, steps: int, restarts: int) -> int:
        return n_eps * steps * restarts * self.n_restarts


class APGDTOptions(Options):
    """APGD-T: targeted at each of the top n_classes − 1 other classes in turn."""

    n_classes: int = Field(
        10, ge=2, le=MAX_CLASSES, description="the dataset's classes; n_classes − 1 targets (fewer than 2: no target)"
    )
    n_restarts: int = Field(1, ge=1, le=20, description="random restarts per target")
    cost_note: ClassVar[str] = "steps × n_restarts × (n_classes − 1) per ε"

    def passes(self, n_eps: int, steps: int, restarts: int) -> int:
        return n_eps * steps * restarts * self.n_restarts * (self.n_classes - 1)


class SquareOptions(Options):
    """Square: one forward per query, counted as a third of a pass."""

    n_queries: int = Field(1000, ge=1, le=100_000, description="queries per image (AutoAttack: 5,000)")
    cost_note: ClassVar[str] = "n_queries / 3 per ε (forwards only)"

    def passes(self, n_eps: int, steps: int, restarts: int) -> int:
        return n_eps * restarts * (self.n_queries // 3 + 1)


SQUARE_STANDARD_QUERIES = 5000  # fra31/auto-attack's standard Square


class AutoAttackOptions(Options):
    """AutoAttack's standard ensemble, counted as the sum of its stages (each at most on every image)."""

    n_classes: int = Field(
        10, ge=2, le=MAX_CLASSES, description="the dataset's classes; APGD-T and FAB-T target up to 9 others"
    )
    cost_note: ClassVar[str] = "APGD-CE + APGD-T and FAB-T × min(9, n_classes − 1) + 5,000 Square queries, per ε"

    def passes(self, n_eps: int, steps: int, restarts: int) -> int:
        targets = min(9, self.n_classes - 1)
        return n_eps * (steps + 2 * steps * targets + SQUARE_STANDARD_QUERIES // 3 + 1)


class FMNOptions(Options):
    """FMN (Pintor et al. 2021): a forward and backward per step; one run serves every ε."""

    alpha_init: float = Field(1.0, gt=0.0, le=100.0, description="initial step α, cosine-annealed to α/100")
    gamma_init: float = Field(0.05, gt=0.0, lt=1.0, description="initial radius factor γ, annealed to 0.001")
    cost_note: ClassVar[str] = "steps, one run serves every ε"

    def passes(self, n_eps: int, steps: int, restarts: int) -> int:
        return steps


class DeepFoolOptions(Options):
    """DeepFool (Moosavi-Dezfooli et al. 2016): a backward per class at every step."""

    overshoot: float = Field(0.02, ge=0.0, le=1.0, description="push past the boundary by this share (reference 0.02)")
    cost_note: ClassVar[str] = "steps × 5 (a backward per class), one run serves every ε"

    def passes(self, n_eps: int, steps: int, restarts: int) -> int:
        return steps * DEEPFOOL_STEP_PASSES


class CWOptions(Options):
    """Carlini–Wagner L2 (2017)."""

    c: float = Field(1.0, gt=0.0, le=1e4, description="weight of the misclassification term")
    kappa: float = Field(0.0, ge=0.0, le=100.0, description="confidence margin")
    lr: float = Field(0.01, gt=0.0, le=1.0, description="Adam's step")
    cost_note: ClassVar[str] = "steps, one run serves every ε"

    def passes(self, n_eps: int, steps: int, restarts: int) -> int:
        return steps


class NoiseOptions(Options):
    """What every evaluator of a Gaussian-smoothed classifier takes: its noise and its Monte Carlo test."""

    sigma: float = Field(0.25, gt=0.0, le=4.0, description="noise σ")
    n: int = Field(1000, ge=1, le=1_000_000, description="samples of the final estimate (CERTIFY, PREDICT)")
    alpha: float = Field(0.001, gt=0.0, lt=0.5, description="failure probability of that estimate")


class SmoothingOptions(NoiseOptions):
    """Cohen et al.'s CERTIFY: forwards only (a third of a pass each), one certificate for every radius."""

    n0: int = Field(100, ge=1, le=1_000_000, description="selection samples")
    batch: int = Field(1000, ge=1, le=100_000, description="noisy copies per forward")
    cost_note: ClassVar[str] = "(n0 + n) / 3 per image, one certificate serves every radius"

    def passes(self, n_eps: int, steps: int, restarts: int) -> int:
        return (self.n0 + self.n) // 3 + 1


class SmoothPGDOptions(NoiseOptions):
    """SmoothAdv's attack on the smoothed classifier, judged by PREDICT."""

    samples: int = Field(32, ge=1, le=10_000, description="noise samples per attack step")
    cost_note: ClassVar[str] = "steps × restarts × samples + n / 3 per ε"

    def passes(self, n_eps: int, steps: int, restarts: int) -> int:
        return n_eps * (steps * restarts * self.samples + self.n // 3) + self.n // 3

    def copies_per_image(self) -> int:
        return self.samples


ATTACK_OPTIONS: dict[str, type[Options]] = {
    "pgd_linf": SearchOptions,
    "pgd_l2": SearchOptions,
    "apgd_ce": APGDCEOptions,
    "apgd_t": APGDTOptions,
    "square": SquareOptions,
    "autoattack": AutoAttackOptions,
    "autoattack_l2": AutoAttackOptions,
    "fmn_l0": FMNOptions,
    "fmn_l1": FMNOptions,
    "fmn_l2": FMNOptions,
    "fmn_linf": FMNOptions,
    "deepfool": DeepFoolOptions,
    "cw_l2": CWOptions,
    "smoothing": SmoothingOptions,
    "smooth_pgd_l2": SmoothPGDOptions,
}
"""Attack name → its options model: the built-in attacks, torch-free, so the work bound counts options before
torch loads; registering an attack class adds its `Options` here (record_options). Not listed: no options."""


def record_options(attack: str, model: type[Options]) -> None:
    """File a registered attack's options model under its name; ValueError when the table lists another."""
    listed = ATTACK_OPTIONS.setdefault(attack, model)
    if listed is not model:
        raise ValueError(f"attack {attack!r}: its Options ({model.__name__}) is not the one listed ({listed.__name__})")


def options_model(attack: str) -> type[Options]:
    """The options model of a named attack (Options, no options, when it has none)."""
    return ATTACK_OPTIONS.get(attack, Options)


def parse_options(attack: str, options: dict[str, Any], model: type[Options] | None = None) -> Options:
    """The attack's options validated by `model` (default: its entry in ATTACK_OPTIONS): ValueError naming
    `options.<key>` and what it accepts."""
    model = model or options_model(attack)
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        raise ValueError("; ".join(_problem(attack, model, error) for error in exc.errors()[:3])) from None


def _problem(attack: str, model: type[Options], error: Any) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(options)"
    if error["type"] == "extra_forbidden":
        known = sorted(model.model_fields) or "none"
        return f"options.{shown(key)}: unknown option for {attack}; choose from {known}"
    message = error["msg"].removeprefix("Value error, ")
    return f"options.{shown(key)}: {message[0].lower() + message[1:]}, not {shown(repr(error.get('input')))}"


def describe_options(model: type[Options]) -> str:
    """The options of an attack in one line, for the catalogue and the Runs form: each with its type,
    range and default, then what its work is counted as."""
    fields = [_described(name, info) for name, info in model.model_fields.items()]
    listed = "; ".join(fields) if fields else "none"
    return f"options: {listed} (work: {model.cost_note})"


def _described(name: str, info: Any) -> str:
    kind = getattr(info.annotation, "__name__", None) or str(info.annotation).replace("typing.", "")
    bounds = []
    for rule in info.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if getattr(rule, attr, None) is not None:
                bounds.append(f"{sign} {getattr(rule, attr):g}")
    limits = f", {' and '.join(bounds)}" if bounds else ""
    return f"{name} ({kind}{limits}, default {info.default!r}): {info.description or ''}".rstrip(": ")
