"""Robust pruning parts on tiny models: the papers' own checks (HYDRA, BAP, smoothing), each in seconds."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.report.ratios import ratios_from_sensitivity
from engine.science.adversarial_budget import blind_cutoff, budgets, cut_and_scale, rms_norm, rms_to_l2
from engine.science.attacks.deepfool import DeepFool
from engine.science.losses import LOSSES, budget_summary, half_and_half
from engine.science.models import build_model
from engine.science.pruning.hydra import Hydra, ScoredWeight, optimise_scores, scaled_init, top_k_mask
from engine.science.pruning.masks import PruneContext, apply_masks, compute_masks, overall_sparsity, prunable_layers
from engine.science.pruning.methods import METHODS
from engine.science.pruning.sensitivity import FILTER_FLOOR, layer_sensitivity, sensitivity
from engine.science.pruning.shrink import shrink
from engine.science.pruning.structured import dead_filters, norm_followers, silence_dead_channels
from engine.spec.runspec import AdversarySpec, MRSSpec, PruneSpec

STRUCTURED = [f"{g}_{s}" for g in ("filter", "kernel") for s in ("global", "layer", "random")]


def model_of(name: str, synthetic, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, synthetic.info).eval()


def batch(synthetic, n: int = 32):
    return synthetic.x_train[:n], synthetic.y_train[:n]


# ---- training losses -------------------------------------------------------------------------


def test_crafting_leaves_batchnorm_statistics_alone(synthetic):
    model = model_of("vgg_small", synthetic).train()
    loss = LOSSES.get("pgd_at")(AdversarySpec(steps=3), torch.Generator().manual_seed(0))
    before = model.features.conv1_bn.num_batches_tracked.item()
    loss(model, *batch(synthetic))
    assert model.features.conv1_bn.num_batches_tracked.item() == before + 1  # only the training forward


def test_adversarial_training_inputs_stay_in_the_budget(synthetic):
    model = model_of("small_cnn", synthetic)
    natural = LOSSES.get("natural")(AdversarySpec(eps=0.05, steps=3), torch.Generator().manual_seed(0))
    x, y = batch(synthetic)
    adv = natural.attack(model, x, y)  # type: ignore[attr-defined]  # every Loss built here has one
    assert float((adv - x).abs().max()) <= 0.05 + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_ap_records_its_fixed_budget_and_bap_its_spread(synthetic):
    model = model_of("small_cnn", synthetic).train()
    ap = LOSSES.get("ap")(AdversarySpec(eps=0.07, attack="fgsm"), torch.Generator().manual_seed(0))
    bap = LOSSES.get("bap")(AdversarySpec(rho=0.5), torch.Generator().manual_seed(0))
    for loss in (ap, bap):
        loss(model, *batch(synthetic))
        loss(model, *batch(synthetic, 48))
    ap_row, bap_row = budget_summary(ap.records), budget_summary(bap.records)
    assert ap_row["norm"] == "Linf" and ap_row["budget_q10"] == ap_row["budget_q90"] == pytest.approx(0.07)
    assert bap_row["norm"] == "RMS-L2" and bap_row["examples"] == 80 and bap_row["batches"] == 2
    assert bap_row["budget_q10"] < bap_row["budget_q90"]  # non-uniform budgets
    assert bap_row["budget_q90"] <= 0.5 * bap_row["cutoff"] * 1.5  # capped at ρ · c (c varies by batch)
    assert budget_summary([]) is None


# ---- BAP cutoff-scale (checks 9–11) ------------------------------------------------------------


def perturbations() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(16, 1, 8, 8, generator=gen) * torch.linspace(0.01, 0.3, 16).view(-1, 1, 1, 1)


def test_cut_never_raises_a_norm_and_leaves_short_ones_unchanged():
    r = perturbations()
    norms, cutoff = rms_norm(r), 0.1
    cut = cut_and_scale(r, cutoff, 1.0)
    assert torch.all(rms_norm(cut) <= cutoff + 1e-6)
    assert torch.all(rms_norm(cut) <= norms + 1e-7)
    short = norms <= cutoff
    assert short.any() and torch.equal(cut[short], r[short])


@pytest.mark.parametrize("rho", [0.5, 0.9, 2.0])
def test_scaling_multiplies_every_norm_by_rho(rho):
    r = perturbations()
    assert torch.allclose(rms_norm(cut_and_scale(r, 0.1, rho)), rho * rms_norm(cut_and_scale(r, 0.1, 1.0)))


def test_no_cutoff_and_rho_one_is_plain_deepfool():
    r = perturbations()
    assert torch.equal(cut_and_scale(r, None, 1.0), r)


def test_blind_cutoff_is_the_batch_mean_and_budgets_spread():
    r = perturbations()
    norms = rms_norm(r)
    assert blind_cutoff(norms) == pytest.approx(float(norms.mean()))
    spent = budgets(norms, blind_cutoff(norms), 0.7)
    assert float(spent.std()) > 0 and float(spent.max()) == pytest.approx(0.7 * blind_cutoff(norms))


def test_rms_normalisation_against_raw_l2():
    r = perturbations()
    raw = r.flatten(1).norm(dim=1)
    assert torch.allclose(rms_norm(r) * math.sqrt(64), raw)
    assert rms_to_l2(0.1, 784) == pytest.approx(2.8)


def test_bap_with_no_cutoff_and_rho_one_reduces_to_deepfool_ap(synthetic):
    model = model_of("small_cnn", synthetic).train()
    x, y = batch(synthetic)
    bap = LOSSES.get("bap")(AdversarySpec(cutoff=None, rho=1.0, deepfool_steps=3), torch.Generator())
    ours = bap(model, x, y)
    model.eval()
    with torch.no_grad():
        predicted = model(x).argmax(1)  # BAP's cleverhans DeepFool starts from the prediction
    x_df = DeepFool(steps=3, overshoot=0.02).distances(model, x, predicted)[1].detach()
    model.train()
    assert float(ours.detach()) == pytest.approx(float(half_and_half(model, x, x_df, y).detach()), rel=1e-6)


# ---- structured pruning (checks 1 and 3) --------------------------------------------------------


@pytest.mark.parametrize("method", STRUCTURED)
@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.9])
def test_structured_masks_remove_whole_groups_at_the_target(synthetic, method, sparsity):
    model = model_of("vgg_small", synthetic)
    criterion = METHODS.get(method)()
    layers = prunable_layers(model, False, criterion.layer_kinds)
    assert all(isinstance(layer, nn.Conv2d) for layer in layers.values())  # dense layers untouched
    masks = criterion.select(layers, sparsity, None, torch.Generator().manual_seed(0))
    for name, mask in masks.items():
        group = mask.flatten(1) if criterion.granularity == "filter" else mask.flatten(2)
        assert torch.all((group.sum(-1) == 0) | (group.sum(-1) == group.shape[-1])), name  # all or nothing
        if criterion.scope == "layer":
            groups = group.shape[0] * (1 if criterion.granularity == "filter" else group.shape[1])
            assert int((group.sum(-1) == 0).sum()) == round(sparsity * groups)
    biggest = max(m[0].numel() if criterion.granularity == "filter" else m[0, 0].numel() for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    assert abs(overall_sparsity(masks) - sparsity) <= biggest / total + 1e-9


@pytest.mark.parametrize("method", STRUCTURED + ["mrpf"])
def test_structured_masks_are_nested(synthetic, method):
    model = model_of("vgg_small", synthetic)
    criterion = METHODS.get(method)()
    layers = prunable_layers(model, False, criterion.layer_kinds)
    masks = None
    for target in (0.2, 0.5, 0.8):
        new = criterion.select(layers, target, masks, torch.Generator().manual_seed(1))
        if masks:
            assert all(torch.all(new[n] <= masks[n]) for n in new)
        masks = new
        apply_masks(layers, masks)


def test_filter_pruning_by_l1_prunes_the_weakest_filter(synthetic):
    model = model_of("small_cnn", synthetic)
    conv = model.features.conv2
    with torch.no_grad():
        conv.weight[5] *= 1e-3
    masks = METHODS.get("filter_layer")().select({"c": conv}, 1 / 64, None, torch.Generator())
    assert dead_filters(masks["c"]).nonzero().flatten().tolist() == [5]


@pytest.mark.parametrize("granularity", ["filter", "kernel"])
def test_global_structured_pruning_ranks_groups_by_mean_magnitude_across_layers(synthetic, granularity):
    """Merkle et al.'s code scores a group by its mean |w|; raw L1 sums would empty the first conv
    (few inputs per filter) before touching the second, whatever their weights."""
    model = model_of("small_cnn", synthetic)
    layers = prunable_layers(model, False, (nn.Conv2d,))
    with torch.no_grad():
        layers["features.conv1"].weight.fill_(0.5)  # 9 weights per filter: L1 4.5, mean 0.5
        layers["features.conv2"].weight.fill_(0.1)  # 288 weights per filter: L1 28.8, mean 0.1
    masks = METHODS.get(f"{granularity}_global")().select(layers, 0.3, None, torch.Generator())
    assert bool(masks["features.conv1"].all())  # the strong first layer is untouched
    pruned = 1 - masks["features.conv2"].float().mean()
    total = sum(m.numel() for m in masks.values())
    assert abs(pruned * masks["features.conv2"].numel() / total - 0.3) < 0.01


def test_random_structured_pruning_is_reproducible(synthetic):
    model = model_of("vgg_small", synthetic)
    layers = prunable_layers(model, False, (nn.Conv2d,))
    make = lambda seed: METHODS.get("filter_random")().select(layers, 0.5, None, torch.Generator().manual_seed(seed))
    assert all(torch.equal(a, b) for a, b in zip(make(3).values(), make(3).values()))
    assert not all(torch.equal(a, b) for a, b in zip(make(3).values(), make(4).values()))


# ---- the physically smaller model ------------------------------------------------------------


def shrunk_like_masked(model, layers, masks, x):
    """Mask the model, shrink it, and check that both give the same outputs on x; the smaller model."""
    apply_masks(layers, masks)
    silence_dead_channels(layers, masks, norm_followers(model))
    small = shrink(model, masks)
    assert small is not None
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5)
    return small


@pytest.mark.parametrize("name", ["small_cnn", "vgg_small", "lenet5"])
def test_the_smaller_model_computes_what_the_masked_one_does(synthetic, name):
    model = model_of(name, synthetic)
    if name == "vgg_small":  # non-trivial BatchNorm statistics and affine parameters
        model.train()
        with torch.no_grad():
            model(synthetic.x_train[:256])
            for module in model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.2, 0.2)
        model.eval()
    criterion = METHODS.get("filter_layer")()
    layers = prunable_layers(model, False, criterion.layer_kinds)
    small = shrunk_like_masked(
        model, layers, criterion.select(layers, 0.5, None, torch.Generator()), synthetic.x_test[:64]
    )
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    convs = [m for m in small.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [round(int(layer.out_channels) / 2) for layer in layers.values()]


def test_a_fully_pruned_conv_layer_still_shrinks_to_the_same_outputs(synthetic):
    model = model_of("lenet5", synthetic)
    layers = prunable_layers(model, False, (nn.Conv2d,))
    masks = {name: torch.ones_like(layer.weight, dtype=torch.bool) for name, layer in layers.items()}
    masks["features.conv1"] = torch.zeros_like(masks["features.conv1"])  # every filter of the first conv
    small = shrunk_like_masked(model, layers, masks, synthetic.x_test[:16])
    assert [m.out_channels for m in small.modules() if isinstance(m, nn.Conv2d)][0] == 1


def test_followers_pair_each_conv_with_its_batchnorm(synthetic):
    followers = norm_followers(model_of("resnet8", synthetic))
    assert followers["layer1.conv1"] is not None and len(followers) == 9  # stem, six block convs, two shortcuts
    assert shrink(model_of("resnet8", synthetic), {}) is None  # residual: not a chain


# ---- HYDRA (checks 1 and 4) -------------------------------------------------------------------


def test_scaled_init_mask_equals_the_layer_magnitude_mask(synthetic):
    model = model_of("lenet5", synthetic)
    layers = prunable_layers(model)
    hydra = Hydra().select(layers, 0.8, None, torch.Generator(), context=None)
    lwm = METHODS.get("lwm")().select(layers, 0.8, None, torch.Generator())
    magnitude = compute_masks(layers, 0.8, METHODS.get("layer_magnitude")())  # 0.8 · n is whole here
    assert all(torch.equal(hydra[n], lwm[n]) and torch.equal(lwm[n], magnitude[n]) for n in layers)


@pytest.mark.parametrize("k", [0.1, 0.05, 0.01])
def test_top_k_keeps_n_minus_floor_of_pruned_share(k):
    scores = torch.randn(37, 11, generator=torch.Generator().manual_seed(0))
    n = scores.numel()
    assert int(top_k_mask(scores, 1 - k).sum()) == n - math.floor((1 - k) * n + 1e-9)


def hydra_context(model, synthetic, steps=8) -> PruneContext:
    return PruneContext(
        model,
        (synthetic.x_train, synthetic.y_train),
        LOSSES.get("natural")(AdversarySpec(), torch.Generator()),
        PruneSpec(method="hydra", score_steps=steps, batch_size=64, score_lr=0.5),
    )


def test_prune_phase_freezes_weights_and_moves_scores(synthetic):
    model = model_of("small_cnn", synthetic)
    before = copy.deepcopy(model.state_dict())
    layers = prunable_layers(model)
    scores = optimise_scores(layers, 0.9, torch.Generator().manual_seed(0), hydra_context(model, synthetic))
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # W bit-identical, parametrisation removed
    assert all(p.requires_grad for p in model.parameters())
    moved = [not torch.equal(scores[n], scaled_init(layers[n].weight)) for n in layers]
    assert all(moved)
    initial = {n: top_k_mask(scaled_init(layer.weight), 0.9) for n, layer in layers.items()}
    final = {n: top_k_mask(s, 0.9) for n, s in scores.items()}
    assert any(not torch.equal(initial[n], final[n]) for n in layers)  # the mask left LWM's


def test_straight_through_gradient_reaches_pruned_scores(synthetic):
    layer = nn.Linear(20, 10)
    scored = ScoredWeight(layer.weight, 0.7)
    out = F.linear(torch.randn(8, 20), scored(layer.weight.detach()))
    out.square().sum().backward()
    pruned = top_k_mask(scored.scores.detach(), 0.7) == 0
    assert scored.scores.grad[pruned].abs().sum() > 0


# ---- MRS and MRPF (checks 12 and 13) ------------------------------------------------------------


def test_mrs_is_non_negative_and_restores_weights(tiny_cnn, synthetic):
    model = copy.deepcopy(tiny_cnn)
    before = copy.deepcopy(model.state_dict())
    mrs = sensitivity(
        model,
        synthetic.x_test,
        synthetic.y_test,
        MRSSpec(n_samples=64, ascent_steps=3),
        torch.Generator().manual_seed(0),
    )
    assert set(mrs) == {"features.conv1", "features.conv2", "fc1", "fc2"}
    assert all(p.mrs >= 0 and 0 <= p.reach <= 1 for p in mrs.values()) and any(p.mrs > 0 for p in mrs.values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_mrs_perturbation_is_projected_into_the_relative_ball_before_every_loss_it_keeps(tiny_cnn, synthetic):
    """As RiFT: mini-batch ascent steps may leave the ball within an epoch; every point whose loss
    counts (the whole-set evaluations after each projection) lies inside it."""
    model = copy.deepcopy(tiny_cnn)
    layer = model.fc1
    original = layer.weight.detach().clone()
    seen = []
    hook = model.fc1.register_forward_pre_hook(
        lambda m, args: seen.append((len(args[0]), float((m.weight.detach() - original).norm())))
    )
    x, y = synthetic.x_test[:32], synthetic.y_test[:32]
    spec = MRSSpec(radius=0.05, ascent_steps=5, lr=100.0, batch_size=8)
    probe = layer_sensitivity(model, layer, x, y, spec)
    hook.remove()
    evaluated = [size for n, size in seen if n == 32]
    assert probe.mrs >= 0 and max(evaluated) <= 0.05 * float(original.norm()) * (1 + 1e-5) and max(evaluated) > 0
    assert probe.reach == pytest.approx(1.0, abs=1e-4)  # lr 100 reaches the ball's edge
    assert torch.equal(layer.weight, original)


def test_mrs_moves_only_kept_weights(tiny_cnn, synthetic):
    model = copy.deepcopy(tiny_cnn)
    layer = model.fc1
    mask = (torch.rand(layer.weight.shape, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    with torch.no_grad():
        layer.weight.mul_(mask)
    zeros = []
    hook = layer.register_forward_pre_hook(lambda m, args: zeros.append(float(m.weight[mask == 0].abs().max())))
    layer_sensitivity(model, layer, synthetic.x_test[:32], synthetic.y_test[:32], MRSSpec(ascent_steps=3), mask)
    hook.remove()
    assert max(zeros) == 0.0


def test_ratio_mapping_is_monotone_and_hits_the_target():
    mrs = {"a": 0.02, "b": 0.5, "c": 0.1, "d": 3.0, "e": 0.1}
    sizes = {"a": 300, "b": 20_000, "c": 5_000, "d": 400_000, "e": 7_000}
    for target in (0.2, 0.5, 0.8, 0.9):
        ratios = ratios_from_sensitivity(mrs, sizes, target)
        achieved = sum(ratios[n] * sizes[n] for n in sizes) / sum(sizes.values())
        assert achieved == pytest.approx(target, abs=0.005)
        ordered = sorted(mrs, key=mrs.__getitem__)
        assert all(ratios[a] >= ratios[b] - 1e-12 for a, b in zip(ordered, ordered[1:]))
        assert all(0.0 <= r <= 0.95 for r in ratios.values())


def test_mrpf_prunes_sensitive_layers_less(synthetic):
    model = model_of("vgg_small", synthetic)
    criterion = METHODS.get("mrpf")()
    layers = prunable_layers(model, False, criterion.layer_kinds)
    context = PruneContext(
        model,
        (synthetic.x_train, synthetic.y_train),
        None,
        PruneSpec(method="mrpf", mrs=MRSSpec(n_samples=64, ascent_steps=2)),
    )
    masks = criterion.select(layers, 0.5, None, torch.Generator().manual_seed(0), context)
    ratios = context.notes["ratios"]
    assert set(ratios) == set(layers)
    achieved = sum(ratios[n] * layers[n].weight.numel() for n in layers) / sum(
        layer.weight.numel() for layer in layers.values()
    )
    assert achieved == pytest.approx(0.5, abs=0.005)
    for name, mask in masks.items():
        assert int(dead_filters(mask).sum()) == round(ratios[name] * mask.shape[0])
    mrs = context.notes["ratio_mrs"]  # kept for the store: the sensitivities behind the ratios reproduce them
    sizes = {name: layer.weight.numel() for name, layer in layers.items()}
    caps = {name: min(0.95, 1 - FILTER_FLOOR / layer.weight.shape[0]) for name, layer in layers.items()}
    assert ratios_from_sensitivity(mrs, sizes, 0.5, p_max=caps) == pytest.approx(ratios)


def test_mrpf_caps_keep_a_floor_of_filters_and_still_hit_the_target_where_they_allow():
    mrs = {"small": 0.01, "big": 1.0}
    sizes = {"small": 8 * 9, "big": 64 * 9}
    caps = {"small": 1 - 4 / 8, "big": 0.95}  # an 8-filter layer may lose at most 4
    ratios = ratios_from_sensitivity(mrs, sizes, 0.6, p_max=caps)
    assert ratios["small"] == pytest.approx(0.5)  # the insensitive layer would take more, but keeps 4 filters
    achieved = sum(ratios[n] * sizes[n] for n in sizes) / sum(sizes.values())
    assert achieved == pytest.approx(0.6, abs=1e-6)
    capped = ratios_from_sensitivity(mrs, sizes, 0.99, p_max=caps)  # the caps cannot reach 99 %: they bind
    assert capped == pytest.approx(caps)
