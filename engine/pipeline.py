"""The pipeline of one run: get or train the base → walk the schedule → evaluate every checkpoint.

The only effectful edge of the engine: each step publishes its checkpoint and mask, then commits
its rows in one transaction. A run killed mid-step resumes from its last finished step and, since
each step draws from its own seeded generator and starts a fresh optimiser, ends with the same
checkpoints as an uninterrupted run.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from engine import ENGINE_VERSION
from engine.errors import IntegrityError, LeaseLost, NotFoundError, SpecError
from engine.report import sequential
from engine.report.summaries import input_range_warning
from engine.science import user_data  # noqa: F401  (registers the folder and arrays data sets)
from engine.science.data import Dataset, data_of
from engine.science.device import fit_threads, prepare_model, seed_everything
from engine.science.efficiency import OnnxModel, latency_columns, measure_effective, measure_shrunk, shrunk_model
from engine.science.efficiency import measure as measure_efficiency
from engine.science.evaluate import (
    Adversarial,
    RobustPoint,
    build_attack,
    eval_indices,
    evaluate_model,
    transfer_curve,
    transferable,
)
from engine.science.losses import LOSSES, budget_summary
from engine.science.models import build_model
from engine.science.pruning.masks import (
    Criterion,
    Layers,
    Masks,
    PruneContext,
    apply_masks,
    dense_masks,
    layer_table,
    overall_sparsity,
    prunable_layers,
)
from engine.science.pruning.methods import METHODS
from engine.science.pruning.sensitivity import sensitivity
from engine.science.pruning.structured import Followers, norm_followers, silence_dead_channels
from engine.science.training import accuracy, train_steps
from engine.science.weights import load_weights
from engine.spec.runspec import RunSpec, canonical_json
from engine.spec.schedules import PruneStep
from engine.spec.user_files import checked
from engine.status import RunStatus
from engine.store.checkpoints import load_in, publish, state_tensors
from engine.store.db import Fence, StepRecord, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """Where a run is: checkpoint `step` of `n_steps`, its phase, and work done within the phase."""

    step: int
    n_steps: int
    phase: str
    done: int = 0
    total: int = 1

    @property
    def finished(self) -> bool:
        """Has checkpoint `step` been evaluated and stored (its last phase)?"""
        return self.phase == "evaluated"


ProgressFn = Callable[[Progress], None]


def _silent(_: Progress) -> None:
    pass


def train_split(data: Dataset, spec: RunSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The training tensors, or a seeded subset of `dataset.train_size` examples."""
    if spec.dataset.train_size is None or spec.dataset.train_size >= len(data.x_train):
        return data.x_train, data.y_train
    idx = eval_indices(len(data.x_train), spec.dataset.train_size, spec.seed)
    return data.x_train[idx], data.y_train[idx]


def eval_split(data: Dataset, spec: RunSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed, seeded evaluation subset of the test split (x in [0, 1], y)."""
    idx = eval_indices(len(data.x_test), spec.eval.n_samples, spec.seed)
    return data.x_test[idx], data.y_test[idx]


def eval_chunk(data: Dataset, spec: RunSpec, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunk k ≥ 1 of further evaluation images: the next CHUNK of the test split in the same seeded
    order that `eval_split` takes its first n_samples from (in index order; empty once the split is spent)."""
    n_test = len(data.x_test)
    order = torch.randperm(n_test, generator=torch.Generator().manual_seed(spec.seed))
    start = min(spec.eval.n_samples, n_test) + (chunk - 1) * sequential.CHUNK
    idx = order[start : start + sequential.CHUNK].sort().values
    return data.x_test[idx], data.y_test[idx]


def checkpoint_model(spec: RunSpec, store: Store, step: int, data: Dataset) -> nn.Module:
    """The model of a run's finished step, its weights checked against their SHA-256, in eval mode."""
    row = store.step(spec.run_id(), step)
    model = build_model(spec.model.name, data.info, spec.model.width)
    model.load_state_dict(load_in(store.root, row["checkpoint"], row["sha256"]))
    return prepare_model(model).eval()


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}|step|{step}".encode()))


def _fresh_model(spec: RunSpec, data: Dataset) -> nn.Module:
    torch.manual_seed(spec.seed)  # the same initial weights for the same seed
    return prepare_model(build_model(spec.model.name, data.info, spec.model.width)).eval()


def base_model_state(
    spec: RunSpec, store: Store, data: Dataset, report: ProgressFn, n_steps: int
) -> dict[str, torch.Tensor]:
    """The trained base model's weights: from the store when present and intact, else trained now."""
    base_id = spec.base_id()
    row = store.base(base_id)
    if row is not None:
        try:
            return load_in(store.root, row["checkpoint"], row["sha256"])
        except (IntegrityError, NotFoundError) as exc:
            log.warning("retraining base %s: %s", base_id[:12], exc)
    if spec.base is not None:
        return _given_base(spec, store, data)
    model = _fresh_model(spec, data)
    x, y = train_split(data, spec)
    steps = spec.train.epochs * math.ceil(len(x) / spec.train.batch_size)
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(spec.seed)
    train_steps(
        model,
        x,
        y,
        steps=steps,
        batch_size=spec.train.batch_size,
        lr=spec.train.lr,
        generator=generator,
        optimizer=spec.train.optimizer,
        loss_fn=LOSSES.get(spec.train.mode)(spec.train.adversary, generator),
        augment=spec.dataset.augmentation(),
        on_batch=lambda done, total: report(
            Progress(0, n_steps, f"training the base model ({spec.train.mode})", done, total)
        ),
    )
    _store_base(spec, store, model, accuracy(model, data.x_test, data.y_test), time.perf_counter() - started)
    return state_tensors(model)


def _given_base(spec: RunSpec, store: Store, data: Dataset) -> dict[str, torch.Tensor]:
    """A user's trained weights as the base: loaded strictly, stored, and measured like a trained base."""
    assert spec.base is not None
    model = _fresh_model(spec, data)
    path = checked("weights", spec.base.weights, spec.base.sha256, "base.weights")
    load_weights(model, path)
    _store_base(spec, store, model, accuracy(model, data.x_test, data.y_test), seconds=0.0)
    return state_tensors(model)


def _store_base(spec: RunSpec, store: Store, model: nn.Module, clean_acc: float, seconds: float) -> None:
    base_id = spec.base_id()
    relative = f"bases/{base_id}.safetensors"
    sha = publish(state_tensors(model), store.root / relative, {"base_id": base_id, "model": spec.model.name})
    store.put_base(
        {
            "base_id": base_id,
            "spec_json": canonical_json(spec.base_spec()),
            "checkpoint": relative,
            "sha256": sha,
            "clean_acc": clean_acc,
            "train_seconds": seconds,
        }
    )


@dataclass(kw_only=True)
class Walk:
    """What every step of one run's walk needs: the spec, the store, the tensors, the model."""

    spec: RunSpec
    store: Store
    report: ProgressFn
    n_steps: int
    train: tuple[torch.Tensor, torch.Tensor]
    evaluation: tuple[torch.Tensor, torch.Tensor]
    model: nn.Module
    layers: Layers
    base: dict[str, torch.Tensor]
    criterion: Criterion
    followers: Followers  # conv → its BatchNorm, silenced with pruned filters
    fence: Fence | None = None
    transfer_from: dict[str, Adversarial] | None = None  # inputs crafted on the base, per attack and ε
    reference: nn.Module | None = None
    onnx_reference: OnnxModel | None = None
    threads: int | None = None  # the worker's share of the cores (None: leave torch's setting alone)

    def dense_reference(self) -> nn.Module:
        """The base model, unpruned, in this walk's layout (built once): what its checkpoints are timed against."""
        if self.reference is None:
            self.reference = copy.deepcopy(self.model)
            self.reference.load_state_dict(self.base)
            self.reference.eval()
        return self.reference

    def dense_onnx(self) -> OnnxModel:
        """The dense reference exported to ONNX (once per walk): the deployment path's baseline."""
        if self.onnx_reference is None:
            self.onnx_reference = OnnxModel(self.dense_reference(), self.evaluation[0][:2])
        return self.onnx_reference

    def hold_masks(self, masks: Masks) -> None:
        """Zero pruned weights (and, for filter pruning, the pruned channels' bias and BatchNorm)."""
        apply_masks(self.layers, masks)
        if self.criterion.granularity == "filter":
            silence_dead_channels(self.layers, masks, self.followers)

    def load_step(self, step: int) -> Masks:
        """Load a finished step's weights into the model (SHA-256-checked); return its masks."""
        row = self.store.step(self.spec.run_id(), step)
        self.model.load_state_dict(load_in(self.store.root, row["checkpoint"], row["sha256"]))
        masks = load_in(self.store.root, row["mask_checkpoint"], row["mask_sha256"])
        device = next(self.model.parameters()).device
        return {name: mask.to(device=device, dtype=torch.float32) for name, mask in masks.items()}

    def publish(self, k: int, masks: Masks) -> dict[str, str]:
        """Publish step k's weights and masks; return their paths and SHA-256s for its row."""
        self.store.check_fence(self.fence)  # a worker that lost its lease publishes nothing
        spec, folder = self.spec, f"runs/{self.spec.run_id()}"
        meta = {"run_id": spec.run_id(), "step": str(k), "model": spec.model.name, "dataset": spec.dataset.name}
        weights_path, mask_path = f"{folder}/step-{k:03d}.safetensors", f"{folder}/step-{k:03d}.masks.safetensors"
        sha = publish(state_tensors(self.model), self.store.root / weights_path, meta)
        mask_sha = publish({n: m.bool() for n, m in masks.items()}, self.store.root / mask_path, meta)
        return {"checkpoint": weights_path, "sha256": sha, "mask_checkpoint": mask_path, "mask_sha256": mask_sha}


@dataclass(frozen=True)
class StepNotes:
    """What pruning and fine-tuning a step note beside its masks: the adversarial budget's statistics
    (BAP, AP), and per layer the ratio a layer-ratio method set and the MRS that set it."""

    budget: dict[str, Any] | None = None
    ratios: dict[str, float] = field(default_factory=dict)
    ratio_mrs: dict[str, float] = field(default_factory=dict)


def prune_and_finetune(walk: Walk, k: int, step: PruneStep, masks: Masks) -> tuple[Masks, StepNotes]:
    """Prune the model to the step's sparsity (nested in `masks` unless from the base) and fine-tune.

    Returns the masks and the step's notes: its budget statistics, per-layer ratios and the MRS that set
    them, where any.
    """
    spec, phase = walk.spec, f"pruning to {step.sparsity:.1%}"
    gen = _step_generator(spec.seed, k)
    mode, adversary = spec.finetune_mode()
    loss = LOSSES.get(mode)(adversary, gen)
    context = PruneContext(
        walk.model,
        walk.train,
        loss,
        spec.prune,
        spec.train.optimizer,
        lambda done, total: walk.report(Progress(k, walk.n_steps, f"{phase}, selecting", done, total)),
        augment=spec.dataset.augmentation(),
    )
    masks = walk.criterion.select(walk.layers, step.sparsity, None if step.from_base else masks, gen, context)
    walk.hold_masks(masks)
    loss.records.clear()  # budgets spent while selecting (HYDRA's scores) are not the fine-tuning's
    walk.report(Progress(k, walk.n_steps, phase, 0, max(step.finetune_steps, 1)))
    train_steps(
        walk.model,
        *walk.train,
        steps=step.finetune_steps,
        batch_size=spec.prune.batch_size,
        lr=spec.prune.lr,
        generator=gen,
        optimizer=spec.train.optimizer,
        loss_fn=loss,
        masked=(walk.layers, masks),
        augment=spec.dataset.augmentation(),
        after_step=lambda: walk.hold_masks(masks),
        on_batch=lambda done, total: walk.report(
            Progress(k, walk.n_steps, f"{phase}, fine-tuning ({mode})", done, total)
        ),
    )
    return masks, StepNotes(
        budget_summary(loss.records), context.notes.get("ratios", {}), context.notes.get("ratio_mrs", {})
    )


def base_adversarial(walk: Walk) -> dict[str, Adversarial]:
    """Adversarial inputs crafted on the base model (recomputed, deterministically, after a resume)."""
    spec = walk.spec
    base = _fresh_model(spec, data_of(spec.dataset))
    base.load_state_dict(walk.base)
    return evaluate_model(base.eval(), *walk.evaluation, spec.eval, spec.seed, keep_adversarial=True).adversarial


def dense_results(walk: Walk) -> dict | None:
    """Step 0's clean and robust results measured by another run on the same base with the same
    evaluation (the same model, images, attacks and seeds: Store.dense_results), or None. What-if forks
    and a paper preset's variants share their dense point instead of attacking the same model again;
    runs that transfer attacks from the base keep computing it, since they need its adversarial inputs."""
    spec = walk.spec
    found = walk.store.dense_results(spec)
    if found is not None:
        log.info("step 0 of %s: the dense model's results of run %s (same base, same evaluation)",
                 spec.run_id()[:12], found["run_id"][:12])  # fmt: skip
    return found


def evaluate_step(walk: Walk, k: int) -> tuple[float, list[dict], list[dict], list[dict]]:
    """Clean accuracy, white-box rows, transfer rows and warnings of the model at step k."""
    spec, (x, y) = walk.spec, walk.evaluation
    scored = spec.scored_by(spec.schedule.sparsities()[k])  # an attack with `at` scores only those checkpoints
    transfer_wanted = spec.eval.transfer and bool(transferable(spec.eval.attacks))
    dense = dense_results(walk) if k == 0 and not transfer_wanted else None
    if dense is not None:
        clean_acc, robust = dense["clean_acc"], dense["robust"]
    else:
        evaluation = evaluate_model(
            walk.model.eval(),
            x,
            y,
            spec.eval.model_copy(update={"attacks": scored}),
            spec.seed,
            keep_adversarial=transfer_wanted and k == 0,
            on_progress=lambda done, total: walk.report(Progress(k, walk.n_steps, "evaluating", done, total)),
        )
        clean_acc, robust = evaluation.clean_acc, [vars(p) for p in evaluation.points]
    transfer: list[RobustPoint] = []
    if transfer_wanted:
        if k == 0:
            walk.transfer_from = evaluation.adversarial
        elif walk.transfer_from is None:
            walk.transfer_from = base_adversarial(walk)
        for attack in transferable(spec.eval.attacks):
            transfer += transfer_curve(
                walk.model, x, y, attack, walk.transfer_from[attack.name], spec.eval.batch_size, spec.seed
            )
    warning = input_range_warning(float(x.min()), float(x.max()))
    warnings = [{"kind": "inputs_outside_unit_range", "message": warning}] if warning else []
    warnings += [
        {"kind": "weaker_than_standard", "message": message}
        for attack in scored
        if (message := build_attack(attack).protocol_warning())
    ]
    return clean_acc, robust, [vars(p) for p in transfer], warnings


def layer_rows(walk: Walk, k: int, masks: Masks, notes: StepNotes, effective: dict[str, int]) -> list[dict]:
    """The per-layer table of step k: each layer's effective kept weights, its MRS when asked for, and
    the ratio (with the MRS that set it, measured before this prune) where the method chose ratios."""
    rows = [{**row, "effective_nonzero": effective.get(row["layer"])} for row in layer_table(walk.model, masks)]
    probe = walk.spec.eval.mrs
    if probe is not None:
        walk.report(Progress(k, walk.n_steps, "probing layer sensitivity (MRS)", 0, 1))
        probes = sensitivity(walk.model, *walk.evaluation, probe, _step_generator(walk.spec.seed, k), masks)
        rows = [
            {**row, "mrs": probes[row["layer"]].mrs, "mrs_reach": probes[row["layer"]].reach}
            if row["layer"] in probes
            else row
            for row in rows
        ]
    return [
        {**row, "ratio": notes.ratios.get(row["layer"]), "ratio_mrs": notes.ratio_mrs.get(row["layer"])} for row in rows
    ]


def step_efficiency(walk: Walk, masks: Masks) -> tuple[dict[str, float], dict[str, int]]:
    """Efficiency of the masked model (nominal and effective) and, for filter pruning, of the physically
    smaller one; and each layer's effective kept weights. The latencies of the checkpoint, its dense
    reference and the smaller model (eager, and in ONNX Runtime beside the dense one) come from one
    interleaved measurement, each with its spread."""
    example = walk.evaluation[0][:1]
    cost = measure_efficiency(walk.model, masks, example)
    effective, per_layer = measure_effective(walk.model, masks, example)
    cost.update(effective)
    timed: dict[str, nn.Module | OnnxModel] = {"": walk.model, "dense_": walk.dense_reference()}
    small = shrunk_model(walk.model, masks, example) if walk.criterion.granularity == "filter" else None
    if small is not None:
        cost.update(measure_shrunk(small, masks, example))
        timed |= {"shrunk_": small, "onnx_dense_": walk.dense_onnx(), "onnx_shrunk_": OnnxModel(small, example)}
    cost.update(latency_columns(timed, example, min_run_time=0.01))
    return cost, per_layer


def run_step(walk: Walk, k: int, step: PruneStep, masks: Masks) -> Masks:
    """Step k: prune and fine-tune (k > 0), publish the checkpoint, evaluate it, commit its rows."""
    started = time.perf_counter()
    notes = StepNotes()
    if k > 0:
        masks, notes = prune_and_finetune(walk, k, step, masks)
    train_seconds = time.perf_counter() - started
    files = walk.publish(k, masks)
    if walk.threads:
        fit_threads(walk.threads)  # measuring: the cores the other processes leave free now
    efficiency, effective = step_efficiency(walk, masks)
    walk.report(Progress(k, walk.n_steps, "evaluating", 0, 1))
    started = time.perf_counter()
    clean_acc, robust, transfer, warnings = evaluate_step(walk, k)
    layers = layer_rows(walk, k, masks, notes, effective)
    eval_seconds = time.perf_counter() - started
    walk.store.put_step(
        StepRecord(
            {
                "run_id": walk.spec.run_id(),
                "step": k,
                "target_sparsity": step.sparsity,
                "sparsity": overall_sparsity(masks),
                "clean_acc": clean_acc,
                **files,
                "train_seconds": train_seconds,
                "eval_seconds": eval_seconds,
            },
            robust,
            layers,
            transfer=transfer,
            warnings=warnings,
            efficiency=efficiency,
            budget=notes.budget,
        ),
        fence=walk.fence,
    )
    walk.report(Progress(k, walk.n_steps, "evaluated", 1, 1))
    return masks


def run(
    spec: RunSpec,
    store: Store,
    on_progress: ProgressFn | None = None,
    fence: Fence | None = None,
    threads: int | None = None,
) -> bool:
    """Run a spec to completion in `store`; return True if every step was already cached.

    Under a job's `fence`, every write first checks that the job is still this worker's. With `threads`
    (a worker's share of the cores), training always runs at that many torch threads, because the
    weights it produces depend on the count (1 and 2 threads give different checkpoints, so a run
    resumed on a busier machine would differ); evaluation and latency, whose numbers do not depend
    on it, fit their threads to the cores other processes leave free (science.device.fit_threads).
    """
    run_id, report = spec.run_id(), on_progress or _silent
    if store.has_run(run_id) and store.run(run_id)["status"] == RunStatus.DONE:
        return True
    seed_everything(spec.seed)
    data = data_of(spec.dataset)
    plan = [PruneStep(0.0, 0)] + spec.schedule.plan()
    store.begin_run(run_id, spec.base_id(), spec.canonical_json(), ENGINE_VERSION, len(plan), fence)
    try:
        _walk(spec, store, data, plan, report, fence, threads)
    except LeaseLost:
        raise  # the run belongs to another attempt now: leave its row alone
    except Exception as exc:
        store.finish_run(run_id, f"{type(exc).__name__}: {exc}", fence)
        raise
    store.finish_run(run_id, None, fence)
    return False


def _walk(
    spec: RunSpec,
    store: Store,
    data: Dataset,
    plan: list[PruneStep],
    report: ProgressFn,
    fence: Fence | None,
    threads: int | None = None,
) -> None:
    done = {row["step"] for row in store.steps(spec.run_id())}
    if len(done) == len(plan):
        return
    if threads:
        torch.set_num_threads(threads)  # training: always the worker's share (see run())
    model = _fresh_model(spec, data)
    criterion = METHODS.get(spec.prune.method)()
    layers = prunable_layers(model, spec.prune.prune_classifier, criterion.layer_kinds)
    if not layers:  # refused before the base trains
        kinds = " or ".join(kind.__name__ for kind in criterion.layer_kinds)
        raise SpecError([f"prune.method: {spec.prune.method} prunes {kinds} layers; model {spec.model.name} has none"])
    base = base_model_state(spec, store, data, report, len(plan))
    walk = Walk(
        spec=spec,
        store=store,
        report=report,
        n_steps=len(plan),
        train=train_split(data, spec),
        evaluation=eval_split(data, spec),
        model=model,
        layers=layers,
        base=base,
        criterion=criterion,
        followers=norm_followers(model),
        fence=fence,
        threads=threads,
    )
    in_memory = None  # the step whose result the model holds
    masks: Masks = {}
    for k, step in enumerate(plan):
        if k in done:
            continue
        if threads:
            torch.set_num_threads(threads)  # training at a fixed count: its weights depend on it
        if k == 0 or step.from_base:
            model.load_state_dict(base)
            masks = dense_masks(walk.layers)
        elif in_memory != k - 1:
            try:
                masks = walk.load_step(k - 1)  # resume from the last finished step
            except (IntegrityError, NotFoundError) as exc:
                log.warning("recomputing from step %d of run %s: %s", k - 1, spec.run_id()[:12], exc)
                store.forget_steps(spec.run_id(), k - 1)
                return _walk(spec, store, data, plan, report, fence, threads)
        masks = run_step(walk, k, step, masks)
        in_memory = k
