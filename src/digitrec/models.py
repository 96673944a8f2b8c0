"""Registry of network architectures by name (`create_model("baseline")`).

Every model takes float images in [0, 1] shaped (N, 1, 28, 28) and returns logits (N, classes);
its first layer subtracts the dataset mean and divides by the standard deviation, so weights
files and exported models carry their own preprocessing constants.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: make a model factory available by name."""
    def add(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = factory
        return factory
    return add


def list_models() -> list[str]:
    """Names of all registered architectures."""
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered architecture; kwargs go to its factory (and into the model card)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return _REGISTRY[name](**kwargs)


class Normalize(nn.Module):
    """(x - mean) / std with the constants stored as buffers, so they travel with the weights."""

    def __init__(self, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@register_model("baseline")
def baseline(num_classes: int = 10, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> nn.Module:
    """The classic notebook CNN: two conv + max-pool blocks, then two fully connected layers."""
    return nn.Sequential(
        Normalize(mean, std),
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 32 x 14 x 14
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 64 x 7 x 7
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),
        nn.Linear(128, num_classes),
    )
