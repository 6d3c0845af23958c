"""The community's reference attacks: AutoAttack by Croce & Hein's own code (pyautoattack) and the
FMN minimal-norm family by adv-lib, checked against the reference's settings and against the
attacks they join or replace, on trained checkpoints, with paired intervals."""

from __future__ import annotations

import math

import pytest
import torch

from engine.report.stats import paired
from engine.science.attacks import ATTACKS
from engine.science.attacks.autoattack import _Standard as AutoAttackStandard
from engine.science.evaluate import build_attack, robust_curve
from engine.spec.runspec import AttackSpec

# ---- AutoAttack: the reference's standard, with the spec's steps ------------------------------


def reference(spec: AttackSpec) -> AutoAttackStandard:
    """The spec's AutoAttack, which builds the reference's object."""
    attack = build_attack(spec)
    assert isinstance(attack, AutoAttackStandard)
    return attack


def test_autoattack_is_the_references_standard_version_with_the_spec_steps(tiny_cnn):
    from pyautoattack.autoattack import AutoAttack as Reference

    standard = reference(AttackSpec(name="autoattack", eps=[0.03], steps=100)).build(tiny_cnn, 0.03, 7)
    assert isinstance(standard, Reference) and standard.version == "standard" and standard.seed == 7
    assert standard.attacks_to_run == ["apgd-ce", "apgd-t", "fab-t", "square"] and standard.norm == "Linf"
    assert standard.apgd.n_iter == standard.apgd_targeted.n_iter == standard.fab.n_iter == 100
    assert standard.apgd.n_restarts == standard.apgd_targeted.n_restarts == standard.fab.n_restarts == 1
    assert standard.apgd_targeted.n_target_classes == standard.fab.n_target_classes == 9
    assert standard.square.n_queries == 5000 and standard.square.p_init == 0.8
    assert standard.square.rescale_schedule is False  # fra31's standard Square
    assert build_attack(AttackSpec(name="autoattack", eps=[0.03], steps=100)).protocol_warning() is None

    short = reference(AttackSpec(name="autoattack", eps=[0.03], steps=20))
    built = short.build(tiny_cnn, 0.03, 0)
    assert built.apgd.n_iter == built.apgd_targeted.n_iter == built.fab.n_iter == 20
    assert "weaker attack than the standard" in short.protocol_warning()

    l2 = reference(AttackSpec(name="autoattack_l2", eps=[0.5], steps=100))
    assert l2.norm == "L2" and l2.build(tiny_cnn, 0.5, 0).norm == "L2"
    three = reference(AttackSpec(name="autoattack", eps=[0.03], steps=100, options={"n_classes": 3}))
    assert three.build(tiny_cnn, 0.03, 0).fab.n_target_classes == 2  # no more targets than other classes


@pytest.mark.parametrize("name, eps", [("autoattack", 0.15), ("autoattack_l2", 1.5)])
def test_autoattack_stays_in_its_ball_and_never_beats_clean_accuracy(tiny_cnn, synthetic, name, eps):
    x, y = synthetic.x_test[:16], synthetic.y_test[:16]
    attack = build_attack(AttackSpec(name=name, eps=[eps], steps=10))
    adv = attack.perturb(tiny_cnn, x, y, eps, torch.Generator().manual_seed(0))
    size = (adv - x).flatten(1).abs().amax(1) if attack.norm == "Linf" else (adv - x).flatten(1).norm(dim=1)
    assert float(size.max()) <= eps + 1e-5 and 0.0 <= float(adv.min()) and float(adv.max()) <= 1.0
    with torch.no_grad():
        clean, robust = tiny_cnn(x).argmax(1) == y, tiny_cnn(adv).argmax(1) == y
    assert not (robust & ~clean).any(), "an image wrong without attack is never right under it"


def _assembly(model, eps: float):
    """The torchattacks assembly the product ran before (APGD-CE, APGD-T, FAB-T, Square at the
    standard's settings): kept here only as the yardstick of the reference."""
    import torchattacks

    common = {"norm": "Linf", "eps": eps, "seed": 0, "n_restarts": 1}
    return torchattacks.MultiAttack(
        [
            torchattacks.APGD(model, steps=100, loss="ce", **common),
            torchattacks.APGDT(model, steps=100, n_classes=10, **common),
            torchattacks.FAB(model, steps=100, multi_targeted=True, n_classes=10, **common),
            torchattacks.Square(model, n_queries=5000, p_init=0.8, resc_schedule=False, **common),
        ]
    )


@pytest.mark.slow
def test_the_reference_autoattack_agrees_with_the_torchattacks_assembly_within_their_paired_interval(
    tiny_cnn, synthetic
):
    x, y, eps = synthetic.x_test[:120], synthetic.y_test[:120], 0.1
    reference = robust_curve(tiny_cnn, x, y, AttackSpec(name="autoattack", eps=[eps], steps=100), batch_size=120)
    reference_flags = torch.tensor([bool(v) for v in _flags(reference[-1])])
    with torch.no_grad():
        assembly_flags = tiny_cnn(_assembly(tiny_cnn, eps)(x.contiguous(), y)).argmax(1) == y
    difference = paired(reference_flags.numpy(), assembly_flags.numpy())
    assert 0.0 < reference[-1].acc < reference[0].acc, "the check needs an ε that breaks some images, not all"
    assert difference.low <= 0.0 <= difference.high, difference


def _flags(point):
    from engine.report.stats import unpack_flags

    return unpack_flags(point.correct, point.n)


# ---- FMN: adv-lib's minimal-norm attacks ------------------------------------------------------


@pytest.mark.parametrize("name, norm", [("fmn_l0", "L0"), ("fmn_l1", "L1"), ("fmn_l2", "L2"), ("fmn_linf", "Linf")])
def test_fmn_reports_the_size_of_the_example_it_returns_and_inf_where_it_failed(tiny_cnn, synthetic, name, norm):
    from engine.science.attacks.base import norm_distance

    x, y = synthetic.x_test[:24], synthetic.y_test[:24]
    attack = build_attack(AttackSpec(name=name, eps=[1.0], steps=30))
    assert attack.minimal and attack.norm == norm and ATTACKS.get(name) is type(attack)
    distance, adv = attack.distances(tiny_cnn, x, y)
    with torch.no_grad():
        fooled = tiny_cnn(adv).argmax(1) != y
    assert torch.equal(torch.isinf(distance), ~fooled) and fooled.any()
    assert torch.allclose(distance[fooled], norm_distance(adv - x, norm)[fooled])
    assert 0.0 <= float(adv.min()) and float(adv.max()) <= 1.0


def test_fmn_loads_without_adv_libs_visdom_loggers():
    import sys

    from engine.science.attacks.fmn import fmn_module

    assert callable(fmn_module().fmn) and "visdom" not in sys.modules


@pytest.fixture(scope="module")
def fashion_cnn():
    """small_cnn trained briefly on Fashion-MNIST: a real checkpoint (88 % clean on 200 images)."""
    from engine.science.data import load_dataset
    from tests.conftest import _trained

    data = load_dataset("fashion_mnist")
    return _trained("small_cnn", data, steps=400), data.x_test[:200], data.y_test[:200]


@pytest.mark.slow
def test_fmn_l0_breaks_at_least_as_many_images_as_the_jsma_style_attack_at_every_budget(fashion_cnn):
    model, x, y = fashion_cnn
    fmn, _ = build_attack(AttackSpec(name="fmn_l0", eps=[1.0], steps=100)).distances(model, x, y)
    jsma, _ = build_attack(AttackSpec(name="jsma_l0", eps=[1.0], steps=100)).distances(model, x, y)
    gains = []
    for budget in (1, 2, 3, 5, 8, 12, 20):
        difference = paired((fmn <= budget).numpy(), (jsma <= budget).numpy())  # broken by FMN − by JSMA
        assert difference.diff >= 0.0, (budget, difference)
        gains.append(difference)
    assert any(d.low > 0 for d in gains), "on a trained model FMN is the stronger L0 attack somewhere, decidedly"
    assert math.isfinite(float(fmn[fmn < math.inf].max()))
