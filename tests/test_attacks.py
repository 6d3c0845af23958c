"""Attacks: inside the ε-ball and [0, 1], agreement with torchattacks, and honest robust curves."""

import re

import pytest
import torch
import torchattacks

from engine.report.stats import unpack_flags
from engine.science.attacks import ATTACKS
from engine.science.evaluate import robust_curve
from engine.science.training import accuracy
from engine.spec.runspec import AttackSpec

BOUNDED = [n for n in ATTACKS.names() if not (ATTACKS.get(n).minimal or ATTACKS.get(n).certified)]
MINIMAL = [n for n in ATTACKS.names() if ATTACKS.get(n).minimal]
# the curves of these start at the base model's clean accuracy (smoothing's: the smoothed classifier's,
# tested in test_certify.py)
OF_THE_BASE = [n for n in ATTACKS.names() if not (ATTACKS.get(n).certified or ATTACKS.get(n).smoothed)]
FAST = {"square": {"n_queries": 100}, "smooth_pgd_l2": {"samples": 4, "n": 50}}  # quick in tests


def make(name, steps=5, relative_step=0.5, random_start=True):
    return ATTACKS.get(name)(steps=steps, relative_step=relative_step, random_start=random_start, **FAST.get(name, {}))


@pytest.fixture(scope="module")
def batch(synthetic):
    return synthetic.x_test[:128], synthetic.y_test[:128]


def _ball_distance(delta, norm):
    flat = delta.flatten(1)
    return flat.abs().max(1).values if norm == "Linf" else flat.norm(dim=1)


@pytest.mark.parametrize("name", [n for n in BOUNDED if n != "autoattack_l2"])  # test_reference_attacks has it
@pytest.mark.parametrize("eps", [0.03, 0.3])
def test_attack_stays_inside_its_ball_and_the_pixel_range(tiny_cnn, batch, name, eps):
    x, y = batch
    x, y = (x[:32], y[:32]) if name in ("autoattack", "apgd_t", "square") else (x, y)
    attack = make(name)
    adv = attack.perturb(tiny_cnn, x, y, eps, torch.Generator().manual_seed(0))
    assert adv.min() >= 0 and adv.max() <= 1
    assert bool((_ball_distance(adv - x, attack.norm) <= eps + 1e-5).all())


@pytest.mark.parametrize("name", [n for n in BOUNDED if not n.startswith("autoattack")])
def test_attack_lowers_accuracy(tiny_cnn, batch, name):
    x, y = batch
    eps = 0.15 if ATTACKS.get(name).norm == "Linf" else 3.0
    adv = make(name, steps=10, relative_step=0.25, random_start=False).perturb(
        tiny_cnn, x, y, eps, torch.Generator().manual_seed(0)
    )
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
        tiny_cnn, x, y, 0.08, torch.Generator().manual_seed(0)
    )
    torch.manual_seed(0)
    theirs = torchattacks.PGD(tiny_cnn, eps=0.08, alpha=0.02, steps=10, random_start=True)(x, y)
    assert abs(accuracy(tiny_cnn, ours, y) - accuracy(tiny_cnn, theirs, y)) <= 0.03


GRIDS = {
    "Linf": [0.0, 0.02, 0.05, 0.1, 0.2],
    "L2": [0.0, 0.5, 1.0, 2.0, 4.0],
    "L1": [0.0, 1.0, 2.0, 5.0, 10.0],
    "L0": [0, 2, 5, 10, 20],
}


@pytest.mark.parametrize("name", [n for n in OF_THE_BASE if not n.startswith("autoattack")])
def test_curve_starts_at_clean_accuracy_and_never_rises(tiny_cnn, synthetic, name):
    x, y = synthetic.x_test[:300], synthetic.y_test[:300]
    grid = GRIDS[ATTACKS.get(name).norm]
    steps = 50 if ATTACKS.get(name).minimal else 5
    spec = AttackSpec(name=name, eps=grid, steps=steps, options=FAST.get(name, {}))
    points = robust_curve(tiny_cnn, x, y, spec, batch_size=100)
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


def test_deepfool_first_step_matches_torchattacks(tiny_cnn, batch):
    # inside the box (no pixel at 0 or 1) both take the same linearised step; torchattacks loops per image
    x, y = 0.1 + 0.8 * batch[0][:32], batch[1][:32]
    _, ours = ATTACKS.get("deepfool")(steps=1).distances(tiny_cnn, x, y)
    theirs = torchattacks.DeepFool(tiny_cnn, steps=1, overshoot=0.02)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_deepfool_flips_most_correct_inputs_and_at_least_as_many_as_torchattacks(tiny_cnn, batch):
    x, y = batch[0][:64], batch[1][:64]
    correct = tiny_cnn(x).argmax(1) == y
    dist, _ = ATTACKS.get("deepfool")(steps=50).distances(tiny_cnn, x, y)
    theirs = torchattacks.DeepFool(tiny_cnn, steps=50, overshoot=0.02)(x, y)
    with torch.no_grad():
        theirs_fooled = (tiny_cnn(theirs).argmax(1) != y) & correct
    ours_fooled = torch.isfinite(dist) & correct
    assert ours_fooled.sum() >= 0.95 * correct.sum() and ours_fooled.sum() >= theirs_fooled.sum()


@pytest.mark.parametrize("name", MINIMAL)
def test_minimal_distances_measure_successful_perturbations(tiny_cnn, batch, name):
    from engine.science.attacks.base import norm_distance

    x, y = batch
    attack = ATTACKS.get(name)(steps=100 if name == "cw_l2" else 50, **({"c": 10.0} if name == "cw_l2" else {}))
    dist, adv = attack.distances(tiny_cnn, x, y)
    assert adv.min() >= 0 and adv.max() <= 1
    fooled = torch.isfinite(dist) & (dist > 0)
    assert fooled.float().mean() > 0.5
    with torch.no_grad():
        assert bool((tiny_cnn(adv[fooled]).argmax(1) != y[fooled]).all())
    assert torch.allclose(dist[fooled], norm_distance(adv - x, attack.norm)[fooled], atol=1e-4)


def test_the_distance_curve_matches_cutting_deepfool_to_each_budget(tiny_cnn, synthetic):
    """BAP's protocol: cut the DeepFool perturbation to ε and attack; same accuracy as reading distances."""
    from engine.science.attacks.base import flat_norm

    x, y = synthetic.x_test[:200], synthetic.y_test[:200]
    grid = [0.0, 0.5, 1.0, 1.5, 3.0]
    curve = robust_curve(tiny_cnn, x, y, AttackSpec(name="deepfool", eps=grid, steps=50))
    _, adv = ATTACKS.get("deepfool")(steps=50).distances(tiny_cnn, x, y)
    r = adv - x
    for point in curve[1:]:
        cut = torch.clamp(x + r * torch.clamp(point.eps / (flat_norm(r) + 1e-12), max=1.0), 0, 1)
        independent = accuracy(tiny_cnn, cut, y)
        # the curve counts what the cut breaks and what smaller budgets broke: never above, rarely far below
        assert independent - 0.05 <= point.acc <= independent + 1e-9


def test_unknown_attack_options_are_named(smoke_tree):
    from engine.errors import SpecError
    from engine.science.catalog import validate
    from engine.spec.reading import apply_overrides

    with pytest.raises(
        SpecError, match=r"eval.attacks\[0\].options.c: unknown option for pgd_linf; choose from \['search'\]"
    ):
        validate(apply_overrides(smoke_tree, ["eval.attacks.0.options={c: 1}"]))


@pytest.mark.parametrize(
    "name, grid",
    [
        ("pgd_linf", [0.0, 0.05]),
        ("pgd_l2", [0.0, 1.0]),
        ("apgd_ce", [0.0, 0.05]),
        ("deepfool", [0.0, 1.0]),
        ("jsma_l0", [0, 6]),
    ],
)
def test_more_steps_never_raise_robust_accuracy(tiny_cnn, synthetic, name, grid):
    x, y = synthetic.x_test[:200], synthetic.y_test[:200]
    few, many = (
        robust_curve(tiny_cnn, x, y, AttackSpec(name=name, eps=grid, steps=s), batch_size=100)[-1].acc for s in (2, 20)
    )
    assert many <= few + 0.01


@pytest.mark.parametrize("name", ["pgd_linf", "pgd_l2"])
def test_stopping_fooled_examples_early_only_finds_more_breaks(tiny_cnn, synthetic, name):
    """Early stop keeps each first fooling iterate; the others follow plain PGD's path exactly."""
    x, y = synthetic.x_test[:300], synthetic.y_test[:300]
    eps = 0.08 if name == "pgd_linf" else 1.0
    plain = make(name, steps=10, relative_step=0.25, random_start=False)
    early = make(name, steps=10, relative_step=0.25, random_start=False)
    early.stop_when_fooled = True
    adv_plain, adv_early = plain.perturb(tiny_cnn, x, y, eps), early.perturb(tiny_cnn, x, y, eps)
    with torch.no_grad():
        robust_plain = tiny_cnn(adv_plain).argmax(1) == y
        robust_early = tiny_cnn(adv_early).argmax(1) == y
    assert int((robust_early & ~robust_plain).sum()) <= 1  # float noise of smaller batches at most
    assert 0 < int(robust_early.sum()) <= int(robust_plain.sum())
    assert float(_ball_distance(adv_early - x, plain.norm).max()) <= eps + 1e-5
    assert adv_early.min() >= 0 and adv_early.max() <= 1


def test_the_fast_surface_equals_torchattacks_per_eps_within_noise(tiny_cnn, synthetic):
    """Issue 8's promise on a small scale: one pass over the ε grid vs torchattacks at every ε."""
    x, y = synthetic.x_test, synthetic.y_test
    grid = [0.0, 0.02, 0.05, 0.1]
    curve = robust_curve(tiny_cnn, x, y, AttackSpec(name="pgd_linf", eps=grid, steps=10), seed=3)
    torch.manual_seed(3)
    for point, eps in zip(curve, grid):
        adv = torchattacks.PGD(tiny_cnn, eps=eps, alpha=eps / 4, steps=10, random_start=True)(x, y) if eps else x
        reference = accuracy(tiny_cnn, adv, y)
        assert abs(point.acc - reference) <= 0.03, (eps, point.acc, reference)


def test_an_unknown_search_is_refused_naming_the_choices():
    from engine.errors import SpecError
    from engine.science.catalog import validate

    with pytest.raises(SpecError, match=r"options.search: input should be 'scan'"):
        validate(
            {
                "schedule": {"name": "one_shot", "targets": [0.5]},
                "eval": {"attacks": [{"name": "pgd_linf", "eps": [0.1], "options": {"search": "bisect"}}]},
            }
        )


@pytest.mark.parametrize("name", ["pgd_linf", "pgd_l2"])
def test_the_scan_never_calls_robust_an_example_the_per_eps_attack_with_the_same_starts_breaks(
    tiny_cnn, synthetic, name
):
    """Random starts are per example (keyed by seed, ε, restart and the example's index), so the upward
    scan gives an example alive at ε the very start a separate attack at ε gives it, and can only find
    more breaks. With per-batch starts the scan reported 1–2 images more robust at 11 of 120 points."""
    from engine.science.streams import ExampleStreams, stream_name

    x, y = synthetic.x_test, synthetic.y_test
    grid = [0.0, 0.05, 0.1, 0.2] if name == "pgd_linf" else [0.0, 0.5, 1.0, 2.0]
    for seed in range(3):
        spec = AttackSpec(name=name, eps=grid, steps=5, restarts=2, random_start=True)
        curve = robust_curve(tiny_cnn, x, y, spec, seed=seed, batch_size=64)
        attack = ATTACKS.get(name)(steps=5, relative_step=spec.relative_step(), random_start=True)
        for point, eps in zip(curve[1:], grid[1:]):
            alone = tiny_cnn(x).argmax(1) == y
            for restart in range(2):
                streams = ExampleStreams(stream_name(seed, name, eps, restart), range(len(x)))
                alone &= tiny_cnn(attack.perturb(tiny_cnn, x, y, eps, streams)).argmax(1) == y
            scan = torch.from_numpy(unpack_flags(point.correct, point.n))
            assert not (scan & ~alone).any(), f"seed {seed}, ε {eps}: robust in the scan, broken alone"


def test_an_examples_random_start_does_not_depend_on_its_batch():
    from engine.science.attacks.base import normal_like, uniform_like
    from engine.science.streams import ExampleStreams

    x = torch.zeros(6, 1, 4, 4)
    whole = uniform_like(x, -0.1, 0.1, ExampleStreams("0|pgd_linf|0.1|0", range(6)))
    some = uniform_like(x[[1, 4]], -0.1, 0.1, ExampleStreams("0|pgd_linf|0.1|0", [1, 4]))
    assert torch.equal(some, whole[[1, 4]]) and whole.abs().max() <= 0.1
    other_eps = uniform_like(x, -0.1, 0.1, ExampleStreams("0|pgd_linf|0.2|0", range(6)))
    assert not torch.equal(whole, other_eps)
    streams = ExampleStreams("s", range(6))
    direction, radius = normal_like(x, streams), uniform_like(x[:, :1, :1, :1], 0, 1, streams)
    assert not torch.equal(direction.flatten(1)[:, :1], radius.flatten(1))  # successive draws never overlap


@pytest.mark.parametrize(
    "attack, options, field",
    [
        ("apgd_t", {"n_classes": 0}, "n_classes: input should be greater than or equal to 2"),  # reported 100 %
        ("apgd_t", {"n_classes": -5}, "n_classes: input should be greater than or equal to 2"),
        ("autoattack", {"n_classes": 1}, "n_classes: input should be greater than or equal to 2"),
        ("apgd_t", {"n_classes": 5}, "n_classes: 5, but synthetic has 10 classes"),  # 4 of 9 targets tried
        ("autoattack", {"n_classes": 100}, "n_classes: 100, but synthetic has 10 classes"),
        ("deepfool", {"overshoot": -5}, "overshoot: input should be greater than or equal to 0"),
        ("square", {"n_queries": 10**12}, "n_queries: input should be less than or equal to 100000"),
        ("apgd_ce", {"n_restarts": 10**9}, "n_restarts: input should be less than or equal to 20"),
        ("apgd_t", {"n_classes": "abc"}, "n_classes: input should be a valid integer"),
        ("square", {"n_queries": "many"}, "n_queries: input should be a valid integer"),
        ("deepfool", {"overshoot": 1e308}, "overshoot: input should be less than or equal to 1"),
        ("cw_l2", {"c": "abc"}, "c: input should be a valid number"),
        ("cw_l2", {"lr": 1e308}, "lr: input should be less than or equal to 1"),
        ("smooth_pgd_l2", {"samples": 10**6}, "samples: input should be less than or equal to 10000"),
    ],
)
def test_options_that_would_make_an_attack_vacuous_or_unbounded_are_refused_at_the_door(
    smoke_tree, attack, options, field
):
    """Issue 29's reproductions: each passed validation, trained the base, then reported 100 % robust
    accuracy, ran without end or died; now the spec is refused naming the option, before anything runs."""
    from engine.errors import SpecError
    from engine.science.catalog import validate

    smoke_tree["eval"]["attacks"] = [{"name": attack, "eps": [0, 0.1], "options": options}]
    with pytest.raises(SpecError, match=re.escape(f"eval.attacks[0].options.{field}")):
        validate(smoke_tree)


def test_a_refused_option_quotes_a_short_escaped_excerpt(smoke_tree):
    from engine.errors import SpecError
    from engine.science.catalog import validate

    smoke_tree["eval"]["attacks"] = [{"name": "pgd_linf", "eps": [0, 0.1], "options": {"search": "x\n\x1b[31m" * 1000}}]
    with pytest.raises(SpecError) as refused:
        validate(smoke_tree)
    message = str(refused.value)
    assert "\x1b" not in message and "\n" not in message.strip() and len(message) < 200
    assert "\\x1b[31m" in message  # shown escaped


def test_the_work_of_an_attack_counts_the_options_that_multiply_it():
    from engine.spec.attack_options import SQUARE_STANDARD_QUERIES
    from engine.spec.runspec import AttackSpec

    def passes(name: str, **options) -> int:
        return AttackSpec(name=name, eps=[0.1], steps=10, options=options).passes()  # grid: 0 and 0.1

    assert passes("pgd_linf") == 2 * 10
    assert passes("apgd_ce", n_restarts=5) == 5 * passes("apgd_ce")
    assert passes("apgd_t", n_classes=10) == 2 * 10 * 9 and passes("apgd_t", n_classes=3) == 2 * 10 * 2
    assert passes("square", n_queries=30_000) == 2 * 10_001
    assert passes("autoattack") == 2 * (10 + 2 * 10 * 9 + SQUARE_STANDARD_QUERIES // 3 + 1)  # every stage
    assert passes("autoattack") > 10 * passes("pgd_linf")  # no longer counted like one PGD
    assert passes("deepfool") == 10 * 5  # one run serves the grid; a backward per class


def test_an_attack_whose_largest_tensor_would_not_fit_is_refused_naming_both_fields(smoke_tree):
    """Issue 29: `samples` or `batch_size` large but inside their ranges ended in a traceback (an
    allocation of tens of GiB) instead of a refusal."""
    from engine.errors import SpecError
    from engine.science.catalog import validate
    from engine.spec.runspec import TENSORS_ALIVE, tensor_budget

    smoke_tree["eval"]["batch_size"] = 65536
    smoke_tree["eval"]["attacks"] = [{"name": "smooth_pgd_l2", "eps": [0, 0.5], "options": {"samples": 10_000}}]
    assert 65536 * 10_000 * 256 * 4 * TENSORS_ALIVE > tensor_budget()
    with pytest.raises(SpecError, match=r"eval.batch_size × eval.attacks\[0\].options.samples: 65536 images"):
        validate(smoke_tree)
    smoke_tree["eval"]["batch_size"] = 250
    smoke_tree["eval"]["attacks"][0]["options"]["samples"] = 32
    validate(smoke_tree)  # the defaults fit
