"""Evaluation reports: how one or more trained runs behave on a test set, written as
`report.json` (every number) and a self-contained `report.html` (see `report_html`).

Per run: accuracy with its 95% interval, per-class precision/recall/F1, confusion matrix,
training curves, the most confident mistakes, calibration before and after the run's
temperature, a robustness sweep, size and speed. Several runs are also compared side by side,
with their ensemble.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .calibration import card_temperature, negative_log_likelihood, reliability, softmax
from .checkpoint import METRICS, WEIGHTS, load_model, read_jsonl, write_json
from .data import get_dataset, load_split
from .evaluate import classification_report, evaluation_dataset, predict_logits
from .robustness import robustness_sweep

SPEED_BATCH = 256
SPEED_SECONDS = 1.0
TOP_K = 3


def inference_speed(model: torch.nn.Module, images: torch.Tensor,
                    seconds: float = SPEED_SECONDS) -> dict:
    """Eager PyTorch on this machine: images/s at batch SPEED_BATCH and the median latency of
    one image, each measured for about `seconds`."""
    batch = images[:SPEED_BATCH]
    predict_logits(model, batch)  # warm-up
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < seconds / 2 or calls == 0:
        predict_logits(model, batch)
        calls += 1
    throughput = calls * len(batch) / (time.perf_counter() - start)
    latencies, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds / 2 or len(latencies) < 5:
        begin = time.perf_counter()
        predict_logits(model, images[:1])
        latencies.append(time.perf_counter() - begin)
    return {"images_per_s": throughput, "batch": len(batch),
            "latency_ms": 1000 * statistics.median(latencies), "device": "cpu",
            "threads": torch.get_num_threads()}


def misclassified_examples(probabilities: np.ndarray, labels: np.ndarray, classes,
                           limit: int) -> list[dict]:
    """The mistakes, most confident first: test index, true and predicted class, top-k."""
    predictions = probabilities.argmax(1)
    wrong = np.flatnonzero(predictions != labels)
    wrong = wrong[np.argsort(-probabilities[wrong, predictions[wrong]], kind="stable")][:limit]
    return [{"index": int(i), "label": classes[labels[i]], "prediction": classes[predictions[i]],
             "confidence": float(probabilities[i, predictions[i]]),
             "top": [{"class": classes[k], "probability": float(probabilities[i, k])}
                     for k in np.argsort(-probabilities[i])[:TOP_K]]}
            for i in wrong]


def calibration_section(card: dict, logits: np.ndarray, labels: np.ndarray) -> dict:
    """Test-set calibration without and with the temperature the run fitted on held-out
    training images (`after` is None when the run held none out)."""
    fitted = card.get("calibration")
    temperature = card_temperature(card)
    return {"temperature": temperature,
            "fitted_on": (f"{fitted['fitted_on']} ({fitted['images']} training images held out)"
                          if fitted else None),
            "nll_before": negative_log_likelihood(logits, labels),
            "nll_after": negative_log_likelihood(logits, labels, temperature) if fitted else None,
            "before": reliability(softmax(logits), labels),
            "after": reliability(softmax(logits, temperature), labels) if fitted else None}


def robustness_summary(sweep: dict) -> dict[str, float]:
    """Per perturbation, the mean accuracy over its damaging levels."""
    return {name: float(np.mean([a for level, a in zip(s["levels"], s["accuracy"], strict=True)
                                 if level != s["neutral"]]))
            for name, s in sweep.items()}


def run_section(run_dir: Path, images: np.ndarray, labels: np.ndarray, classes,
                robustness_images: int, misclassified: int) -> tuple[dict, np.ndarray]:
    """Everything the report says about one run, and its calibrated test probabilities."""
    model, card = load_model(run_dir)
    x = torch.from_numpy(images).unsqueeze(1)
    logits = predict_logits(model, x).numpy()
    probabilities = softmax(logits, card_temperature(card))
    sweep = robustness_sweep(lambda batch: predict_logits(model, batch).argmax(1),
                             x[:robustness_images], torch.from_numpy(labels[:robustness_images]))
    section = {
        "run": str(run_dir), "name": Path(run_dir).name, "model": card["model"],
        "trained_on": card["data"]["dataset"], "train_images": card["data"]["train_images"],
        "epochs": card["config"]["epochs"], "train_seconds": card.get("train_seconds"),
        "command": card.get("command"), "card_test_accuracy": card["metrics"]["test_accuracy"],
        **classification_report(labels, probabilities.argmax(1), classes),
        "calibration": calibration_section(card, logits, labels),
        "misclassified": misclassified_examples(probabilities, labels, classes, misclassified),
        "robustness": sweep, "robustness_summary": robustness_summary(sweep),
        "robustness_images": min(robustness_images, len(labels)),
        "curves": read_jsonl(Path(run_dir) / METRICS),
        "size": {"parameters": sum(p.numel() for p in model.parameters()),
                 "weights_bytes": (Path(run_dir) / WEIGHTS).stat().st_size},
        "speed": inference_speed(model, x),
    }
    return section, probabilities


def ensemble_section(probabilities: list[np.ndarray], labels: np.ndarray, classes) -> dict:
    """Accuracy and calibration of the runs' mean (calibrated) probabilities."""
    mean = np.mean(probabilities, axis=0)
    report = classification_report(labels, mean.argmax(1), classes)
    return {"members": len(probabilities), "accuracy": report["accuracy"],
            "accuracy_ci95": report["accuracy_ci95"], "ece": reliability(mean, labels)["ece"]}


def build_report(run_dirs: list, out_dir, data_dir=None, dataset: str | None = None,
                 robustness_images: int | None = None, misclassified: int = 48) -> dict:
    """Evaluate runs on a test set and write `report.json` and `report.html` into `out_dir`;
    returns the report. `robustness_images` limits the sweep to the first N test images."""
    from .report_html import write_html

    dataset = evaluation_dataset(run_dirs, dataset)
    images, labels = load_split(dataset, "test", data_dir)
    classes = get_dataset(dataset).classes
    limit = robustness_images or len(labels)
    sections, probabilities = zip(*(run_section(Path(r), images, labels, classes, limit,
                                                misclassified) for r in run_dirs), strict=True)
    report = {"digitrec_version": __version__, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
              "dataset": dataset, "classes": list(classes), "test_images": len(labels),
              "runs": list(sections)}
    if len(sections) > 1:
        report["ensemble"] = ensemble_section(list(probabilities), labels, classes)
    out_dir = Path(out_dir)
    write_json(out_dir / "report.json", report)
    write_html(out_dir / "report.html", report, images)
    return report
