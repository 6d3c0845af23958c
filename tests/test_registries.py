"""Every registered pruning method and every training loss, through the same contract.

Parametrised over the registries themselves, so a newly registered method or loss is tested here
without a new test.
"""

from __future__ import annotations

import copy

import pytest
import torch

from engine.science.losses import LOSSES
from engine.science.pruning.masks import PruneContext, overall_sparsity, prunable_layers
from engine.science.pruning.methods import METHODS
from engine.spec.runspec import AdversarySpec, MRSSpec, PruneSpec


def _context(model, data, name: str) -> PruneContext:
    loss = LOSSES.get("natural")(AdversarySpec(), torch.Generator().manual_seed(0))
    spec = PruneSpec(method=name, score_steps=3, batch_size=32, mrs=MRSSpec(n_samples=32, ascent_steps=1))
    return PruneContext(model, (data.x_train[:256], data.y_train[:256]), loss, spec)


def _granule_consistent(mask: torch.Tensor, granularity: str) -> bool:
    """Filter masks keep or drop whole filters; kernel masks whole k×k kernels."""
    if granularity == "weight" or mask.dim() != 4:
        return True
    per = mask.flatten(1) if granularity == "filter" else mask.flatten(2)
    return bool(((per == per[..., :1]).all()).item())


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_prunes_to_nested_binary_masks_near_the_target(name, tiny_cnn, synthetic):
    model = copy.deepcopy(tiny_cnn)
    criterion = METHODS.get(name)()
    layers = prunable_layers(model, False, criterion.layer_kinds)
    context = _context(model, synthetic, name)
    generator = torch.Generator().manual_seed(0)
    half = criterion.select(layers, 0.5, None, generator, context)
    most = criterion.select(layers, 0.75, half, generator, context)
    for masks in (half, most):
        assert set(masks) == set(layers)
        for layer, mask in masks.items():
            assert mask.shape == layers[layer].weight.shape
            assert set(mask.unique().tolist()) <= {0.0, 1.0}
            assert _granule_consistent(mask, criterion.granularity)
    assert all(bool((most[n] <= half[n]).all()) for n in half), "a later step revived a pruned weight"
    assert overall_sparsity(half) == pytest.approx(0.5, abs=0.1)
    assert overall_sparsity(most) == pytest.approx(0.75, abs=0.1)


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_is_finite_differentiable_and_adversarial_ones_exceed_the_clean_loss(name, tiny_cnn, synthetic):
    model = copy.deepcopy(tiny_cnn).train()
    x, y = synthetic.x_test[:64], synthetic.y_test[:64]
    adversary = AdversarySpec(eps=0.1, steps=3, deepfool_steps=3)
    loss = LOSSES.get(name)(adversary, torch.Generator().manual_seed(0))(model, x, y)
    clean = LOSSES.get("natural")(adversary, torch.Generator().manual_seed(0))(model, x, y)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert model.training  # crafting switched to eval mode and back
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    # an attack within the budget can only raise the cross-entropy it maximises
    assert loss.item() >= clean.item() - 1e-4


def test_validating_a_spec_in_a_fresh_process_knows_every_method():
    """The Runs form validates before anything else is imported: every method must be registered by then
    (structured and MRPF once were only when some other module happened to import them)."""
    import subprocess
    import sys

    code = (
        "from engine.science.catalog import validate\n"
        "for method in ('filter_layer', 'kernel_global', 'mrpf', 'hydra', 'random'):\n"
        "    validate({'prune': {'method': method}, 'schedule': {'name': 'one_shot', 'targets': [0.5]}})\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
