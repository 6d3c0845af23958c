"""Spec validation, canonical hashing, overrides and error messages."""

import copy

import pytest
from pydantic import ValidationError

from engine.errors import SpecError
from engine.science.catalog import validate
from engine.spec.reading import apply_overrides, parse_text
from engine.spec.runspec import RunSpec


def test_same_spec_same_id(smoke_tree):
    assert validate(smoke_tree).run_id() == validate(copy.deepcopy(smoke_tree)).run_id()


def test_key_order_and_defaults_do_not_change_the_id(smoke_tree):
    reordered = dict(reversed(list(smoke_tree.items())))
    explicit = copy.deepcopy(smoke_tree)
    explicit["train"]["optimizer"] = "adam"  # the default, written out
    ids = {validate(t).run_id() for t in (smoke_tree, reordered, explicit)}
    assert len(ids) == 1


@pytest.mark.parametrize(
    "override",
    [
        "seed=1",
        "schedule.final_sparsity=0.8",
        "eval.n_samples=100",
        "prune.method=random",
        "eval.attacks.0.steps=7",
        "train.lr=0.01",
        "model.name=lenet5",
    ],
)
def test_any_field_change_gives_a_new_id(smoke_tree, override):
    before = validate(smoke_tree).run_id()
    after = validate(apply_overrides(copy.deepcopy(smoke_tree), [override])).run_id()
    assert before != after


def test_base_id_is_shared_by_runs_differing_only_in_pruning(smoke_tree):
    a = validate(smoke_tree)
    b = validate(apply_overrides(copy.deepcopy(smoke_tree), ["schedule.final_sparsity=0.5", "prune.method=random"]))
    c = validate(apply_overrides(copy.deepcopy(smoke_tree), ["train.epochs=3"]))
    assert a.base_id() == b.base_id() != c.base_id()
    assert a.run_id() != b.run_id()


def test_spec_is_frozen(smoke_tree):
    spec = validate(smoke_tree)
    with pytest.raises(ValidationError):
        spec.seed = 3  # the point: a frozen spec refuses it


def test_override_values_are_parsed_as_yaml_scalars(smoke_tree):
    tree = apply_overrides(
        smoke_tree, ["schedule.final_sparsity=0.5", "prune.prune_classifier=true", "eval.attacks.0.eps=[0.1, 0.2]"]
    )
    spec = validate(tree)
    assert spec.schedule.model_dump()["final_sparsity"] == 0.5 and spec.prune.prune_classifier is True
    assert spec.eval.attacks[0].eps == [0.0, 0.1, 0.2]  # 0 is always added, list sorted


@pytest.mark.parametrize(
    "override, expected",
    [
        ("schedule.final_sparsity=1.0", "schedule.final_sparsity: input should be less than 1"),
        ("schedule.frequency=0", "schedule.frequency: input should be greater than 0"),
        ("prune.method=snip", "prune.method: unknown pruning method 'snip'"),
        ("model.name=gpt", "model.name: unknown model 'gpt'"),
        ("dataset.name=imagenet", "dataset.name: unknown dataset 'imagenet'"),
        ("eval.attacks.0.name=cw", "eval.attacks[0].name: unknown attack 'cw'"),
        ("eval.attacks.1.eps=[-0.1]", "eval.attacks[1].eps[0]: input should be greater than or equal to 0"),
        ("train.epochs=0", "train.epochs: input should be greater than or equal to 1"),
        ("schedule.name=cosine", "schedule: unknown schedule; choose from"),
        ("prune.final_sparsity=0.5", "prune.final_sparsity: unknown field"),
        ("seed=-1", "seed: input should be greater than or equal to 0"),
    ],
)
def test_bad_field_is_named_in_one_line(smoke_tree, override, expected):
    with pytest.raises(SpecError) as info:
        validate(apply_overrides(smoke_tree, [override]))
    assert any(line.startswith(expected) for line in info.value.problems), info.value.problems


def test_every_problem_gets_its_own_line(smoke_tree):
    tree = apply_overrides(smoke_tree, ["seed=-1", "train.lr=0", "schedule.final_sparsity=2"])
    with pytest.raises(SpecError) as info:
        validate(tree)
    assert {p.split(":")[0] for p in info.value.problems} == {"seed", "train.lr", "schedule.final_sparsity"}


def test_gradual_window_must_be_a_multiple_of_frequency(smoke_tree):
    with pytest.raises(SpecError, match="multiple of frequency"):
        validate(apply_overrides(smoke_tree, ["schedule.end=45"]))


def test_iterative_targets_must_increase():
    with pytest.raises(SpecError, match="strictly increasing"):
        validate({"schedule": {"name": "iterative", "targets": [0.5, 0.3]}})


def test_yaml_and_json_give_the_same_spec(smoke_tree):
    import json

    import yaml

    assert validate(parse_text(yaml.safe_dump(smoke_tree))) == validate(parse_text(json.dumps(smoke_tree)))


@pytest.mark.parametrize("text", ["[1, 2]", "a: [", "!!python/object:os.system {}"])
def test_text_that_is_not_a_spec_mapping_is_refused(text):
    with pytest.raises(SpecError):
        validate(parse_text(text))


def test_override_without_equals_is_refused(smoke_tree):
    with pytest.raises(SpecError, match="expected key.path=value"):
        apply_overrides(smoke_tree, ["seed"])


def test_defaults_make_a_complete_spec():
    spec = RunSpec.model_validate({"schedule": {"name": "one_shot", "targets": [0.5]}})
    assert spec.dataset.name == "fashion_mnist" and spec.model.name == "small_cnn"


def test_every_preset_validates():
    from engine import api

    for name in api.presets():
        spec = api.load_spec(preset=name)
        assert spec.run_id() and spec.schedule.sparsities()[0] == 0.0, name


def test_eps_written_as_a_fraction_is_a_number_in_specs_overrides_and_the_form():
    from engine.spec.form import parse_eps
    from engine.spec.reading import apply_overrides, parse_text

    tree = parse_text("eval: {attacks: [{name: pgd_linf, eps: [0, 2/255, 8/255]}]}\ndataset: {path: a/b.npz}")
    assert tree["eval"]["attacks"][0]["eps"] == [0, 2 / 255, 8 / 255] and tree["dataset"]["path"] == "a/b.npz"
    assert apply_overrides({}, ["train.adversary.eps=8/255"]) == {"train": {"adversary": {"eps": 8 / 255}}}
    assert parse_eps("0, 8/255, 0.1") == [0.0, 8 / 255, 0.1] and parse_eps("8/0") == "8/0"
    with pytest.raises(SpecError, match="not valid YAML"):
        parse_text("eval: {attacks: [{name: pgd_linf, eps: [1/0]}]}")
