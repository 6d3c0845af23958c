"""The newcomer's path, measured: a new attack or pruning method is one new module that registers itself
(discovered, validated, costed, catalogued, offered, run); a new paper check is one module and one YAML
(tests/test_papers.py: test_a_new_paper_is_one_check_module_and_one_yaml)."""

from __future__ import annotations

import copy
import textwrap

import pytest

from engine import api
from engine.errors import SpecError
from engine.registry import import_submodules
from engine.science.attacks import ATTACKS
from engine.science.pruning.methods import METHODS
from engine.spec.attack_options import ATTACK_OPTIONS
from engine.spec.reading import load_tree

TOY_ATTACK = '''
"""A toy attack: one signed-gradient step of a share of ε."""

import torch
from pydantic import Field

from engine.science.attacks.base import ATTACKS, Attack
from engine.spec.attack_options import Options


class NudgeOptions(Options):
    """The nudge's one option."""

    share: float = Field(1.0, gt=0.0, le=1.0, description="the step as a share of ε")

    def passes(self, n_eps, steps, restarts):
        return n_eps * 3


@ATTACKS.register("toy_nudge")
class Nudge(Attack):
    """Toy nudge: one signed-gradient step of share·ε (L∞)."""

    norm = "Linf"
    Options = NudgeOptions
    playground_eps = 0.05

    def perturb(self, model, x, y, eps, generator=None):
        grad = self.input_gradient(model, x, y)
        return torch.clamp(x + self.opts["share"] * eps * grad.sign(), 0.0, 1.0).detach()
'''

TOY_METHOD = '''
"""A toy pruning method: keeps the smallest weights (the opposite of magnitude pruning)."""

from engine.science.pruning.masks import METHODS, Criterion


@METHODS.register("toy_smallest")
class KeepSmallest(Criterion):
    """Toy: prunes the largest |w| of each layer first."""

    scope = "layer"

    def scores(self, weights, generator):
        return {name: -w.abs() for name, w in weights.items()}
'''


@pytest.fixture
def one_new_module(tmp_path, monkeypatch):
    """Drop one module into a fresh package and discover it, with the registries restored afterwards."""
    monkeypatch.setattr(ATTACKS, "_entries", dict(ATTACKS._entries))
    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))
    listed = dict(ATTACK_OPTIONS)
    monkeypatch.syspath_prepend(str(tmp_path))

    def discover(package: str, source: str) -> None:
        folder = tmp_path / package
        folder.mkdir()
        (folder / "__init__.py").write_text("", encoding="utf-8")
        (folder / "toy.py").write_text(textwrap.dedent(source), encoding="utf-8")
        import_submodules(package, [str(folder)])

    yield discover
    ATTACK_OPTIONS.clear()
    ATTACK_OPTIONS.update(listed)


def _smoke(**changes) -> dict:
    tree = copy.deepcopy(load_tree(preset="smoke"))
    tree.update(changes)
    return tree


def test_a_new_attack_is_one_module_validated_costed_catalogued_offered_and_run(one_new_module, cache):
    one_new_module("toy_attacks", TOY_ATTACK)
    attack = {"name": "toy_nudge", "eps": [0.05, 0.1], "options": {"share": 0.5}}
    spec = api.validate_tree(_smoke(eval={"n_samples": 100, "batch_size": 100, "attacks": [attack]}))
    assert spec.eval.attacks[0].passes() == 3 * 3  # its own cost model, over ε = 0, 0.05, 0.1
    with pytest.raises(SpecError, match=r"eval.attacks\[0\].options.shares: unknown option for toy_nudge"):
        api.validate_tree(_smoke(eval={"attacks": [{**attack, "options": {"shares": 0.5}}]}))
    with pytest.raises(SpecError, match=r"options.share: input should be less than or equal to 1"):
        api.validate_tree(_smoke(eval={"attacks": [{**attack, "options": {"share": 3}}]}))
    assert "share (float" in api.catalog()["attack"]["toy_nudge"]
    assert api.playground_attacks()["toy_nudge"] == (0.05, "Linf")
    points = api.run(spec)["points"]
    for point in points:
        accs = [r["acc"] for r in sorted(point["robust"], key=lambda r: r["eps"])]
        assert accs[0] == pytest.approx(point["clean_acc"]) and accs == sorted(accs, reverse=True)


def test_a_new_pruning_method_is_one_module_validated_and_run(one_new_module, cache):
    one_new_module("toy_methods", TOY_METHOD)
    spec = api.validate_tree(_smoke(prune={"method": "toy_smallest", "lr": 0.001, "batch_size": 64}))
    assert "prunes the largest" in api.catalog()["pruning method"]["toy_smallest"]
    points = api.run(spec)["points"]
    assert points[-1]["sparsity"] == pytest.approx(0.9, abs=0.01)
