"""Run specs: frozen, typed, validated models; canonical JSON; SHA-256 run and base ids.

A spec says everything that determines a result. Its canonical JSON (sorted keys, defaults
filled in, plus ENGINE_VERSION) hashes to the run id; the base sub-spec (dataset, model,
training, seed) hashes to the base id, so runs that differ only in pruning or evaluation share
one trained base model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from engine import ENGINE_VERSION
from engine.errors import SpecError
from engine.spec.attack_options import ATTACK_OPTIONS, DEEPFOOL_STEP_PASSES, options_model, parse_options
from engine.spec.attack_options import Options as AttackOptions
from engine.spec.reading import shown_key
from engine.spec.schedules import SCHEDULES, Schedule


class Names(Protocol):
    """What validation needs of a registry: membership, the names to offer, and an entry's class."""

    def __contains__(self, name: object) -> bool: ...

    def names(self) -> list[str]: ...

    def get(self, name: str) -> Any: ...


def _registries(info: ValidationInfo) -> Mapping[str, Names] | None:
    """The registries passed by the caller (engine.science.catalog); None skips the name checks."""
    return (info.context or {}).get("registries")


def _registered(kind: str) -> Callable[[str, ValidationInfo], str]:
    """A validator: the name must be an entry of the `kind` registry, when registries are given."""

    def known(name: str, info: ValidationInfo) -> str:
        registry = (_registries(info) or {}).get(kind)
        if registry is not None and name not in registry:
            raise ValueError(f"unknown {kind} {name[:40]!r}; choose from {registry.names()}")
        return name

    return known


DatasetName = Annotated[str, AfterValidator(_registered("dataset"))]
ModelName = Annotated[str, AfterValidator(_registered("model"))]
TrainingMode = Annotated[str, AfterValidator(_registered("training mode"))]
MethodName = Annotated[str, AfterValidator(_registered("pruning method"))]
AttackName = Annotated[str, AfterValidator(_registered("attack"))]


class Frozen(BaseModel):
    """Frozen, strict-keyed base of every spec section."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class OmitUnset(Frozen):
    """A section whose fields added later are not written while null, so that adding them changed no run id;
    `written_when_null` names the nullable fields that ids have always held (their null stays written)."""

    written_when_null: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        return {key: value for key, value in data.items() if value is not None or key in self.written_when_null}


USER_PATH = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_. +=@,-]*(/[A-Za-z0-9_.][A-Za-z0-9_. +=@,-]*)*")
SHA256 = re.compile(r"[0-9a-f]{64}")


def _user_path(path: str) -> str:
    """A path relative to one of the cache's folders: no absolute path, no `..`, no odd characters."""
    if len(path) > 300 or not USER_PATH.fullmatch(path) or ".." in path.split("/"):
        raise ValueError(
            f"{path[:60]!r} is not a relative path inside the folder (letters, digits, '._-+=@, ' and '/'; "
            "no leading '/', no '..')"
        )
    return path


UserPath = Annotated[str, AfterValidator(_user_path)]
Sha256 = Annotated[str, Field(pattern=SHA256.pattern, description="SHA-256 of the file, filled in on submission")]

PATH_DATASETS = {"folder": "a folder: one sub-folder of images per class", "arrays": "an .npz file with x and y"}
"""Data sets read from a user's path (dataset.path, relative to the data folder)."""

AUGMENTED = {"cifar10": "crop_flip", "cifar100": "crop_flip", "svhn": "crop"}
"""The standard training augmentation of each data set that has one (random crop with 4-pixel padding,
and a horizontal flip where mirrored images are still the same class: not for digits)."""


class DatasetSpec(OmitUnset):
    """Which dataset, optionally a seeded subset of its training split; `path` for a user's data set."""

    written_when_null = frozenset({"train_size"})

    name: DatasetName = "fashion_mnist"
    train_size: int | None = Field(None, gt=0, le=10_000_000, description="seeded training subset; all if null")
    path: UserPath | None = Field(
        None, description="folder / arrays: the data set's path, relative to the data folder (<cache>/data)"
    )
    sha256: Sha256 | None = None
    augment: bool | None = Field(
        None, description="training augmentation (random crop, flip where it applies); on for cifar10, cifar100, svhn"
    )
    test_share: float | None = Field(
        None, gt=0.0, lt=1.0, description="folder / arrays without a test split: the share held out (seeded)"
    )

    @model_validator(mode="after")
    def _path_where_needed(self) -> "DatasetSpec":
        if self.name in PATH_DATASETS and self.path is None:
            raise ValueError(f"path: dataset {self.name} reads {PATH_DATASETS[self.name]}; give its path")
        if self.name not in PATH_DATASETS and (self.path, self.sha256, self.test_share) != (None, None, None):
            raise ValueError(
                f"path: dataset {self.name} is registered; path, sha256 and test_share are for folder or arrays"
            )
        if self.augment is None and self.name in AUGMENTED:
            return self.model_copy(update={"augment": True})
        return self

    def augmentation(self) -> str | None:
        """ "crop_flip", "crop" or None: what this data set's training batches get."""
        if not self.augment:
            return None
        return AUGMENTED.get(self.name, "crop_flip")


class ModelSpec(OmitUnset):
    """Which architecture: a registered one, `torchvision:<builder>` or `timm:<model>`; `width` < 1 keeps
    that share of every hidden layer's channels."""

    name: ModelName = "small_cnn"
    width: float | None = Field(None, gt=0.0, le=1.0, description="share of each hidden layer's channels kept")


class BaseSpec(OmitUnset):
    """A trained checkpoint as the base: its weights file replaces base training."""

    weights: UserPath = Field(description="safetensors or a PyTorch state dict, relative to <cache>/weights")
    sha256: Sha256 | None = None


STEP_NUMERATORS = {"smooth_pgd_l2": 2.0}
"""Attacks whose reference code steps by numerator · ε / steps with a numerator other than Madry et al.'s
2.5 (SmoothAdv's `attacks.py`: lr = 2 · max_norm / steps)."""

DEFAULT_SIGMA = 0.25  # Cohen et al.'s and HYDRA's σ for Gaussian-noise training


class AdversarySpec(OmitUnset):
    """The training adversary of the adversarial modes (pgd_at, trades, ap, bap) and the noise of the
    gaussian modes (`sigma`, and `beta` for gaussian_stability); natural ignores it.

    `eps` is an L∞ budget on the [0, 1] scale (pgd_at, trades, ap). BAP ignores `eps`: its budget
    per example is ρ · min(DeepFool distance, cutoff) in RMS-normalised L2, `cutoff` being a fixed
    value, "blind" (the batch mean, re-estimated every batch) or null (no cut).
    """

    written_when_null = frozenset({"step_size", "cutoff"})  # `sigma` came later: unset, it is not written

    attack: Literal["pgd_linf", "fgsm"] = Field("pgd_linf", description="ap: the fixed-budget attack")
    eps: float = Field(0.1, ge=0.0, le=1.0, description="L∞ budget of pgd_at, trades and ap")
    steps: int = Field(7, ge=1, le=100, description="PGD steps")
    step_size: float | None = Field(
        None, gt=0.0, le=100.0, description="PGD step as a multiple of ε; default 2.5 / steps"
    )
    beta: float = Field(6.0, ge=0.0, le=100.0, description="trades, gaussian_stability: weight of the KL term")
    cutoff: Literal["blind"] | float | None = Field("blind", description="bap: RMS-L2 cutoff, 'blind' or null")
    rho: float = Field(1.0, gt=0.0, le=4.0, description="bap: scale of the cut perturbation")
    deepfool_steps: int = Field(
        5,
        ge=1,
        le=100,
        description="bap: DeepFool iterations; 5 as BAP's cal_models.py passes (`iterations= 5`), which "
        "trains the models of its experiments; its Adversarial_Model falls back to 10 only when given none",
    )
    overshoot: float = Field(0.02, ge=0.0, le=1.0, description="bap: DeepFool overshoot")
    deepfool_reference: Literal["prediction", "label"] = Field(
        "prediction", description="bap: DeepFool moves away from the model's prediction (BAP's cleverhans) or the label"
    )
    sigma: float | None = Field(
        None, gt=0.0, le=4.0, description=f"gaussian modes: noise σ on [0, 1] pixels; null = {DEFAULT_SIGMA}"
    )

    def noise_sigma(self) -> float:
        """The Gaussian-noise σ of the gaussian training modes."""
        return self.sigma if self.sigma is not None else DEFAULT_SIGMA

    @field_validator("cutoff")
    @classmethod
    def _positive_cutoff(cls, cutoff):
        if isinstance(cutoff, float) and not 0 < cutoff <= 1e4:
            raise ValueError("cutoff must be > 0 and at most 10,000, 'blind' or null")
        return cutoff

    def relative_step(self) -> float:
        """The PGD step size as a multiple of ε."""
        return self.step_size if self.step_size is not None else 2.5 / self.steps


class TrainSpec(Frozen):
    """Base training: the loss mode (natural, pgd_at, trades), its adversary and its optimiser."""

    mode: TrainingMode = "natural"
    adversary: AdversarySpec = AdversarySpec()
    epochs: int = Field(1, ge=1, le=1000)
    batch_size: int = Field(128, ge=1, le=65536)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0.0, le=10.0)

    @model_validator(mode="after")
    def _natural(self) -> "TrainSpec":
        # natural training uses no adversary: reset it, so that unused values never change an id
        if self.mode == "natural" and self.adversary != AdversarySpec():
            return self.model_copy(update={"adversary": AdversarySpec()})
        return self


class MRSSpec(Frozen):
    """Module Robustness Sensitivity probe (our documented reading of Bai et al. 2024, after RiFT).

    For each layer: the largest rise of the adversarial loss on a fixed PGD set when that layer's
    weights alone climb the loss by gradient ascent within ‖ΔW‖ ≤ radius · ‖W‖.
    """

    radius: float = Field(0.1, gt=0.0, le=10.0, description="relative weight-ball radius")
    ascent_steps: int = Field(10, ge=1, le=1000, description="ascent epochs, each followed by a projection")
    lr: float = Field(1.0, gt=0.0, le=100.0, description="gradient-ascent step")
    batch_size: int = Field(64, ge=1, le=65536, description="mini-batch of each ascent step (RiFT: SGD over batches)")
    n_samples: int = Field(256, ge=1, le=100_000)
    eps: float = Field(0.1, ge=0.0, le=1.0, description="L∞ ε of the fixed PGD-10 set")


class PruneSpec(Frozen):
    """Pruning criterion, the fine-tuning loss and optimiser used between pruning steps.

    `mode` is the fine-tuning loss: natural, pgd_at, trades, ap (0.5 clean + 0.5 adversarial at a
    fixed budget) or bap (the same with BAP's cutoff-scale budgets); null means the base's mode
    with the base's adversary. `score_steps` and `score_lr` drive HYDRA's score optimisation.
    """

    method: MethodName = "global_magnitude"
    prune_classifier: bool = Field(False, description="also prune the final classifier layer")
    mode: TrainingMode | None = Field(None, description="fine-tuning loss; null = the base's mode")
    adversary: AdversarySpec = AdversarySpec()
    lr: float = Field(1e-3, gt=0.0, le=10.0, description="fine-tune learning rate")
    batch_size: int = Field(128, ge=1, le=65536)
    score_steps: int = Field(100, ge=0, le=1_000_000, description="hydra: score-optimisation batches per step")
    score_lr: float = Field(0.1, gt=0.0, le=10.0, description="hydra: SGD learning rate of the scores")
    freeze_bn: bool = Field(
        False, description="hydra: also freeze BatchNorm while the scores learn (HYDRA's --freeze-bn)"
    )
    mrs: MRSSpec = Field(MRSSpec(), description="mrpf: the MRS probe that sets the per-layer ratios")

    @model_validator(mode="after")
    def _natural(self) -> "PruneSpec":
        if self.mode in (None, "natural") and self.adversary != AdversarySpec():
            return self.model_copy(update={"adversary": AdversarySpec()})
        return self


if TYPE_CHECKING:
    ScheduleSpec = Schedule
else:  # every registered schedule, told apart by its `name`
    _SCHEDULE_TYPES = tuple(SCHEDULES.get(name) for name in SCHEDULES.names())
    # a Union built from the registry at import time has no `|` spelling
    ScheduleSpec = Annotated[Union[_SCHEDULE_TYPES], Field(discriminator="name")]  # noqa: UP007


class AttackSpec(OmitUnset):
    """One attack over a list of strengths (ε in the attack's norm; L∞ on the [0, 1] scale), at every
    checkpoint or only at those `at` names (an expensive reference attack where a claim is made)."""

    name: AttackName = "pgd_linf"
    eps: list[Annotated[float, Field(ge=0.0, le=1e4)]] = Field(min_length=1, max_length=64)
    steps: int = Field(10, ge=1, le=1000)
    step_size: float | None = Field(
        None, gt=0.0, le=100.0, description="step as a multiple of ε; default 2.5 / steps (Madry et al.)"
    )
    random_start: bool = True
    restarts: int = Field(1, ge=1, le=100)
    options: dict[str, float | int | str] = Field(
        default_factory=dict, max_length=16, description="attack-specific parameters"
    )
    at: list[Annotated[float, Field(ge=0.0, lt=1.0)]] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="target sparsities of the checkpoints it scores (0: the dense model); unset: every checkpoint",
    )

    def scores(self, target: float) -> bool:
        """Does this attack score the checkpoint pruned to `target` sparsity?"""
        return self.at is None or any(abs(target - at) < 1e-9 for at in self.at)

    @field_validator("eps")
    @classmethod
    def _eps_grid(cls, eps: list[float]) -> list[float]:
        # 0 is always evaluated: it anchors the curve at clean accuracy (each ε is >= 0 by its bound).
        return sorted(set(eps) | {0.0})

    @model_validator(mode="after")
    def _known_options(self, info: ValidationInfo) -> "AttackSpec":
        if self.options.get("search") == "descend":
            raise ValueError(
                "options.search: descend may over-report robustness (an attack's success is not "
                "monotone in ε), so it never produces reported numbers; use scan"
            )
        if _registries(info) is not None or self.name in ATTACK_OPTIONS:
            self.typed_options(info)  # else an attack module not yet imported: checked with the registries
        return self

    def typed_options(self, info: ValidationInfo | None = None) -> AttackOptions:
        """The options validated by the attack's model (the registered class's, when the registries are
        at hand, else engine.spec.attack_options'); ValueError naming `options.<key>` otherwise."""
        attacks = (_registries(info) or {}).get("attack") if info is not None else None
        if attacks is not None and self.name in attacks:
            model = getattr(attacks.get(self.name), "Options", None) or options_model(self.name)
            return parse_options(self.name, self.options, model)
        return parse_options(self.name, self.options)

    def relative_step(self) -> float:
        """The step size as a multiple of ε: 2.5 / steps (Madry et al.), 2 / steps for SmoothAdv's attack."""
        if self.step_size is not None:
            return self.step_size
        return STEP_NUMERATORS.get(self.name, 2.5) / self.steps

    def passes(self) -> int:
        """Example-passes per evaluation image on one checkpoint it scores, at most, counting every option that
        multiplies work (engine.spec.attack_options: restarts, targets, queries, noise samples, ensemble stages)."""
        return self.typed_options().passes(len(self.eps), self.steps, self.restarts)


class EvalSpec(Frozen):
    """Evaluation of every checkpoint on one fixed, seeded subset of the test split."""

    n_samples: int = Field(1000, ge=1, le=100_000)
    batch_size: int = Field(250, ge=1, le=65536)
    attacks: list[AttackSpec] = Field(default_factory=list, max_length=16)
    transfer: bool = Field(
        False, description="also evaluate every checkpoint on adversarial examples crafted on the base"
    )
    mrs: MRSSpec | None = Field(None, description="also measure every layer's MRS at every checkpoint")

    @model_validator(mode="after")
    def _unique_attacks(self) -> "EvalSpec":
        names = [a.name for a in self.attacks]
        if len(names) != len(set(names)):
            raise ValueError("each attack may appear once; put all its ε in one list")
        return self


class BaseModelSpec(OmitUnset):
    """The sub-spec that determines the trained base model (or the given weights that replace it)."""

    dataset: DatasetSpec
    model: ModelSpec
    train: TrainSpec
    seed: int
    weights: BaseSpec | None = None


class RunSpec(OmitUnset):
    """Everything that determines one run's results."""

    dataset: DatasetSpec = DatasetSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    prune: PruneSpec = PruneSpec()
    schedule: ScheduleSpec
    eval: EvalSpec = EvalSpec()
    seed: int = Field(0, ge=0, le=2**31 - 1)
    base: BaseSpec | None = Field(None, description="start from these trained weights instead of training a base")

    @model_validator(mode="after")
    def _given_base_is_not_trained(self) -> "RunSpec":
        # given weights replace base training: its settings would change the id and nothing else
        if self.base is not None and self.train != TrainSpec():
            return self.model_copy(update={"train": TrainSpec()})
        return self

    @model_validator(mode="after")
    def _largest_tensor_fits(self) -> "RunSpec":
        for i, attack in enumerate(self.eval.attacks):
            copies = attack.typed_options().copies_per_image()
            size = self.eval.batch_size * copies * IMAGE_VALUES.get(self.dataset.name, max(IMAGE_VALUES.values())) * 4
            if size * TENSORS_ALIVE > tensor_budget():
                raise ValueError(
                    f"eval.batch_size × eval.attacks[{i}].options.samples: {self.eval.batch_size} images × {copies} "
                    f"copies hold about {size * TENSORS_ALIVE / 2**30:.1f} GiB at once, above the "
                    f"{tensor_budget() / 2**30:.1f} GiB this machine allows one attack; lower either"
                )
        return self

    @model_validator(mode="after")
    def _scored_checkpoints_exist(self) -> "RunSpec":
        targets = self.schedule.sparsities()
        for i, attack in enumerate(self.eval.attacks):
            for at in attack.at or []:
                if not any(abs(at - target) < 1e-9 for target in targets):
                    raise ValueError(
                        f"eval.attacks[{i}].at: {at:g} is not a checkpoint of the schedule; choose from "
                        f"{[round(target, 6) for target in targets]}"
                    )
        return self

    def scored_by(self, target: float) -> list[AttackSpec]:
        """The attacks that score the checkpoint pruned to `target` sparsity."""
        return [attack for attack in self.eval.attacks if attack.scores(target)]

    @model_validator(mode="after")
    def _targets_exist(self) -> "RunSpec":
        classes = DATASET_CLASSES.get(self.dataset.name)
        for i, attack in enumerate(self.eval.attacks):
            stated = getattr(attack.typed_options(), "n_classes", None)
            if classes is not None and stated is not None and stated != classes:
                raise ValueError(
                    f"eval.attacks[{i}].options.n_classes: {stated}, but {self.dataset.name} has {classes} classes; "
                    f"set {classes} or leave it out"
                )
        return self

    def base_spec(self) -> BaseModelSpec:
        """The base-model sub-spec (shared by every run that trains the same base)."""
        return BaseModelSpec(
            dataset=self.dataset, model=self.model, train=self.train, seed=self.seed, weights=self.base
        )

    def canonical_json(self) -> str:
        """Sorted, compact JSON of the spec with every default filled in."""
        return canonical_json(self)

    def run_id(self) -> str:
        """SHA-256 of the canonical JSON and the engine version."""
        return spec_hash(self)

    def base_id(self) -> str:
        """SHA-256 of the base sub-spec; runs sharing it share one trained base."""
        return spec_hash(self.base_spec())

    def base_passes(self) -> int:
        """Example-passes of base training (a full-size training split counts as 60,000); none for given weights."""
        if self.base is not None:
            return 0
        return self.train.epochs * (self.dataset.train_size or 60_000) * passes(self.train.mode, self.train.adversary)

    def finetune_batches(self) -> int:
        """Fine-tuning batches over the whole schedule, HYDRA's score batches included."""
        plan = self.schedule.plan()
        scores = self.prune.score_steps * len(plan) if self.prune.method == "hydra" else 0
        return sum(step.finetune_steps for step in plan) + scores

    def attack_passes(self) -> int:
        """Example-passes of every attack on one checkpoint, at most (PGD stops early on fooled examples); an
        attack scoring only some checkpoints (`at`) counts its share of them."""
        targets = self.schedule.sparsities()
        scored = sum(a.passes() * sum(map(a.scores, targets)) for a in self.eval.attacks)
        return round(self.eval.n_samples * scored / len(targets))

    def probe_passes(self) -> int:
        """Example-passes of the MRS probe on one checkpoint (eval.mrs): its PGD-10 set, then each of
        about PROBED_LAYERS layers climbing the loss for `ascent_steps` epochs; 0 without a probe."""
        mrs = self.eval.mrs
        if mrs is None:
            return 0
        return min(mrs.n_samples, self.eval.n_samples) * (10 + PROBED_LAYERS * mrs.ascent_steps)

    def work(self) -> int:
        """Example-passes (one forward and backward of one example) the run needs at most, from its
        numbers alone: base training, fine-tuning and HYDRA scores (× the adversary's steps when
        adversarial), attacks and MRS probes on every checkpoint."""
        checkpoints = len(self.schedule.plan()) + 1
        finetune = self.finetune_batches() * self.prune.batch_size * passes(*self.finetune_mode())
        per_checkpoint = self.eval.n_samples + self.attack_passes() + self.probe_passes()
        return self.base_passes() + finetune + self.prune_probe_passes() + checkpoints * per_checkpoint

    def prune_probe_passes(self) -> int:
        """Example-passes of MRPF's own MRS probes (prune.mrs, one before every pruning step); 0 for
        every other method."""
        if self.prune.method != "mrpf":
            return 0
        mrs = self.prune.mrs
        return len(self.schedule.plan()) * mrs.n_samples * (10 + PROBED_LAYERS * mrs.ascent_steps)

    def finetune_mode(self) -> tuple[str, AdversarySpec]:
        """The fine-tuning loss and its adversary: the prune section's, or the base's when unset."""
        if self.prune.mode is None:
            return self.train.mode, self.train.adversary
        return self.prune.mode, self.prune.adversary


def schedule_of(tree: dict[str, Any]) -> Schedule:
    """A schedule sub-tree validated alone (`name` picks the registered schedule); SpecError naming
    `schedule.<field>` otherwise."""
    name = tree.get("name") if isinstance(tree, dict) else None
    if not isinstance(name, str) or name not in SCHEDULES:
        raise SpecError([f"schedule.name: choose from {SCHEDULES.names()}"])
    try:
        return SCHEDULES.get(name).model_validate(tree)
    except ValidationError as exc:
        lines = format_errors(exc)
        raise SpecError(
            [
                line.replace("(spec): ", "schedule: ", 1) if line.startswith("(spec)") else f"schedule.{line}"
                for line in lines
            ]
        ) from None


MAX_WORK = 50_000_000
"""Example-passes a run may need without an explicit allowance (`--allow-long`, or the Runs page's
confirmation): about 3.5 h of small_cnn on 2 CPU cores at 250 µs per example-pass."""


PROBED_LAYERS = 10
"""Layers an MRS probe is counted for (LeNet-5 has 5, small_cnn 4, vgg_small 9): an upper guess, since a
spec alone does not know its model's layers."""


IMAGE_VALUES = {
    "fashion_mnist": 784,
    "mnist": 784,
    "cifar10": 3072,
    "cifar100": 3072,
    "svhn": 3072,
    "synthetic": 256,
    "folder": 3 * 128 * 128,  # a user's images: at most 128 px (engine.science.user_data.MAX_SIDE)
    "arrays": 3 * 128 * 128,
}
"""Values per image of each dataset (channels × height × width), so a spec's largest tensor is known
before any data loads; an unknown dataset is counted as the largest."""

TEST_SPLIT_SIZES: dict[str, int] = {
    "fashion_mnist": 10_000,
    "mnist": 10_000,
    "cifar10": 10_000,
    "cifar100": 10_000,
    "svhn": 26_032,
    "synthetic": 500,
}
"""Images in each registered data set's test split, known without loading it (how many evaluation images
seeds share: engine.papers.presets.shared_images); tests/test_datasets.py keeps it true. A user's data set
(folder, arrays) is not here: its size is known once it is read."""

DATASET_CLASSES: dict[str, int | None] = {
    "fashion_mnist": 10,
    "mnist": 10,
    "cifar10": 10,
    "cifar100": 100,
    "svhn": 10,
    "synthetic": 10,
    "folder": None,  # known once the data is read
    "arrays": None,
}
"""Classes of each dataset, so an attack's `n_classes` option is checked before any data loads
(tests/test_datasets.py keeps it true)."""

TENSORS_ALIVE = 3
"""Tensors of the largest size an attack holds at once: the noise, the noisy copies, their gradient."""


def tensor_budget() -> int:
    """Bytes one attack's largest tensors may take: a quarter of this machine's memory, at most 8 GiB."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 8 << 30
    return min(8 << 30, memory // 4)


def passes(mode: str, adversary: AdversarySpec) -> int:
    """Example-passes per training example: 1 natural, plus the adversary's steps when adversarial (a
    DeepFool step of BAP's budget counting DEEPFOOL_STEP_PASSES)."""
    if mode == "natural":
        return 1
    if mode.startswith("gaussian"):
        return 1 if mode == "gaussian" else 2  # the stability loss sees clean and noisy copies
    return 1 + (adversary.deepfool_steps * DEEPFOOL_STEP_PASSES if mode == "bap" else adversary.steps)


def check_work(spec: "RunSpec", allow_long: bool = False) -> None:
    """SpecError when the run needs more than MAX_WORK example-passes and no allowance was given."""
    work = spec.work()
    if work > MAX_WORK and not allow_long:
        hours = work * 250e-6 / 3600
        raise SpecError(
            [
                f"(spec): about {work:,} example-passes (≈ {hours:,.0f} h on 2 CPU cores for small_cnn), above "
                f"the {MAX_WORK:,} a run may take unasked; pass --allow-long, or tick 'Allow a long run'"
            ]
        )


def check_total_work(specs: list["RunSpec"], allow_long: bool = False) -> None:
    """SpecError when one submission (a spec's seeds, a sweep's grid, a view's fillers) needs more than
    MAX_WORK example-passes in all, or any of its runs does, and no allowance was given."""
    for spec in specs:
        check_work(spec, allow_long)
    total = sum(spec.work() for spec in specs)
    if len(specs) > 1 and total > MAX_WORK and not allow_long:
        hours = total * 250e-6 / 3600
        raise SpecError(
            [
                f"(submission): {len(specs)} runs of about {total:,} example-passes in all (≈ {hours:,.0f} h on 2 "
                f"CPU cores for small_cnn), above the {MAX_WORK:,} a submission may take unasked; pass "
                "--allow-long, or tick 'Allow a long run'"
            ]
        )


def canonical_json(model: BaseModel) -> str:
    """Canonical JSON of any spec model: sorted keys, no whitespace."""
    return json.dumps(model.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def spec_hash(model: BaseModel) -> str:
    """SHA-256 hex digest of the canonical JSON plus ENGINE_VERSION."""
    payload = f"{ENGINE_VERSION}\n{canonical_json(model)}".encode()
    return hashlib.sha256(payload).hexdigest()


def _schedule_words(schedule: dict[str, Any]) -> str:
    if schedule["name"] == "gradual":
        return f"gradual → {schedule['final_sparsity']:.0%}"
    targets = schedule.get("targets") or [0.0]
    return f"{schedule['name'].replace('_', '-')} → {', '.join(f'{t:.0%}' for t in targets)}"


def _mode_words(mode: str, adversary: dict[str, Any]) -> str:
    defaults = AdversarySpec()
    if mode in ("pgd_at", "trades", "ap"):
        return f"{mode} ε={adversary.get('eps', defaults.eps):g}"
    if mode == "bap":
        cutoff = adversary.get("cutoff", defaults.cutoff)
        return f"bap ρ={adversary.get('rho', defaults.rho):g}, cutoff {cutoff}"
    if mode.startswith("gaussian"):
        return f"{mode} σ={adversary.get('sigma') or DEFAULT_SIGMA:g}"
    return mode


def describe(spec: dict[str, Any]) -> str:
    """A run's spec in words, for labels and hovers: model, data, base, method, schedule, fine-tuning."""
    train, prune = spec.get("train", {}), spec.get("prune", {})
    base = _mode_words(train.get("mode", "natural"), train.get("adversary", {}))
    words = (
        f"{spec['model']['name']} on {spec['dataset']['name']} · {base} base · {prune.get('method', '?')} · "
        f"{_schedule_words(spec['schedule'])}"
    )
    if prune.get("mode") not in (None, train.get("mode", "natural")):
        words += f" · fine-tune {_mode_words(prune['mode'], prune.get('adversary', {}))}"
    return words


def _field_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in SCHEDULES or str(item).startswith("function-"):
            continue  # union tags and validator names are not fields the user wrote
        else:
            parts.append(("." if parts else "") + shown_key(item))
    return "".join(parts) or "(spec)"


def _message(error: Mapping[str, Any]) -> str:
    msg = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown field (check its spelling)"
    if error["type"] == "union_tag_invalid":
        return f"unknown schedule; choose from {SCHEDULES.names()}"
    if error["type"] == "union_tag_not_found":
        return f"missing 'name'; choose from {SCHEDULES.names()}"
    return msg[0].lower() + msg[1:] if msg else msg


MAX_PROBLEMS = 12


def format_errors(exc: ValidationError) -> list[str]:
    """One 'field.path: message' line per problem (the first MAX_PROBLEMS, then how many more)."""
    lines = list(dict.fromkeys(_nested(f"{_field_path(e['loc'])}: {_message(e)}") for e in exc.errors()))
    more = len(lines) - MAX_PROBLEMS
    return lines[:MAX_PROBLEMS] + ([f"(spec): … and {more} more problems"] if more > 0 else [])


def _nested(line: str) -> str:
    """'eval.attacks[0]: options.n_classes: …' → 'eval.attacks[0].options.n_classes: …' (a model validator
    names the option in its message; the path should)."""
    path, _, rest = line.partition(": ")
    if path == "(spec)" and rest.split(".")[0].split(" ")[0] in RunSpec.model_fields:
        return rest  # a whole-spec check that names its field: 'eval.attacks[0].options.n_classes: …'
    if rest.split(".")[0].split(":")[0] in SECTION_CHECKED and ": " in rest and path != "(spec)":
        option, _, message = rest.partition(": ")
        return f"{path}.{option}: {message}"
    return line


SECTION_CHECKED = {"options", "path"}
"""Fields that a section's own model validator names at the start of its message."""


def validate(tree: dict[str, Any], registries: Mapping[str, Names] | None = None) -> RunSpec:
    """Validate a raw tree into a RunSpec, or raise SpecError with one line per problem.

    `registries` (kind → registry, see engine.science.catalog) checks every named dataset, model,
    mode, method and attack; without it only the structure is checked.
    """
    try:
        return RunSpec.model_validate(tree, context={"registries": registries})
    except ValidationError as exc:
        raise SpecError(format_errors(exc)) from None
