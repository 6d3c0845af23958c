"""Attacks: inside the ε-ball and [0, 1], agreement with torchattacks, and honest robust curves."""

import pytest
import torch
import torchattacks

from engine.attacks import ATTACKS
from engine.evaluate import robust_curve
from engine.spec import AttackSpec
from engine.training import accuracy


@pytest.fixture(scope="module")
def batch(synthetic):
    return synthetic.x_test[:128], synthetic.y_test[:128]


def _ball_distance(delta, norm):
    flat = delta.flatten(1)
    return flat.abs().max(1).values if norm == "Linf" else flat.norm(dim=1)


@pytest.mark.parametrize("name", ATTACKS.names())
@pytest.mark.parametrize("eps", [0.03, 0.3])
def test_attack_stays_inside_its_ball_and_the_pixel_range(tiny_cnn, batch, name, eps):
    x, y = batch
    attack = ATTACKS.get(name)(steps=5, relative_step=0.5, random_start=True)
    adv = attack.perturb(tiny_cnn, x, y, eps, torch.Generator().manual_seed(0))
    assert adv.min() >= 0 and adv.max() <= 1
    assert bool((_ball_distance(adv - x, attack.norm) <= eps + 1e-5).all())


@pytest.mark.parametrize("name", ATTACKS.names())
def test_attack_lowers_accuracy(tiny_cnn, batch, name):
    x, y = batch
    eps = 0.15 if ATTACKS.get(name).norm == "Linf" else 3.0
    adv = ATTACKS.get(name)(steps=10, relative_step=0.25, random_start=False).perturb(tiny_cnn, x, y, eps)
    assert accuracy(tiny_cnn, adv, y) < accuracy(tiny_cnn, x, y) - 0.1


def test_pgd_linf_matches_torchattacks_exactly_without_random_start(tiny_cnn, batch):
    x, y = batch
    ours = ATTACKS.get("pgd_linf")(steps=10, relative_step=0.25, random_start=False).perturb(tiny_cnn, x, y, 0.1)
    theirs = torchattacks.PGD(tiny_cnn, eps=0.1, alpha=0.025, steps=10, random_start=False)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_pgd_l2_matches_torchattacks_exactly_without_random_start(tiny_cnn, batch):
    x, y = batch
    ours = ATTACKS.get("pgd_l2")(steps=10, relative_step=0.25, random_start=False).perturb(tiny_cnn, x, y, 1.0)
    theirs = torchattacks.PGDL2(tiny_cnn, eps=1.0, alpha=0.25, steps=10, random_start=False)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_fgsm_matches_torchattacks(tiny_cnn, batch):
    x, y = batch
    ours = ATTACKS.get("fgsm")().perturb(tiny_cnn, x, y, 0.05)
    assert torch.allclose(ours, torchattacks.FGSM(tiny_cnn, eps=0.05)(x, y), atol=1e-6)


def test_pgd_with_random_start_agrees_with_torchattacks_in_accuracy(tiny_cnn, synthetic):
    x, y = synthetic.x_test, synthetic.y_test
    ours = ATTACKS.get("pgd_linf")(steps=10, relative_step=0.25, random_start=True).perturb(
        tiny_cnn, x, y, 0.08, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    theirs = torchattacks.PGD(tiny_cnn, eps=0.08, alpha=0.02, steps=10, random_start=True)(x, y)
    assert abs(accuracy(tiny_cnn, ours, y) - accuracy(tiny_cnn, theirs, y)) <= 0.03


@pytest.mark.parametrize("name", ATTACKS.names())
def test_curve_starts_at_clean_accuracy_and_never_rises(tiny_cnn, synthetic, name):
    x, y = synthetic.x_test[:300], synthetic.y_test[:300]
    grid = [0.0, 0.02, 0.05, 0.1, 0.2] if ATTACKS.get(name).norm == "Linf" else [0.0, 0.5, 1.0, 2.0, 4.0]
    points = robust_curve(tiny_cnn, x, y, AttackSpec(name=name, eps=grid, steps=5), batch_size=64)
    accs = [p.acc for p in points]
    assert points[0].eps == 0 and accs[0] == pytest.approx(accuracy(tiny_cnn, x, y))
    assert all(b <= a for a, b in zip(accs, accs[1:]))
    assert accs[-1] < accs[0]


def test_fgsm_is_never_stronger_than_pgd(tiny_cnn, synthetic):
    x, y = synthetic.x_test, synthetic.y_test
    grid = [0.0, 0.03, 0.06, 0.1]
    fgsm = robust_curve(tiny_cnn, x, y, AttackSpec(name="fgsm", eps=grid))
    pgd = robust_curve(tiny_cnn, x, y, AttackSpec(name="pgd_linf", eps=grid, steps=10))
    assert all(f.acc >= p.acc - 0.01 for f, p in zip(fgsm, pgd))


def test_more_steps_and_restarts_never_help_the_defender(tiny_cnn, synthetic):
    x, y = synthetic.x_test, synthetic.y_test
    weak = robust_curve(tiny_cnn, x, y, AttackSpec(name="pgd_linf", eps=[0.05], steps=2))
    strong = robust_curve(tiny_cnn, x, y, AttackSpec(name="pgd_linf", eps=[0.05], steps=20, restarts=2))
    assert strong[-1].acc <= weak[-1].acc + 0.01


def test_carry_over_curve_matches_attacking_every_eps_separately(tiny_cnn, synthetic):
    """The one-pass curve equals per-ε evaluation with the same attack, up to the carried-over breaks."""
    x, y = synthetic.x_test, synthetic.y_test
    grid = [0.0, 0.03, 0.06, 0.1]
    curve = robust_curve(tiny_cnn, x, y, AttackSpec(name="pgd_linf", eps=grid, steps=10, random_start=False))
    attack = ATTACKS.get("pgd_linf")(steps=10, relative_step=0.25, random_start=False)
    separate = [accuracy(tiny_cnn, x, y)] + [accuracy(tiny_cnn, attack.perturb(tiny_cnn, x, y, e), y) for e in grid[1:]]
    for point, independent in zip(curve, separate):
        assert point.acc <= independent + 1e-9  # carry-over can only find more breaks
        assert point.acc >= independent - 0.02  # and not many more at these ε
