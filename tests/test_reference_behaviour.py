"""Each method against its reference implementation's behaviour (the defects of the science review).

HYDRA (inspire-group/hydra `models/layers.py`, `utils/model.py`), DeepFool as BAP ships it
(cleverhans 3.0.1 `deep_fool.py`), RiFT's layer sharpness (microsoft/robustlearn), AutoAttack's
standard settings (Croce & Hein), and the soundness of every reported robust curve.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import autograd, nn

from engine.science.losses import LOSSES
from engine.science.pruning.hydra import ScoredWeight, norm_parameters, optimise_scores, top_k_mask
from engine.science.pruning.masks import PruneContext, prunable_layers
from engine.spec.runspec import AdversarySpec, PruneSpec

# ---- HYDRA: the score gradient goes through |s| ----------------------------------------------


class HydraGetSubnet(autograd.Function):
    """HYDRA's GetSubnet, verbatim in behaviour: top-k of the given scores, gradient straight through."""

    @staticmethod
    def forward(ctx, scores, k):
        out = scores.clone()
        _, idx = scores.flatten().sort()
        j = int((1 - k) * scores.numel())
        flat = out.flatten()
        flat[idx[:j]] = 0
        flat[idx[j:]] = 1
        return flat.view_as(scores)

    @staticmethod
    def backward(ctx, g):
        return g, None


def _mixed_sign_scored(sparsity: float = 0.7):
    torch.manual_seed(3)
    layer = nn.Linear(20, 10)
    scored = ScoredWeight(layer.weight, sparsity)
    with torch.no_grad():  # scores of both signs, well away from ties
        scored.scores.copy_(torch.randn(scored.scores.shape, generator=torch.Generator().manual_seed(4)))
    return layer, scored


def test_score_gradient_equals_autograd_through_abs_for_both_signs():
    layer, scored = _mixed_sign_scored()
    x = torch.randn(16, 20, generator=torch.Generator().manual_seed(5))
    F.linear(x, scored(layer.weight.detach())).square().sum().backward()
    ours = scored.scores.grad.clone()

    reference = scored.scores.detach().clone().requires_grad_(True)
    mask = HydraGetSubnet.apply(reference.abs(), 1 - 0.7)  # HYDRA's k is the kept fraction
    F.linear(x, layer.weight.detach() * mask).square().sum().backward()

    negative, positive = reference.detach() < 0, reference.detach() > 0
    assert negative.any() and positive.any()
    assert torch.allclose(ours[negative], reference.grad[negative], atol=1e-6)
    assert torch.allclose(ours[positive], reference.grad[positive], atol=1e-6)
    # a test that the sign matters: the negative scores' gradient is the straight-through one negated
    assert (ours[negative].abs() > 0).any() and not torch.allclose(ours[negative], -reference.grad[negative])


def test_score_training_lowers_the_training_loss(synthetic, tiny_mlp):
    """HYDRA's gradient halves the masked loss here (0.206 → 0.106); the sign-less one barely moved it
    (0.206 → 0.189), and in the review's MLP it even raised it (0.429 → 0.505)."""
    model = copy.deepcopy(tiny_mlp)
    layers = prunable_layers(model)
    x, y = synthetic.x_train[:512], synthetic.y_train[:512]
    loss = LOSSES.get("natural")(AdversarySpec(), torch.Generator())
    context = PruneContext(model, (x, y), loss, PruneSpec(method="hydra", score_steps=150, batch_size=64, score_lr=0.1))

    def masked_loss(masks) -> float:
        probe = copy.deepcopy(model)
        with torch.no_grad():
            for name, layer in prunable_layers(probe).items():
                layer.weight.mul_(masks[name])
        return float(F.cross_entropy(probe.eval()(x), y).detach())

    before = masked_loss({n: top_k_mask(ScoredWeight(layer.weight, 0.9).scores, 0.9) for n, layer in layers.items()})
    scores = optimise_scores(layers, 0.9, torch.Generator().manual_seed(0), context)
    after = masked_loss({n: top_k_mask(s, 0.9) for n, s in scores.items()})
    assert after < 0.7 * before, (before, after)


def test_prune_phase_trains_batchnorm_affine_unless_frozen(synthetic):
    from engine.science.models import build_model

    for freeze, moves in ((False, True), (True, False)):
        torch.manual_seed(0)
        model = build_model("vgg_small", synthetic.info)
        layers = prunable_layers(model)
        norms = [p.detach().clone() for p in norm_parameters(model)]
        convs = {n: layer.weight.detach().clone() for n, layer in layers.items()}
        spec = PruneSpec(method="hydra", score_steps=3, batch_size=32, freeze_bn=freeze)
        context = PruneContext(
            model,
            (synthetic.x_train[:128], synthetic.y_train[:128]),
            LOSSES.get("natural")(AdversarySpec(), torch.Generator()),
            spec,
        )
        optimise_scores(layers, 0.5, torch.Generator().manual_seed(0), context)
        changed = any(not torch.equal(a, b) for a, b in zip(norms, norm_parameters(model)))
        assert changed is moves
        assert all(torch.equal(convs[n], layers[n].weight) for n in layers)  # W bit-identical either way
        assert all(p.requires_grad for p in model.parameters())


def test_scores_get_hydra_weight_decay(monkeypatch, synthetic, tiny_mlp):
    seen = {}
    real = torch.optim.SGD

    def spy(params, **kwargs):
        seen.update(kwargs)
        return real(params, **kwargs)

    monkeypatch.setattr(torch.optim, "SGD", spy)
    model = copy.deepcopy(tiny_mlp)
    context = PruneContext(
        model,
        (synthetic.x_train[:64], synthetic.y_train[:64]),
        LOSSES.get("natural")(AdversarySpec(), torch.Generator()),
        PruneSpec(method="hydra", score_steps=1),
    )
    optimise_scores(prunable_layers(model), 0.5, torch.Generator().manual_seed(0), context)
    assert seen == {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}


# ---- DeepFool: a zero input gradient is a zero step, never NaN ---------------------------------


class DeadConvNet(nn.Module):
    """Every conv filter pruned: the logits are the classifier's bias alone (input gradient exactly 0)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            self.fc.bias.copy_(torch.arange(10.0) / 10)  # always predicts class 9

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_deepfool_on_a_zero_gradient_model_is_not_fooled_and_never_nan():
    from engine.science.attacks.deepfool import DeepFool

    model = DeadConvNet().eval()
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.full((6,), 9)
    dist, adv = DeepFool(steps=5).distances(model, x, y)
    assert torch.isinf(dist).all() and not torch.isnan(adv).any()
    assert torch.equal(adv, x)  # a zero step: nothing moved


def test_robust_curve_of_a_dead_model_starts_at_clean_accuracy():
    from engine.science.evaluate import robust_curve
    from engine.spec.runspec import AttackSpec

    model = DeadConvNet().eval()
    x = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([9] * 8 + [0] * 12)  # at chance-like accuracy: 8 of 20 right
    points = robust_curve(model, x, y, AttackSpec(name="deepfool", eps=[0, 0.5, 2.0], steps=10))
    assert [p.acc for p in points] == [0.4, 0.4, 0.4]


def test_bap_loss_stays_finite_on_a_dead_model():
    model = DeadConvNet()
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(1))
    loss = LOSSES.get("bap")(AdversarySpec(), torch.Generator())
    value = loss(model, x, y)
    assert torch.isfinite(value)
    record = loss.records[-1]
    assert torch.isfinite(record["budgets"]).all() and record["cutoff"] == 0.0


# ---- BAP: DeepFool starts from the model's prediction, as cleverhans does ------------------------


def test_bap_deepfool_starts_from_the_prediction_so_misclassified_examples_get_a_distance(tiny_cnn, synthetic):
    model = copy.deepcopy(tiny_cnn)
    x = synthetic.x_test[:64]
    with torch.no_grad():
        predicted = model(x).argmax(1)
    wrong_label = (predicted + 1) % 10  # every example "misclassified" against these labels
    prediction = LOSSES.get("bap")(AdversarySpec(deepfool_steps=10), torch.Generator())
    label = LOSSES.get("bap")(AdversarySpec(deepfool_steps=10, deepfool_reference="label"), torch.Generator())
    prediction(model, x, wrong_label)
    label(model, x, wrong_label)
    assert (prediction.records[-1]["distances"] > 0).float().mean() > 0.9
    assert torch.equal(label.records[-1]["distances"], torch.zeros(64))
    assert prediction.records[-1]["cutoff"] > 0 and label.records[-1]["cutoff"] == 0.0


def test_deepfool_reference_defaults_to_the_prediction():
    assert AdversarySpec().deepfool_reference == "prediction"


# ---- no NaN reaches a loss, a budget or a stored row --------------------------------------------


def test_a_non_finite_training_loss_stops_training(synthetic, tiny_mlp):
    from engine.science.training import train_steps

    model = copy.deepcopy(tiny_mlp)
    with pytest.raises(FloatingPointError, match="training loss is nan at batch 1"):
        train_steps(
            model,
            synthetic.x_train,
            synthetic.y_train,
            steps=3,
            batch_size=16,
            lr=1e-3,
            generator=torch.Generator(),
            loss_fn=lambda m, x, y: m(x).sum() * float("nan"),
        )


def test_the_store_refuses_non_finite_numbers(store):
    from engine.store.db import require_finite

    with pytest.raises(ValueError, match=r"robust\.acc is nan"):
        require_finite("robust", {"attack": "deepfool", "acc": float("nan")})
    with pytest.raises(ValueError, match=r"budget\.cutoff is inf"):
        require_finite("budget", {"cutoff": float("inf")})
    require_finite("budget", {"cutoff": None, "budget_mean": 0.0})


def test_budget_summary_without_a_cutoff_stores_null_not_nan():
    from engine.science.losses import budget_summary

    row = budget_summary([{"cutoff": None, "norm": "RMS-L2", "budgets": torch.ones(4), "distances": torch.ones(4)}])
    assert row["cutoff"] is None


# ---- every reported curve comes from a sound search ----------------------------------------------


class NarrowIsland(nn.Module):
    """Class 1 only on a narrow island of pixel 0 (t ∈ 0.58 ± 0.01); class 0 elsewhere.

    From t = 0.5, PGD-10 at ε = 0.1 walks onto the island (steps of 0.025); at ε = 0.4 its steps of
    0.1 jump over it and oscillate. PGD's success is not monotone in ε.
    """

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # the engine finds the device from a parameter

    def forward(self, x):
        t = x.flatten(1)[:, 0]
        bump = 10 * torch.exp(-((t - 0.58) ** 2) / (2 * 0.01**2)) - 5
        return torch.stack([torch.zeros_like(bump), bump], dim=1)


def test_reported_curves_stay_broken_where_a_smaller_ball_broke_and_descend_is_refused():
    from engine.errors import SpecError
    from engine.science.catalog import validate
    from engine.science.evaluate import descend_preview_curve, robust_curve
    from engine.spec.runspec import AttackSpec

    model = NarrowIsland().eval()
    x, y = torch.full((1, 1, 2, 2), 0.5), torch.zeros(1, dtype=torch.long)
    spec = AttackSpec(name="pgd_linf", eps=[0.1, 0.4], steps=10, random_start=False)
    assert [p.acc for p in robust_curve(model, x, y, spec)] == [1.0, 0.0, 0.0]  # broken at 0.1, so at 0.4
    # the descending walk fails at 0.4 and never attacks 0.1: it over-reports, hence never reported
    assert [p.acc for p in descend_preview_curve(model, x, y, spec)] == [1.0, 1.0, 1.0]
    with pytest.raises(SpecError, match="options.search: descend may over-report"):
        validate(
            {
                "schedule": {"name": "one_shot", "targets": [0.5]},
                "eval": {"attacks": [{"name": "pgd_linf", "eps": [0.1], "options": {"search": "descend"}}]},
            }
        )


# ---- MRS: RiFT's epoch of mini-batch ascent steps between projections --------------------------


def test_mrs_takes_a_pass_of_mini_batch_steps_per_projection_and_records_its_reach(tiny_cnn, synthetic):
    from engine.science.pruning.sensitivity import layer_sensitivity
    from engine.spec.runspec import MRSSpec

    model = copy.deepcopy(tiny_cnn)
    sizes = []
    hook = model.fc1.register_forward_pre_hook(lambda m, args: sizes.append(len(args[0])))
    x, y = synthetic.x_test[:256], synthetic.y_test[:256]
    probe = layer_sensitivity(model, model.fc1, x, y, MRSSpec(ascent_steps=3, batch_size=64))
    hook.remove()
    # before: 256, then per epoch four mini-batch steps of 64 and one whole-set evaluation
    assert sizes == [256] + [64, 64, 64, 64, 256] * 3
    assert probe.mrs > 0 and 0 < probe.reach <= 1


def test_mrs_reach_and_effective_size_are_stored_per_step_and_layer(store):
    from engine import api
    from engine.pipeline import run
    from engine.science.catalog import validate

    tree = {
        "dataset": {"name": "synthetic"},
        "model": {"name": "mlp"},
        "train": {"epochs": 1},
        "schedule": {"name": "one_shot", "targets": [0.5], "finetune_steps": 2},
        "eval": {"n_samples": 32, "attacks": [], "mrs": {"n_samples": 32, "ascent_steps": 2, "batch_size": 16}},
    }
    spec = validate(tree)
    run(spec, store)
    frame = api.layers_frame(spec.run_id(), store)
    assert frame["mrs_reach"].between(0, 1).all() and frame["mrs"].ge(0).all()
    assert (frame["effective_nonzero"] <= frame["nonzero"]).all()
    cost = api.efficiency_frame([spec.run_id()], store)
    assert cost["effective_params"].notna().all() and (cost["effective_params"] <= cost["nonzero_params"]).all()
    assert (cost["effective_sparsity"] >= cost["sparsity"] - 1e-12).all()
    doc = api.document(spec.run_id(), store)
    assert "effective_compression" in doc["points"][1]["efficiency"]
    assert "mrs_reach" in doc["points"][1]["layers"][0]


# ---- effective size: weights off every input → output path do nothing -----------------------------


def test_effective_size_of_filter_pruning_equals_what_the_smaller_model_holds(synthetic):
    from engine.science.efficiency import measure_effective
    from engine.science.models import build_model
    from engine.science.pruning.methods import METHODS
    from engine.science.pruning.shrink import shrink
    from engine.science.pruning.structured import norm_followers, silence_dead_channels

    torch.manual_seed(0)
    model = build_model("lenet5", synthetic.info).eval()
    criterion = METHODS.get("filter_layer")()
    layers = prunable_layers(model, False, criterion.layer_kinds)
    masks = criterion.select(layers, 0.5, None, torch.Generator().manual_seed(0))
    with torch.no_grad():
        for name, mask in masks.items():
            layers[name].weight.mul_(mask)
    silence_dead_channels(layers, masks, norm_followers(model))
    effective, per_layer = measure_effective(model, masks, synthetic.x_test[:1])
    small = shrink(model, masks)
    assert small is not None
    small_weights = sum(int(m.weight.numel()) for m in small.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert sum(per_layer.values()) == small_weights  # fc1's inputs from pruned filters are not counted
    nominal = sum(int(m.sum()) for m in masks.values())
    conv_effective = sum(per_layer[name] for name in masks)
    assert conv_effective < nominal  # conv2's weights reading conv1's pruned filters are dead
    assert effective["effective_sparsity"] > 0.5 and effective["effective_compression"] > 1


def test_unstructured_weights_into_a_dead_end_or_from_a_dead_channel_are_not_effective():
    from engine.science.efficiency import measure_effective

    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).eval()
    masks = {"0": torch.ones(3, 4), "2": torch.ones(2, 3)}
    masks["0"][1] = 0  # hidden unit 1 has no input (and no bias): its outgoing weights read a dead channel
    masks["2"][:, 2] = 0  # hidden unit 2 is read by nothing: its incoming weights lead nowhere
    with torch.no_grad():
        model[0].weight.mul_(masks["0"])
        model[0].bias[1] = 0.0
        model[2].weight.mul_(masks["2"])
    effective, per_layer = measure_effective(model, masks, torch.rand(1, 4))
    assert per_layer == {"0": 4, "2": 2}  # only hidden unit 0: its 4 inputs and 2 outputs
    assert effective["effective_sparsity"] == pytest.approx(1 - 6 / 18)
    params = sum(p.numel() for p in model.parameters())
    assert effective["effective_params"] == params - (18 - 6)


def test_a_channel_whose_filter_is_pruned_still_counts_while_its_bias_or_batchnorm_shift_reaches_on():
    """Zeroing every weight the effective size calls dead leaves the logits unchanged: a filter pruned
    whole keeps emitting its bias (or its BatchNorm's shift), and the next layer's weights read it."""
    from engine.science.efficiency import effective_masks

    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    normed = nn.Sequential(
        nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)
    )
    with torch.no_grad():
        conv[0].bias.fill_(0.3)
        normed[1].running_mean.uniform_(-0.5, 0.5)
        normed[1].bias.fill_(0.4)
    for model, first, later in ((conv, "0", ["2", "4"]), (normed, "0", ["4"])):
        model.eval()
        masks = {first: torch.ones_like(model[0].weight)} | {n: torch.ones_like(model[int(n)].weight) for n in later}
        masks[first][0] = 0  # filter 0 pruned whole
        with torch.no_grad():
            model[0].weight.mul_(masks[first])
        x = torch.rand(5, 1, 8, 8)
        before = model(x)
        live = effective_masks(model, masks, x[:1])
        with torch.no_grad():
            for name, mask in live.items():
                model[int(name)].weight.mul_(mask.to(model[int(name)].weight))
        assert torch.allclose(model(x), before, atol=1e-6)


# ---- paper presets prune what the papers' code prunes ------------------------------------------


def test_paper_presets_prune_the_classifier_where_the_papers_code_does(synthetic):
    from engine import api
    from engine.science.models import build_model, classifier_name

    hydra = api.paper_specs("hydra")
    assert all(spec.prune.prune_classifier for spec in hydra.values())  # HYDRA prunes every linear layer
    pfa = api.paper_specs("pfa")
    unstructured = [label for label in pfa if label.startswith("unstructured")]
    assert len(unstructured) == 3 and all(pfa[label].prune.prune_classifier for label in unstructured)
    assert all(spec.prune.prune_classifier for spec in api.paper_specs("bap").values())  # tfmot wraps the whole model
    # the compression axis 1 / (1 − sparsity) then counts every conv and dense weight, as Merkle et al.'s code
    model = build_model(pfa["unstructured global"].model.name, synthetic.info)
    layers = prunable_layers(model, pfa["unstructured global"].prune.prune_classifier)
    every = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert list(layers) == every and classifier_name(model) in layers


# ---- hygiene: a minimal attack below PGD on a model at chance is a broken attack -------------------


def _frame(rows):
    import pandas as pd

    return pd.DataFrame([{"run_id": "r", "step": 3, "sparsity": 0.9, "norm": "L2", **row} for row in rows])


def test_a_deepfool_curve_below_pgd_on_a_checkpoint_at_chance_is_flagged():
    from engine.report.summaries import hygiene

    rows = [
        {"attack": a, "eps": e, "acc": acc, "clean_acc": 0.1}
        for a, curve in (("deepfool", [0.1, 0.0]), ("pgd_l2", [0.1, 0.1]))
        for e, acc in zip((0.0, 0.5), curve)
    ]
    kinds = [w.kind for w in hygiene(_frame(rows))]
    assert kinds == ["minimal_below_pgd_at_chance"]
    healthy = [{**row, "clean_acc": 0.8} for row in rows]  # a trained model: DeepFool may well beat PGD
    assert "minimal_below_pgd_at_chance" not in [w.kind for w in hygiene(_frame(healthy))]


def test_a_nan_accuracy_is_an_error_never_a_number():
    from engine.report.summaries import hygiene

    rows = [
        {"attack": "deepfool", "eps": 0.0, "acc": 0.5, "clean_acc": 0.5},
        {"attack": "deepfool", "eps": 0.5, "acc": float("nan"), "clean_acc": 0.5},
    ]
    warnings = hygiene(_frame(rows))
    assert [w.kind for w in warnings] == ["non_finite"] and warnings[0].message.startswith("error:")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_shrinking_leaves_the_callers_model_on_its_device(synthetic):
    from engine.science.models import build_model
    from engine.science.pruning.methods import METHODS
    from engine.science.pruning.shrink import shrink

    model = build_model("lenet5", synthetic.info).cuda().eval()
    criterion = METHODS.get("filter_layer")()
    layers = prunable_layers(model, False, criterion.layer_kinds)
    small = shrink(model, criterion.select(layers, 0.5, None, torch.Generator().manual_seed(0)))
    assert small is not None
    assert all(p.is_cuda for p in model.parameters()) and all(b.is_cuda for b in model.buffers())
    assert small is not None and not next(small.parameters()).is_cuda


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["filter_global", "kernel_global"])
def test_global_structured_masks_on_cuda_match_the_cpu(synthetic, name):
    from engine.science.models import build_model
    from engine.science.pruning.methods import METHODS

    torch.manual_seed(0)
    model = build_model("lenet5", synthetic.info).eval()
    criterion = METHODS.get(name)()
    on_cpu = criterion.select(prunable_layers(model, False, criterion.layer_kinds), 0.5, None, torch.Generator())
    on_gpu = criterion.select(prunable_layers(model.cuda(), False, criterion.layer_kinds), 0.5, None, torch.Generator())
    assert all(torch.equal(on_cpu[n], on_gpu[n].cpu()) for n in on_cpu)
