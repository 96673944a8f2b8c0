"""Evaluation: predictions on a split, accuracy, per-class precision/recall/F1, confusion matrix,
and the plots that go with them (confusion matrix and misclassified-examples gallery as PNG)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .checkpoint import atomic_write, load_model, read_card
from .data import get_dataset, load_split
from .errors import RunDirError

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


def classification_report(labels: np.ndarray, predictions: np.ndarray,
                          class_names: list[str] | tuple[str, ...]) -> dict:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix
    (rows: true class, columns: predicted class)."""
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
    return {"accuracy": float(true_pos.sum() / max(len(labels), 1)), "per_class": per_class,
            "confusion_matrix": confusion.tolist()}


TTA_SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # (down, right) in pixels


def tta_probabilities(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Test-time augmentation: mean softmax over the images and their one-pixel shifts."""
    views = [torch.roll(images, shifts=shift, dims=(2, 3)) for shift in TTA_SHIFTS]
    return torch.stack([predict_logits(model, v).softmax(1) for v in views]).mean(0)


def ensemble_probabilities(run_dirs: list, images: np.ndarray,
                           tta: bool = False) -> tuple[np.ndarray, list[dict]]:
    """Mean softmax probabilities of several runs' models (each with test-time augmentation
    if `tta`), and each run's card."""
    x = torch.from_numpy(images).unsqueeze(1)
    total, cards = None, []
    for run_dir in run_dirs:
        model, card = load_model(run_dir)
        probabilities = (tta_probabilities(model, x) if tta
                         else predict_logits(model, x).softmax(1)).numpy()
        total = probabilities if total is None else total + probabilities
        cards.append(card)
    return total / len(run_dirs), cards


def evaluate_runs(run_dirs: list, data_dir=None, plots_dir=None, tta: bool = False) -> dict:
    """Evaluate one run, or an ensemble of runs (probabilities averaged), on the test split,
    optionally with test-time augmentation.

    Plots go to `plots_dir` (default: the run directory for a single run, none for an ensemble).
    """
    datasets = {read_card(r)["data"]["dataset"] for r in run_dirs}
    if len(datasets) != 1:
        raise RunDirError(f"runs were trained on different datasets ({', '.join(datasets)}): "
                          "an ensemble needs one")
    dataset = datasets.pop()
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
            "confusion_matrix": str(plot_confusion(report["confusion_matrix"], classes,
                                                   Path(plots_dir) / "confusion_matrix.png")),
            "misclassified": str(plot_misclassified(images, labels, probabilities, classes,
                                                    Path(plots_dir) / "misclassified.png")),
        }
    return report


def _figure(**options):
    """A matplotlib Figure drawn off-screen (no pyplot: the caller's backend is left alone)."""
    from matplotlib.figure import Figure

    return Figure(**options)


def _save_figure(fig, path: Path) -> Path:
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100, bbox_inches="tight")
    return path


def plot_confusion(confusion: list[list[int]], classes, path: Path) -> Path:
    """Confusion matrix heat map with counts, saved as PNG."""
    matrix = np.asarray(confusion)
    fig = _figure(figsize=(7, 6))
    ax = fig.subplots()
    ax.imshow(np.log1p(matrix), cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if i == j else "black")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xlabel="predicted",
           ylabel="true", title="Confusion matrix (test set)")
    ax.set_xticklabels(classes, rotation=45, ha="right")
    ax.set_yticklabels(classes)
    return _save_figure(fig, path)


def plot_misclassified(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                       classes, path: Path, limit: int = 36) -> Path:
    """Gallery of misclassified images, most confident mistakes first, saved as PNG."""
    predictions = probabilities.argmax(1)
    wrong = np.flatnonzero(predictions != labels)
    wrong = wrong[np.argsort(-probabilities[wrong, predictions[wrong]])][:limit]
    cols = 6
    rows = max(1, math.ceil(len(wrong) / cols))
    fig = _figure(figsize=(cols * 1.6, rows * 1.9))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong, strict=False):
        ax.imshow(images[i], cmap="gray_r")
        ax.set_title(f"true {classes[labels[i]]}\npred {classes[predictions[i]]} "
                     f"{probabilities[i, predictions[i]]:.0%}", fontsize=7)
    fig.suptitle(f"{len(np.flatnonzero(predictions != labels))} misclassified "
                 "(most confident first)")
    return _save_figure(fig, path)
