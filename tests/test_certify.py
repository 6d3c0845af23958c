"""Randomized smoothing: the certificate against Cohen et al.'s definitions, abstentions, certified ≤
empirical, the Gaussian training losses against HYDRA's shipped code, and the spec and store around them."""

import math

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import beta, norm
from torch import nn

from engine.report.stats import paired, unpack_flags
from engine.report.summaries import hygiene
from engine.science.attacks import ATTACKS
from engine.science.certify import certify, lower_confidence_bound, radius_of
from engine.science.evaluate import certified_curve, robust_curve
from engine.spec.runspec import AdversarySpec, AttackSpec


class Halfspace(nn.Module):
    """Two classes split by the hyperplane w·x = b (w a unit vector): a base classifier whose smoothed
    version is known in closed form, p_A = Φ(distance / σ), so the exact radius is the distance."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.w, self.b = nn.Parameter(w / w.norm(), requires_grad=False), b

    def forward(self, x):
        score = x.flatten(1) @ self.w.flatten() - self.b
        return torch.stack([-score, score], dim=1) * 100


def _point_at(distance: float, model: Halfspace, size: int = 16) -> torch.Tensor:
    """An image (1, 1, 4, 4) whose signed distance to the model's hyperplane is `distance`."""
    x = torch.full((1, 1, 4, 4), 0.5)
    w = model.w.detach().view(1, 1, 4, 4)
    current = float(x.flatten() @ w.flatten()) - model.b
    return x + (distance - current) * w


@pytest.fixture
def halfspace():
    return Halfspace(torch.arange(16, dtype=torch.float32) - 7.5, 0.0)


def test_the_lower_bound_is_clopper_pearson_as_in_cohen_et_al():
    # statsmodels proportion_confint(nA, n, alpha=2α, method="beta")[0] is the Beta(α; nA, n − nA + 1) quantile
    for successes, trials, alpha in [(990, 1000, 0.001), (600, 1000, 0.001), (100, 100, 0.01), (7, 20, 0.05)]:
        expected = beta.ppf(alpha, successes, trials - successes + 1)
        assert lower_confidence_bound(successes, trials, alpha) == pytest.approx(expected, rel=1e-9)
    assert lower_confidence_bound(1000, 1000, 0.001) == pytest.approx(0.001 ** (1 / 1000), rel=1e-9)
    assert radius_of(lower_confidence_bound(990, 1000, 0.001), 0.25) == pytest.approx(
        0.25 * norm.ppf(beta.ppf(0.001, 990, 11)), rel=1e-9
    )
    assert radius_of(0.49, 0.25) == 0.0


def test_a_constant_model_is_certified_to_the_bound_the_sample_size_allows():
    constant = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        constant[1].weight.zero_()
        constant[1].bias.copy_(torch.tensor([0.0, 5.0, 0.0]))
    x = torch.rand(5, 1, 4, 4)
    out = certify(constant, x, 0.5, 10, 200, 0.001, torch.Generator().manual_seed(0))
    assert out.label.tolist() == [1] * 5
    expected = 0.5 * norm.ppf(0.001 ** (1 / 200))  # every sample agrees: p̲ = α^(1/n)
    assert out.radius.tolist() == pytest.approx([expected] * 5, rel=1e-9)


@pytest.mark.parametrize("distance", [0.1, 0.3, 0.6])
def test_a_halfspace_is_certified_to_its_distance_within_the_bound_slack(halfspace, distance):
    x = _point_at(distance, halfspace)
    out = certify(halfspace, x, 0.25, 100, 20_000, 0.001, torch.Generator().manual_seed(1))
    slack = 0.25 * (norm.ppf(norm.cdf(distance / 0.25)) - norm.ppf(norm.cdf(distance / 0.25) - 0.012))
    assert out.label.item() == 1
    assert distance - slack <= out.radius.item() <= distance + 1e-6  # sound, and nearly tight


def test_a_point_on_the_boundary_abstains_and_never_counts_as_correct(halfspace):
    x = _point_at(0.0, halfspace).repeat(20, 1, 1, 1)
    y = torch.ones(20, dtype=torch.long)
    spec = AttackSpec(name="smoothing", eps=[0.0, 0.1], options={"n0": 20, "n": 400})
    points = certified_curve(halfspace, x, y, spec, ATTACKS.get("smoothing")(**spec.options), batch_size=8)
    assert points[0].abstained == points[1].abstained
    assert points[0].abstained >= 18  # p_A = ½ exactly: the bound falls below ½ almost always
    assert points[0].acc <= (20 - points[0].abstained) / 20
    assert all(p.acc <= 0.1 for p in points)


def _noise_trained(data, sigma: float = 0.25):
    from engine.science.losses import LOSSES
    from engine.science.models import build_model
    from engine.science.training import train_steps

    torch.manual_seed(0)
    model = build_model("mlp", data.info)
    loss = LOSSES.create("gaussian", AdversarySpec(sigma=sigma), torch.Generator().manual_seed(0))
    train_steps(
        model,
        data.x_train,
        data.y_train,
        steps=300,
        batch_size=64,
        lr=2e-3,
        generator=torch.Generator().manual_seed(0),
        loss_fn=loss,
    )
    return model.eval()


@pytest.mark.slow
def test_certified_accuracy_stays_at_or_below_the_attack_on_the_smoothed_classifier(synthetic):
    model = _noise_trained(synthetic)
    x, y = synthetic.x_test[:120], synthetic.y_test[:120]
    radii = [0.0, 0.25, 0.5, 1.0]
    certified = robust_curve(model, x, y, AttackSpec(name="smoothing", eps=radii, options={"n": 500}), batch_size=60)
    attacked = robust_curve(model, x, y, AttackSpec(name="smooth_pgd_l2", eps=radii, steps=10))  # SmoothAdv's settings
    for c, a in zip(certified, attacked):
        gap = paired(unpack_flags(c.correct, c.n), unpack_flags(a.correct, a.n))
        assert gap.low <= 0, (c.eps, c.acc, a.acc)  # never significantly above the empirical figure
    assert certified[1].acc > 0.5  # noise training gives real certificates, not an empty test
    assert [p.acc for p in certified] == sorted((p.acc for p in certified), reverse=True)


def _frame(cert: list[float], emp: list[float], n: int = 200):
    import numpy as np
    import pandas as pd

    from engine.report.stats import pack_flags

    rows = []
    for attack, accs in (("smoothing", cert), ("smooth_pgd_l2", emp)):
        for eps, acc in zip([0.0, 0.25, 0.5], accs):
            flags = np.arange(n) < round(acc * n)  # nested: whoever the lower curve keeps, the higher keeps too
            rows.append(
                {"run_id": "r", "step": 0, "attack": attack, "norm": "L2", "eps": eps, "acc": acc, "n": n}
                | {"correct": pack_flags(flags), "clean_acc": 0.9, "params": ""}
            )
    return pd.DataFrame(rows)


def test_a_certificate_above_the_attack_is_flagged_only_beyond_sampling_noise():
    weak = hygiene(_frame([0.9, 0.8, 0.6], [0.9, 0.7, 0.5]))
    assert [w.kind for w in weak] == ["certified_above_empirical"] * 2
    assert "weak or masked" in weak[0].message
    assert hygiene(_frame([0.9, 0.8, 0.6], [0.9, 0.8, 0.61])) == []
    assert hygiene(_frame([0.9, 0.705, 0.5], [0.9, 0.7, 0.5])) == []  # one image: noise, not a crossing


def test_gaussian_loss_is_cross_entropy_on_noisy_inputs(tiny_mlp, synthetic):
    from engine.science.losses import LOSSES

    x, y = synthetic.x_train[:32], synthetic.y_train[:32]
    ours = LOSSES.create("gaussian", AdversarySpec(sigma=0.5), torch.Generator().manual_seed(3))(tiny_mlp, x, y)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3)) * 0.5
    assert ours.item() == pytest.approx(F.cross_entropy(tiny_mlp(x + noise), y).item(), rel=1e-6)


def test_gaussian_stability_is_hydras_smooth_trainer(tiny_mlp, synthetic):
    from engine.science.losses import LOSSES

    x, y = synthetic.x_train[:32], synthetic.y_train[:32]
    ours = LOSSES.create("gaussian_stability", AdversarySpec(), torch.Generator().manual_seed(4))(tiny_mlp, x, y)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(4)) * 0.25  # --noise-std 0.25
    output = tiny_mlp(x)  # hydra trainer/smooth.py, non-ImageNet branch, β = 6
    robust = (1.0 / len(x)) * nn.KLDivLoss(reduction="sum")(
        F.log_softmax(tiny_mlp(x + noise), dim=1), F.softmax(output, dim=1)
    )
    assert ours.item() == pytest.approx((F.cross_entropy(output, y) + 6.0 * robust).item(), rel=1e-6)


def test_an_unset_sigma_leaves_every_existing_run_id_alone(smoke_tree):
    from engine.science.catalog import validate

    plain = validate(smoke_tree)
    assert "sigma" not in plain.canonical_json()
    noisy = validate(
        smoke_tree | {"train": {**smoke_tree.get("train", {}), "mode": "gaussian", "adversary": {"sigma": 0.5}}}
    )
    assert '"sigma":0.5' in noisy.canonical_json() and noisy.base_id() != plain.base_id()


def test_sampling_options_out_of_range_are_refused_naming_the_option(smoke_tree):
    from engine.errors import SpecError
    from engine.science.catalog import validate

    for options, field in [
        ({"sigma": 0}, "sigma"),
        ({"alpha": 0.7}, "alpha"),
        ({"n": 0}, "options.n"),
        ({"n": 2.5}, "n"),
    ]:
        tree = smoke_tree | {"eval": {"attacks": [{"name": "smoothing", "eps": [0.25], "options": options}]}}
        with pytest.raises(SpecError, match=field):
            validate(tree)


def test_the_work_bound_counts_noise_samples_once_per_checkpoint():
    cheap = AttackSpec(name="smoothing", eps=[0.25], options={"n0": 100, "n": 1000})
    many_radii = AttackSpec(name="smoothing", eps=[0.1, 0.2, 0.3, 0.4, 0.5], options={"n0": 100, "n": 1000})
    assert cheap.passes() == many_radii.passes() == math.floor(1100 / 3) + 1
    assert AttackSpec(name="smoothing", eps=[0.25], options={"n": 10_000}).passes() > 3000


def test_the_certifier_is_in_the_catalogue_with_help():
    from engine.science.catalog import catalog

    attacks = catalog()["attack"]
    assert "Cohen" in attacks["smoothing"] and "abstentions" in attacks["smoothing"]
    assert "smoothed classifier" in attacks["smooth_pgd_l2"]
    assert "HYDRA" in catalog()["training mode"]["gaussian_stability"]


def test_the_onnx_forward_counts_what_eager_pytorch_counts(tiny_cnn, synthetic):
    from engine.science.certify import eager, fast_forward, noise_counts

    x = synthetic.x_test[:20]
    fast = noise_counts(fast_forward(tiny_cnn, x[:2]), x, 200, 0.25, torch.Generator().manual_seed(5), 1000)
    plain = noise_counts(eager(tiny_cnn), x, 200, 0.25, torch.Generator().manual_seed(5), 1000)
    assert (fast - plain).abs().sum() <= 2  # the same float32 function: at most a rounding tie in 4,000 labels


CERTIFIED_SPEC = {
    "dataset": {"name": "synthetic"},
    "model": {"name": "mlp"},
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.002, "mode": "gaussian"},
    "prune": {"method": "global_magnitude", "lr": 0.001, "batch_size": 64},
    "schedule": {"name": "gradual", "final_sparsity": 0.9, "begin": 0, "end": 40, "frequency": 20},
    "eval": {
        "n_samples": 100,
        "batch_size": 100,
        "transfer": True,
        "attacks": [
            {"name": "smoothing", "eps": [0, 0.25, 0.5], "options": {"n": 300}},
            {"name": "smooth_pgd_l2", "eps": [0, 0.25, 0.5], "steps": 5, "options": {"samples": 4, "n": 50}},
            {"name": "pgd_l2", "eps": [0, 0.25, 0.5], "steps": 5},
        ],
    },
    "seed": 0,
}


@pytest.fixture(scope="module")
def certified_run(tmp_path_factory):
    from engine import api
    from engine.science.catalog import validate

    root = tmp_path_factory.mktemp("certified-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AER_CACHE_DIR", str(root))
        api.forget_stores()
        spec = validate(CERTIFIED_SPEC)
        api.run(spec, api.open_store())
        yield root, spec.run_id()
    api.forget_stores()


def test_a_run_stores_the_certified_curve_with_its_abstentions(certified_run):
    from engine.store.db import Store
    from engine.store.frames import robust_frame, warnings_list

    root, run_id = certified_run
    store = Store(root)
    frame = robust_frame([run_id], store)
    certified = frame[frame["attack"] == "smoothing"]
    assert certified["abstained"].notna().all() and frame[frame["attack"] != "smoothing"]["abstained"].isna().all()
    for _, curve in certified.groupby("step"):
        accs = curve.sort_values("eps")["acc"].tolist()
        assert accs == sorted(accs, reverse=True) and all(math.isfinite(a) for a in accs)
    transfer = robust_frame([run_id], store, "transfer")
    assert set(transfer["attack"]) == {"pgd_l2"}  # a certificate crafts nothing to transfer
    assert not [w for w in warnings_list([run_id], store) if w["kind"] == "certified_above_empirical"]


def test_surface_shows_a_certified_surface_and_the_certified_vs_attacked_slice(certified_run, monkeypatch):
    from tests.support import page

    root, run_id = certified_run
    at = page("pages/surface.py", root, monkeypatch, run=run_id[:12], view="heat map", attack="smoothing")
    assert not at.exception
    assert any("smoothed classifier's clean accuracy" in c.value for c in at.caption)
    at = page("pages/surface.py", root, monkeypatch, run=run_id[:12], view="certified vs attacked", attack="smoothing")
    assert not at.exception
    figure = at.get("plotly_chart")[0].proto.spec
    assert "smoothing (certified)" in figure and "smooth_pgd_l2 (attacked)" in figure and "pgd_l2 (attacked)" in figure


def test_the_certified_caption_counts_the_last_checkpoints_abstentions_and_only_for_certificates():
    import pandas as pd

    from engine.report.summaries import certified_caption

    rows = pd.DataFrame(
        {"step": [0, 0, 2, 2], "eps": [0, 0.25] * 2, "n": [500] * 4, "abstained": [9, 9, 22, 22], "acc": [0.8] * 4}
    )
    assert "abstained on 22 of 500 images" in certified_caption(rows)
    assert (
        certified_caption(rows.assign(abstained=None)) is None
        and certified_caption(rows.drop(columns="abstained")) is None
    )


def _smoothadv_reference(model, x, y, noise, eps, steps):
    """SmoothAdv's PGD_L2._attack_mutlinoise for one example (Hadisalman/smoothing-adversarial,
    code/attacks.py), restated: δ = 0, SGD with lr 2ε/steps on −CE of the mean softmax over the fixed
    noisy copies, the gradient renormed per example, then clip to [0, 1] and renorm δ to ε."""
    m = noise.shape[0]
    inputs = x.repeat(m, 1, 1, 1)
    delta = torch.zeros_like(x, requires_grad=True)
    optimizer = torch.optim.SGD([delta], lr=eps / steps * 2)
    for _ in range(steps):
        logits = model(inputs + delta.repeat(m, 1, 1, 1) + noise)
        average = F.softmax(logits, dim=1).reshape(-1, m, logits.shape[-1]).mean(1)
        loss = -F.nll_loss(torch.log(average.clamp(min=1e-20)), y)
        optimizer.zero_grad()
        loss.backward()
        delta.grad.div_(delta.grad.view(1, -1).norm(p=2, dim=1).view(-1, 1, 1, 1))
        optimizer.step()
        delta.data.add_(x).clamp_(0, 1).sub_(x)
        delta.data.renorm_(p=2, dim=0, maxnorm=eps)
    return (x + delta).detach()


def test_the_smoothed_attack_follows_smoothadv_step_for_step(synthetic):
    """One noise set per example reused at every step, a start at zero, SmoothAdv's step size."""
    model = _noise_trained(synthetic)
    x, y = synthetic.x_test[:6], synthetic.y_test[:6]
    spec = AttackSpec(name="smooth_pgd_l2", eps=[0.5], steps=5, options={"samples": 4})
    attack = ATTACKS.get("smooth_pgd_l2")(steps=5, relative_step=spec.relative_step(), **spec.options)
    ours = attack.perturb(model, x, y, 0.5, torch.Generator().manual_seed(3))
    noise = torch.randn((6, 4, *x.shape[1:]), generator=torch.Generator().manual_seed(3)) * 0.25
    for i in range(6):
        reference = _smoothadv_reference(model, x[i : i + 1], y[i : i + 1], noise[i], 0.5, 5)
        assert torch.allclose(ours[i : i + 1], reference, atol=1e-5)


class Coin(nn.Module):
    """A base classifier that answers class 0 or 1 by the sign of the input's mean: at x = ½ under
    Gaussian noise a fair coin, so the smoothed classifier's top two classes tie."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1e4), requires_grad=False)

    def forward(self, x):
        score = (x.flatten(1) - 0.5).mean(dim=1)
        return torch.stack([score, -score], dim=1) * self.scale


def test_the_smoothed_attack_is_judged_by_predict_and_an_abstention_counts_wrong():
    x, y = torch.full((40, 1, 4, 4), 0.5), torch.zeros(40, dtype=torch.long)
    attack = ATTACKS.get("smooth_pgd_l2")(steps=1, n=200)
    labels = attack.labels(Coin(), x, torch.Generator().manual_seed(0))
    assert (labels == -1).float().mean() > 0.9  # PREDICT abstains on a near tie (the old majority vote never did)
    curve = robust_curve(Coin(), x, y, AttackSpec(name="smooth_pgd_l2", eps=[0.0], options={"n": 200}))
    assert curve[0].acc < 0.1  # and its clean accuracy counts the abstentions wrong
