"""Evaluation: predictions on a split, accuracy with its confidence interval, per-class
precision/recall/F1, confusion matrix; ensembles, test-time augmentation, and image folders
of other sources (each its own line)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .card import card_temperature
from .checkpoint import load_model, read_card
from .data import get_dataset, load_split
from .errors import RunDirError
from .folders import FolderData, load_folder
from .plots import confusion_figure, misclassified_figure, save_png

EVAL_BATCH = 1000


def predict_logits(model: torch.nn.Module, images: torch.Tensor,
                   batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Logits for images (uint8 0..255 or float 0..1, shape (N, 1, 28, 28)), in eval mode."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size]
            x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
            out.append(model(x).float())
    return torch.cat(out)


def wilson_interval(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Confidence interval of a proportion (Wilson score; 95% for z = 1.96): unlike the normal
    approximation it stays inside [0, 1] and behaves near 100% accuracy."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def classification_report(labels: np.ndarray, predictions: np.ndarray,
                          class_names: list[str] | tuple[str, ...]) -> dict:
    """Accuracy with its 95% confidence interval, per-class precision/recall/F1/support and the
    confusion matrix (rows: true class, columns: predicted class)."""
    k = len(class_names)
    confusion = np.bincount(labels * k + predictions, minlength=k * k).reshape(k, k)
    true_pos = np.diag(confusion).astype(float)
    predicted, support = confusion.sum(0), confusion.sum(1)
    precision = np.divide(true_pos, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(true_pos, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k),
                   where=precision + recall > 0)
    per_class = [{"class": name, "precision": float(p), "recall": float(r), "f1": float(f),
                  "support": int(s)}
                 for name, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True)]
    return {"accuracy": float(true_pos.sum() / max(len(labels), 1)),
            "accuracy_ci95": wilson_interval(int(true_pos.sum()), len(labels)),
            "per_class": per_class,
            "confusion_matrix": confusion.tolist()}


def mistakes_by_confidence(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices of the misclassified images, the most confident mistake first."""
    predictions = probabilities.argmax(1)
    wrong = np.flatnonzero(predictions != labels)
    return wrong[np.argsort(-probabilities[wrong, predictions[wrong]], kind="stable")]


TTA_SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # (down, right) in pixels


def tta_probabilities(model: torch.nn.Module, images: torch.Tensor,
                      temperature: float = 1.0) -> torch.Tensor:
    """Test-time augmentation: mean softmax (of logits / temperature) over the images and
    their one-pixel shifts."""
    views = [torch.roll(images, shifts=shift, dims=(2, 3)) for shift in TTA_SHIFTS]
    return torch.stack([(predict_logits(model, v) / temperature).softmax(1)
                        for v in views]).mean(0)


def ensemble_probabilities(run_dirs: list, images: np.ndarray,
                           tta: bool = False) -> tuple[np.ndarray, list[dict]]:
    """Mean probabilities of several runs' models, each with its own temperature (and
    test-time augmentation if `tta`), and each run's card."""
    x = torch.from_numpy(images).unsqueeze(1)
    total, cards = None, []
    for run_dir in run_dirs:
        model, card = load_model(run_dir)
        temperature = card_temperature(card)
        probabilities = (tta_probabilities(model, x, temperature) if tta
                         else (predict_logits(model, x) / temperature).softmax(1)).numpy()
        total = probabilities if total is None else total + probabilities
        cards.append(card)
    return total / len(run_dirs), cards


def evaluation_dataset(run_dirs: list, dataset: str | None = None) -> str:
    """The dataset to test runs on: the one they were trained on, or `dataset` if its classes
    are the ones they learnt (e.g. another registered digits dataset)."""
    trained_on = {read_card(r)["data"]["dataset"] for r in run_dirs}
    if dataset is None:
        if len(trained_on) != 1:
            raise RunDirError(f"runs were trained on different datasets "
                              f"({', '.join(sorted(trained_on))}): evaluate them separately")
        return trained_on.pop()
    classes = get_dataset(dataset).classes
    for name in trained_on:
        if get_dataset(name).classes != classes:
            raise RunDirError(f"a model trained on {name} cannot be tested on {dataset}: "
                              "their classes differ")
    return dataset


def evaluate_runs(run_dirs: list, data_dir=None, plots_dir=None, tta: bool = False,
                  dataset: str | None = None) -> dict:
    """Evaluate one run, or an ensemble of runs (probabilities averaged), on the test split of
    their dataset (or `dataset`), optionally with test-time augmentation.

    Plots go to `plots_dir` (default: the run directory for a single run, none for an ensemble).
    """
    dataset = evaluation_dataset(run_dirs, dataset)
    images, labels = load_split(dataset, "test", data_dir)
    probabilities, cards = ensemble_probabilities(run_dirs, images, tta)
    predictions = probabilities.argmax(1)
    classes = get_dataset(dataset).classes
    report = {"runs": [str(r) for r in run_dirs], "models": [c["model"] for c in cards],
              "dataset": dataset, "test_images": len(labels), "tta": tta,
              **classification_report(labels, predictions, classes)}
    plots_dir = plots_dir or (run_dirs[0] if len(run_dirs) == 1 else None)
    if plots_dir is not None:
        report["plots"] = {
            "confusion_matrix": str(save_png(confusion_figure(report["confusion_matrix"], classes),
                                             Path(plots_dir) / "confusion_matrix.png")),
            "misclassified": str(save_png(
                misclassified_figure(images, labels, probabilities, classes,
                                     mistakes_by_confidence(probabilities, labels)),
                Path(plots_dir) / "misclassified.png")),
        }
    return report


def trained_on(cards: list[dict], fingerprint: str) -> dict | None:
    """The card entry of a training source with these contents, if any of the runs had one."""
    for card in cards:
        for source in card["data"]["sources"]:
            if source.get("fingerprint") == fingerprint:
                return source
    return None


def load_folders(run_dirs: list, folders: list, warn=None) -> list[FolderData]:
    """Image folders read with the classes the runs learnt (through `preprocess`, as `predict`
    reads images)."""
    classes = get_dataset(evaluation_dataset(run_dirs)).classes
    return [load_folder(folder, classes, warn=warn) for folder in folders]


def folder_sources(run_dirs: list, folders: list[FolderData], tta: bool = False) -> list[dict]:
    """Accuracy with its 95% interval, per-class metrics and confusion matrix on each folder,
    for one run or an ensemble. A folder that a run trained on is flagged: its numbers are not
    a held-out measure."""
    classes = get_dataset(evaluation_dataset(run_dirs)).classes
    sources = []
    for data in folders:
        probabilities, cards = ensemble_probabilities(run_dirs, data.images, tta)
        source = {"name": data.name, "path": str(data.root), "images": len(data),
                  "left_out": len(data.problems),
                  **classification_report(data.labels, probabilities.argmax(1), classes)}
        seen = trained_on(cards, data.fingerprint)
        if seen is not None:
            source["trained_on"] = {"train_images": seen["train_images"],
                                    "val_images": seen["val_images"]}
        sources.append(source)
    return sources


def evaluate_folders(run_dirs: list, folders: list, tta: bool = False, warn=None) -> dict:
    """`folder_sources` of the image folders at these paths, with what was evaluated."""
    return {"runs": [str(r) for r in run_dirs], "models": [read_card(r)["model"] for r in run_dirs],
            "tta": tta, "sources": folder_sources(run_dirs, load_folders(run_dirs, folders, warn), tta)}
