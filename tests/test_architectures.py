"""Standard architectures by name (torchvision:, timm:): adapted to the data set, and every registered
pruning method, attack, certificate and efficiency measure runs on a small torchvision ResNet-18 and
VGG-11 (or refuses by name before anything trains)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from engine.errors import SpecError, UnknownNameError
from engine.science.attacks import ATTACKS
from engine.science.data import DatasetInfo
from engine.science.evaluate import robust_curve
from engine.science.losses import LOSSES
from engine.science.models import MODELS, build_model, classifier_name
from engine.science.pruning.masks import PruneContext, apply_masks, overall_sparsity, prunable_layers
from engine.science.pruning.methods import METHODS
from engine.science.training import accuracy
from engine.spec.runspec import AdversarySpec, AttackSpec, PruneSpec

CIFAR = DatasetInfo(3, 32, 10, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), tuple(str(i) for i in range(10)))
GREY = DatasetInfo(1, 28, 7, (0.3,), (0.35,), tuple(str(i) for i in range(7)))
SMALL = {"torchvision:resnet18": 0.125, "torchvision:vgg11": 0.125}


def small(name: str, info: DatasetInfo = CIFAR) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, info, SMALL[name]).eval()


def test_resnet18_gets_the_small_image_stem_and_the_data_sets_channels_and_classes():
    model = build_model("torchvision:resnet18", GREY)
    assert isinstance(model.norm, nn.Module) and model.norm.mean.flatten().tolist() == pytest.approx([0.3])
    conv1 = model.net.conv1
    assert (conv1.in_channels, conv1.kernel_size, conv1.stride) == (1, (3, 3), (1, 1))
    assert isinstance(model.net.maxpool, nn.Identity) and model.net.fc.out_features == 7
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 7)


def test_a_large_image_keeps_the_imagenet_stem():
    big = DatasetInfo(3, 64, 10, (0.5,) * 3, (0.25,) * 3, tuple(str(i) for i in range(10)))
    model = build_model("torchvision:resnet18", big)
    assert model.net.conv1.kernel_size == (7, 7) and isinstance(model.net.maxpool, nn.MaxPool2d)


def test_vgg_keeps_its_pools_and_its_classifier_reads_a_1x1_map_on_small_images():
    model = build_model("torchvision:vgg11", CIFAR)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.net.features) == 5
    assert model.net.avgpool.output_size == 1 and model.net.classifier[0].in_features == 512


def test_width_thins_every_hidden_layer_and_keeps_the_residual_additions_consistent():
    model = small("torchvision:resnet18")
    assert model.net.conv1.out_channels == 8 and model.net.layer4[1].conv2.out_channels == 64
    assert model.net.fc.in_features == 64 and model.net.fc.out_features == 10
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert 150_000 < sum(p.numel() for p in model.parameters()) < 200_000  # 11.2 M / 8²


def test_the_same_seed_builds_the_same_weights():
    first, second = small("torchvision:vgg11"), small("torchvision:vgg11")
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_unknown_and_unfitting_architectures_are_refused_by_name(synthetic):
    with pytest.raises(UnknownNameError, match="torchvision has no classification builder 'resnet19'"):
        MODELS.get("torchvision:resnet19")
    assert "torchvision:resnet18" in MODELS and "torchvision:resnet19" not in MODELS and "keras:x" not in MODELS
    with pytest.raises(SpecError, match=r"model.name: torchvision:vit_b_16 cannot take 32×32×3 images"):
        build_model("torchvision:vit_b_16", CIFAR)
    with pytest.raises(SpecError, match=r"torchvision:vgg11 cannot take 16×16×1 images \(.*too small\)"):
        build_model("torchvision:vgg11", synthetic.info)  # five pools on 16 px


def test_a_spec_names_them_and_the_width_and_old_specs_keep_their_ids():
    from engine.science.catalog import validate

    spec = validate(
        {"model": {"name": "timm:resnet18", "width": 0.25}, "schedule": {"name": "one_shot", "targets": [0.5]}}
    )
    assert spec.model.width == 0.25 and '"width":0.25' in spec.canonical_json()
    plain = validate({"schedule": {"name": "one_shot", "targets": [0.5]}})
    assert "width" not in plain.canonical_json() and '"base"' not in plain.canonical_json()
    with pytest.raises(SpecError, match="model.width"):
        validate({"model": {"name": "mlp", "width": 0}, "schedule": {"name": "one_shot", "targets": [0.5]}})


def test_timm_models_build_without_weights():
    model = build_model("timm:resnet18", CIFAR, 0.25)
    assert model.net.conv1.kernel_size == (3, 3) and model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def _context(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> PruneContext:
    generator = torch.Generator().manual_seed(0)
    spec = PruneSpec(score_steps=3, batch_size=16)
    return PruneContext(model, (x, y), LOSSES.get("natural")(AdversarySpec(), generator), spec)


@pytest.mark.parametrize("architecture", sorted(SMALL))
@pytest.mark.parametrize("method", METHODS.names())
def test_every_registered_method_prunes_a_torchvision_network_to_its_target(architecture, method):
    model = small(architecture)
    criterion = METHODS.get(method)()
    layers = prunable_layers(model, False, criterion.layer_kinds)
    assert classifier_name(model) not in layers and len(layers) >= 8
    x, y = torch.rand(48, 3, 32, 32), torch.arange(48) % 10
    masks = criterion.select(layers, 0.5, None, torch.Generator().manual_seed(0), _context(model, x, y))
    apply_masks(layers, masks)
    tolerance = 0.02 if criterion.granularity == "weight" else 0.15  # whole filters and kernels round
    assert overall_sparsity(masks) == pytest.approx(0.5, abs=tolerance)
    assert all((layer.weight[masks[name] == 0] == 0).all() for name, layer in layers.items())
    assert torch.isfinite(model(x[:4])).all()


@pytest.mark.slow
@pytest.mark.parametrize("architecture", sorted(SMALL))
def test_a_run_on_a_torchvision_network_prunes_attacks_certifies_and_measures(cache, architecture):
    import numpy as np

    from engine import api
    from engine.paths import data_dir
    from tests.test_user_data import cifar_like

    (x_train, y_train), (x_test, y_test) = cifar_like(300), cifar_like(60, seed=1)
    np.savez(data_dir() / "cifar_like.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    tree = {
        "dataset": {"name": "arrays", "path": "cifar_like.npz"},
        "model": {"name": architecture, "width": SMALL[architecture]},
        "train": {"epochs": 1, "batch_size": 64},
        "prune": {"method": "filter_global", "batch_size": 64},
        "schedule": {"name": "one_shot", "targets": [0.5], "finetune_steps": 5},
        "eval": {
            "n_samples": 40,
            "batch_size": 40,
            "attacks": [
                {"name": "pgd_linf", "eps": [0, 0.03], "steps": 3},
                {"name": "deepfool", "eps": [0, 0.5]},
                {"name": "smoothing", "eps": [0, 0.25], "options": {"n0": 10, "n": 50, "batch": 50}},
            ],
        },
    }
    document = api.run(api.validate_tree(tree))
    frame = api.robust_frame([document["run_id"]])
    assert document["status"] == "done" and set(frame["step"]) == {0, 1}
    assert set(frame["attack"]) == {"pgd_linf", "deepfool", "smoothing"} and frame["acc"].notna().all()
    at_zero = frame[(frame["eps"] == 0) & (frame["attack"] != "smoothing")]
    assert (at_zero["acc"] - at_zero["clean_acc"]).abs().max() < 1e-9
    pruned = document["points"][-1]["efficiency"]
    assert pruned["latency_ms_b1"] > 0 and pruned["theoretical_speedup"] > 1
    assert 0 < pruned["shrunk_params"] < pruned["params"] and pruned["shrunk_latency_ms_b1"] > 0  # physically smaller
    assert pruned["onnx_shrunk_latency_ms_b1"] > 0  # and it deploys through ONNX


CURVE_GRIDS = {"Linf": [0.0, 0.03, 0.1], "L2": [0.0, 0.5, 2.0], "L1": [0.0, 2.0, 10.0], "L0": [0, 5, 20]}
QUICK = {"square": {"n_queries": 50}, "smooth_pgd_l2": {"samples": 4, "n": 50}, "smoothing": {"n0": 10, "n": 50}}


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name in ATTACKS.names() if name != "autoattack"])  # its parts are here
def test_every_registered_attack_draws_an_honest_curve_on_a_torchvision_resnet(name):
    model = small("torchvision:resnet18")
    x, y = torch.rand(16, 3, 32, 32), torch.arange(16) % 10
    model.net.fc.bias.data[y[0]] += 5.0  # an untrained network that gets some images right
    attack = ATTACKS.get(name)
    spec = AttackSpec(name=name, eps=CURVE_GRIDS[attack.norm], steps=3, options=QUICK.get(name, {}))
    accs = [point.acc for point in robust_curve(model, x, y, spec, batch_size=16)]
    assert all(0.0 <= acc <= 1.0 for acc in accs) and all(b <= a + 1e-12 for a, b in zip(accs, accs[1:]))
    if not (attack.certified or attack.smoothed):
        assert accs[0] == pytest.approx(accuracy(model, x, y))  # ε = 0 is the clean accuracy


@pytest.mark.slow
def test_reference_stages_get_a_standard_layout_batch(monkeypatch):
    """FAB (AutoAttack's third stage) reshapes gradients with .view, which a channels-last batch (the
    engine's layout for conv nets) breaks, as torchattacks' copy shows; the wrapper hands every reference
    stage a standard-layout batch."""
    import torchattacks

    from engine.science.attacks.autoattack import APGDCE
    from engine.science.device import to_input

    model = small("torchvision:resnet18")
    x, y = torch.rand(16, 3, 32, 32), torch.arange(16) % 10
    model.net.fc.bias.data[y[0]] += 5.0
    fab = torchattacks.FAB(model, eps=0.1, steps=3, multi_targeted=True, n_classes=10, norm="Linf")
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        fab(to_input(x, model), y)
    seen = []
    fake = SimpleNamespace(perturb=lambda inp, labels: seen.append(inp) or inp)
    monkeypatch.setattr(APGDCE, "build", lambda self, m, eps, seed: fake)
    APGDCE(steps=1).perturb(model, to_input(x, model), y, 0.1)
    assert seen[0].is_contiguous() and fab(x.contiguous(), y).shape == x.shape
