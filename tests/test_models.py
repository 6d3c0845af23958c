"""Every registered model: normalisation first, right output shape, no NaNs, on every input size."""

import pytest
import torch
from torch import nn

from engine.science.data import DatasetInfo
from engine.science.models import MODELS, Normalize, build_model, classifier_name

GREY = DatasetInfo(1, 28, 10, (0.5,), (0.25,), tuple("abcdefghij"))
COLOUR = DatasetInfo(3, 32, 10, (0.5, 0.4, 0.3), (0.2, 0.2, 0.2), tuple("abcdefghij"))


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("info", [GREY, COLOUR], ids=["grey28", "colour32"])
def test_model_forward_shape_and_finite(name, info):
    model = build_model(name, info).eval()
    out = model(torch.rand(3, info.channels, info.size, info.size))
    assert out.shape == (3, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS.names())
def test_model_starts_with_its_normalisation(name):
    model = build_model(name, COLOUR)
    first = next(m for m in model.modules() if not list(m.children()))
    assert isinstance(first, Normalize)
    assert torch.allclose(first.mean.flatten(), torch.tensor(COLOUR.mean))


@pytest.mark.parametrize("name", MODELS.names())
def test_model_has_a_linear_classifier_and_docs(name):
    model = build_model(name, GREY)
    assert classifier_name(model)
    assert len(MODELS.help(name)) > 10


def test_registry_refuses_duplicates_and_names_choices():
    from engine.errors import DuplicateNameError, UnknownNameError

    with pytest.raises(DuplicateNameError):
        MODELS.register("mlp")(lambda info: nn.Identity())
    with pytest.raises(UnknownNameError, match="choose from"):
        MODELS.get("transformer")
