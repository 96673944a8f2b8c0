"""Model registry and architectures."""

import pytest
import torch

from digitrec.models import create_model, list_models


@pytest.mark.parametrize("name", ["baseline", "fast", "accurate"])
def test_registered_models_map_images_to_logits(name: str):
    assert name in list_models()
    model = create_model(name).eval()
    assert model(torch.rand(5, 1, 28, 28)).shape == (5, 10)
    assert create_model(name, num_classes=3).eval()(torch.rand(2, 1, 28, 28)).shape == (2, 3)


def test_model_sizes():
    sizes = {name: sum(p.numel() for p in create_model(name).parameters())
             for name in ("baseline", "fast", "accurate")}
    assert sizes["fast"] < 40_000 < sizes["baseline"]
    assert 200_000 < sizes["accurate"] < 600_000


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="baseline"):
        create_model("resnet-9000")


def test_model_owns_its_normalisation():
    state = create_model("baseline").state_dict()
    assert state["0.mean"].item() == pytest.approx(0.1307)
    assert state["0.std"].item() == pytest.approx(0.3081)
