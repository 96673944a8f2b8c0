"""Evaluation plots as matplotlib Figures drawn off-screen (no pyplot, so the caller's backend
is left alone), saved as PNG files or returned as PNG bytes for a self-contained report."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from .files import atomic_write


def figure(**options):
    """A new off-screen matplotlib Figure."""
    from matplotlib.figure import Figure

    return Figure(**options)


def png_bytes(fig) -> bytes:
    """The figure as PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def save_png(fig, path: Path) -> Path:
    """Write the figure as a PNG file (atomically)."""
    with atomic_write(path) as f:
        f.write(png_bytes(fig))
    return path


def legend_label(text: str) -> str:
    """Text shown as-is in a legend: no mathtext from `$`, not hidden by a leading `_`."""
    text = text.replace("$", r"\$")
    return f" {text}" if text.startswith("_") else text


def confusion_figure(confusion: list[list[int]], classes):
    """Confusion matrix heat map with counts."""
    matrix = np.asarray(confusion)
    fig = figure(figsize=(7, 6))
    ax = fig.subplots()
    ax.imshow(np.log1p(matrix), cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if i == j else "black")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xlabel="predicted",
           ylabel="true", title="Confusion matrix (test set)")
    ax.set_xticklabels(classes, rotation=45, ha="right")
    ax.set_yticklabels(classes)
    return fig


def misclassified_figure(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                         classes, mistakes: np.ndarray, limit: int = 36):
    """Gallery of the first `limit` misclassified images (`mistakes`: their indices, most
    confident first)."""
    predictions = probabilities.argmax(1)
    shown = mistakes[:limit]
    cols = 6
    rows = max(1, math.ceil(len(shown) / cols))
    fig = figure(figsize=(cols * 1.6, rows * 1.9))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, shown, strict=False):
        ax.imshow(images[i], cmap="gray_r")
        ax.set_title(f"true {classes[labels[i]]}\npred {classes[predictions[i]]} "
                     f"{probabilities[i, predictions[i]]:.0%}", fontsize=7)
    fig.suptitle(f"{len(mistakes)} misclassified (most confident first)")
    return fig


def curves_figure(history: list[dict]):
    """Loss and accuracy per epoch, training and (where there is one) validation."""
    fig = figure(figsize=(9, 3.2))
    loss_ax, acc_ax = fig.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    for split in ("train", "val"):
        if all(f"{split}_loss" in row for row in history):
            loss_ax.plot(epochs, [row[f"{split}_loss"] for row in history], marker=".", label=split)
            acc_ax.plot(epochs, [100 * row[f"{split}_accuracy"] for row in history], marker=".",
                        label=split)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def reliability_figure(curves: dict[str, dict]):
    """Reliability diagram: accuracy against confidence per bin, one line per curve
    ({label: reliability table}); a calibrated model lies on the diagonal."""
    fig = figure(figsize=(9, 3.6))
    ax, count_ax = fig.subplots(1, 2)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for label, table in curves.items():
        filled = [b for b in table["bins"] if b["count"]]
        ax.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], marker="o",
                label=legend_label(f"{label} (ECE {table['ece']:.2%})"))
        count_ax.plot([(b["lower"] + b["upper"]) / 2 for b in table["bins"]],
                      [b["count"] for b in table["bins"]], marker=".", label=legend_label(label))
    ax.set(xlabel="confidence", ylabel="accuracy", title="Reliability", xlim=(0, 1), ylim=(0, 1))
    count_ax.set(xlabel="confidence", ylabel="images", yscale="symlog",
                 title="Images per confidence bin")
    for each in (ax, count_ax):
        each.grid(alpha=0.3)
        each.legend(fontsize=7)
    return fig


def refusal_figure(curve: list[dict], threshold: float):
    """Both errors of refusing non-digits over the threshold, the chosen one marked."""
    fig = figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    thresholds = [c["threshold"] for c in curve]
    ax.plot(thresholds, [c["others_refused"] for c in curve], label="non-digits refused")
    ax.plot(thresholds, [c["digits_refused"] for c in curve], label="digits refused")
    ax.axvline(threshold, color="grey", linestyle="--", linewidth=1,
               label=legend_label(f"threshold {threshold:.3f}"))
    ax.set(xlabel="threshold on digit-likeness", ylabel="part refused", ylim=(0, 1.02),
           title="Refusing non-digits")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def robustness_figure(sweeps: dict[str, dict]):
    """Accuracy against perturbation strength, one panel per perturbation and one line per
    model ({label: robustness sweep})."""
    names = list(next(iter(sweeps.values())))
    cols = 4
    rows = math.ceil(len(names) / cols)
    fig = figure(figsize=(cols * 3.2, rows * 2.8))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names, strict=False):
        for label, sweep in sweeps.items():
            ax.plot(sweep[name]["levels"], [100 * a for a in sweep[name]["accuracy"]],
                    marker="o", label=legend_label(label))
        unit = next(iter(sweeps.values()))[name]["unit"]
        ax.set(title=name.replace("_", " "), xlabel=unit, ylabel="accuracy (%)", ylim=(0, 100))
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
