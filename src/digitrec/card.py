"""The model card: what a trained model says about itself, in a run directory's `card.json`
and in an exported model's ONNX metadata.

The card is defined once, here, as typed dictionaries (it is JSON on disk and in ONNX
metadata). `parse_card` is the one way in: it checks the fields every reader relies on and
brings a card of an earlier version to this one, so readers index fields directly. A card
without a `version` is version 0: the same fields, with `model_kwargs`, `config` and the data
sources possibly missing. A card of a newer version than this digitrec knows is refused.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from .errors import DigitrecError

CARD_VERSION = 1
METADATA_VERSION = 1  # of an exported digit model's ONNX metadata (see `export`)


class Calibration(TypedDict):
    """The temperature fitted on held-out images (predictors divide the logits by it)."""

    temperature: float
    fitted_on: str
    images: int
    nll_before: float
    nll_after: float
    ece_before: NotRequired[float]
    ece_after: NotRequired[float]


class DataFacts(TypedDict):
    """What the model was trained on: the dataset (with the SHA-256 of its files), image
    counts, and every source (`train.folder_card` describes an image folder's)."""

    dataset: str
    sha256: dict[str, str]
    train_images: int
    val_images: int
    sources: list[dict[str, Any]]


class Metrics(TypedDict):
    """Test-set results, and the held-out results of the last epoch (per source with several)."""

    test_accuracy: float
    test_loss: NotRequired[float]
    val_loss: NotRequired[float]
    val_accuracy: NotRequired[float]
    val_sources: NotRequired[dict[str, dict[str, float]]]


class ModelCard(TypedDict):
    """A trained model: architecture, configuration, data, results and how to reproduce it."""

    version: int
    model: str
    model_kwargs: dict[str, Any]
    config: dict[str, Any]  # `TrainConfig.as_json()`
    data: DataFacts
    metrics: Metrics
    train_seconds: float | None
    device: str | None
    versions: dict[str, str]  # of digitrec, torch, numpy and Python
    command: str | None  # the `digitrec train` command line that reproduces the run
    calibration: NotRequired[Calibration]
    init: NotRequired[dict[str, Any]]  # the run a fine-tuned model started from
    distributed: NotRequired[dict[str, Any]]  # processes, backend, global batch, lr


def parse_card(obj: Any, source: str, error: type[DigitrecError]) -> ModelCard:
    """A card read from JSON, checked and brought to CARD_VERSION; anything else is `error`
    naming `source`."""
    if not isinstance(obj, dict):
        raise error(f"{source}: the model card is not a JSON object")
    version = obj.get("version", 0)
    if not isinstance(version, int) or not 0 <= version <= CARD_VERSION:
        raise error(f"{source}: model card version {version!r} is not one this digitrec reads "
                    f"(up to {CARD_VERSION}): a newer digitrec wrote it")
    data, metrics = obj.get("data"), obj.get("metrics")
    if not (isinstance(obj.get("model"), str) and isinstance(data, dict)
            and isinstance(data.get("dataset"), str) and isinstance(metrics, dict)
            and isinstance(metrics.get("test_accuracy"), (int, float))):
        raise error(f"{source}: the model card lacks its model, data.dataset or "
                    f"metrics.test_accuracy")
    card = {"model_kwargs": {}, "config": {}, "train_seconds": None, "device": None,
            "versions": {}, "command": None, **obj, "version": CARD_VERSION}
    card["data"] = {"sha256": {}, "train_images": 0, "val_images": 0, "sources": [], **data}
    return card  # type: ignore[return-value]


def card_temperature(card: ModelCard | None) -> float:
    """The temperature a card stores (1.0 when it has none: no held-out images to fit one, or
    a model from another tool)."""
    calibration = card.get("calibration") if card else None
    temperature = calibration.get("temperature") if isinstance(calibration, dict) else None
    return float(temperature) if isinstance(temperature, (int, float)) and temperature > 0 else 1.0
