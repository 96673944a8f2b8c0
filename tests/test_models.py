"""Model registry and architectures."""

import pytest
import torch

from digitrec.models import create_model, list_models


def test_registry_lists_and_builds_baseline():
    assert "baseline" in list_models()
    model = create_model("baseline")
    logits = model(torch.rand(5, 1, 28, 28))
    assert logits.shape == (5, 10)
    assert create_model("baseline", num_classes=3)(torch.rand(2, 1, 28, 28)).shape == (2, 3)


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="baseline"):
        create_model("resnet-9000")


def test_model_owns_its_normalisation():
    state = create_model("baseline").state_dict()
    assert state["0.mean"].item() == pytest.approx(0.1307)
    assert state["0.std"].item() == pytest.approx(0.3081)
