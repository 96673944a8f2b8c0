"""Registry of network architectures by name (`create_model("baseline")`).

Every model takes float images in [0, 1] shaped (N, 1, 28, 28) and returns logits (N, classes);
its first layer subtracts the dataset mean and divides by the standard deviation, so a weights
file carries its own preprocessing constants.

Architectures are registered by name: in code with `@register_model(name)`, or by an installed
plug-in, an entry point in the `digitrec.models` group whose name is the model's and which names
its factory (see `digitrec.registry`); `digitrec train --model NAME` then trains it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .errors import ConfigError
from .registry import Registry

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081

Factory = Callable[..., nn.Module]


def _check_plugin(name: str, value: object) -> str | None:
    """What is wrong with a plug-in's object for model `name`, if anything."""
    return None if callable(value) else f"must name a model factory, not {type(value).__name__}"


_registry: Registry[Factory] = Registry("model", "digitrec.models", _check_plugin,
                                        unknown=ConfigError)


def register_model(name: str) -> Callable[[Factory], Factory]:
    """Decorator: make a model factory available by name; a name already registered is a
    RegistryError."""
    def add(factory: Factory) -> Factory:
        return _registry.register(name, factory, owner=f"{factory.__module__}.{factory.__qualname__}")
    return add


def list_models() -> list[str]:
    """Names of all architectures: the built-in ones, those registered in code, then plug-ins'."""
    return _registry.names()


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered architecture (loading its plug-in on first use); kwargs go to its
    factory (and into the model card)."""
    return _registry.get(name)(**kwargs)


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


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> list[nn.Module]:
    """Convolution (no bias: BatchNorm has one) + BatchNorm + ReLU."""
    return [nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@register_model("fast")
def fast(num_classes: int = 10, width: int = 16, mean: float = MNIST_MEAN,
         std: float = MNIST_STD) -> nn.Module:
    """A small BatchNorm CNN built for CPU throughput: a strided 5x5 stem, two conv blocks."""
    w = width
    return nn.Sequential(
        Normalize(mean, std),
        *conv_bn(1, w, 5, stride=2, padding=2),                       # w x 14 x 14
        *conv_bn(w, 2 * w, 3, padding=1), nn.MaxPool2d(2),            # 2w x 7 x 7
        *conv_bn(2 * w, 4 * w, 3, padding=1), nn.MaxPool2d(2),        # 4w x 3 x 3
        nn.Flatten(),
        nn.Linear(4 * w * 9, num_classes),
    )


@register_model("accurate")
def accurate(num_classes: int = 10, width: int = 32, dropout: float = 0.4,
             mean: float = MNIST_MEAN, std: float = MNIST_STD) -> nn.Module:
    """A deeper BatchNorm CNN: two stages of 3x3, 3x3, strided 5x5 convolutions, then a 4x4
    convolution to a 1x1 feature vector; dropout between stages (after C. Deotte's Kaggle
    MNIST design)."""
    w = width
    return nn.Sequential(
        Normalize(mean, std),
        *conv_bn(1, w, 3), *conv_bn(w, w, 3), *conv_bn(w, w, 5, stride=2, padding=2),  # 12x12
        nn.Dropout(dropout),
        *conv_bn(w, 2 * w, 3), *conv_bn(2 * w, 2 * w, 3),
        *conv_bn(2 * w, 2 * w, 5, stride=2, padding=2),                                  # 4x4
        nn.Dropout(dropout),
        *conv_bn(2 * w, 4 * w, 4),                                                       # 1x1
        nn.Flatten(), nn.Dropout(dropout),
        nn.Linear(4 * w, num_classes),
    )
