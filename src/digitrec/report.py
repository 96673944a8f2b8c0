"""Evaluation reports: how one or more trained runs behave on a test set, written as
`report.json` (every number) and a self-contained `report.html` (see `report_html`).

Per run: accuracy with its 95% interval, per-class precision/recall/F1, confusion matrix,
training curves, the most confident mistakes, calibration before and after the run's
temperature, a robustness sweep, size and speed. Several runs are also compared side by side,
with their ensemble. For digit test sets, the verifier's refusal of non-digits: how many test
digits it refuses against how many non-digits, over every threshold and at its own.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import numpy as np
import torch

from . import __version__
from .calibration import negative_log_likelihood, reliability, softmax
from .card import ModelCard, card_temperature
from .checkpoint import METRICS, WEIGHTS, load_model
from .data import get_dataset, load_split
from .errors import ConfigError
from .evaluate import (
    classification_report,
    evaluation_dataset,
    folder_sources,
    load_folders,
    mistakes_by_confidence,
    predict_logits,
)
from .files import read_jsonl, write_json
from .folders import DIGITS
from .predict import OnnxBackend, digit_likeness, load_verifier
from .rejection import held_out_nondigits, normalised, refusal
from .robustness import robustness_sweep

REPORT_VERSION = 1  # of report.json's layout
SPEED_BATCH = 256
SPEED_SECONDS = 1.0
TOP_K = 3
REPORT_NONDIGITS, REPORT_SEED = 2000, 1_000_003  # non-digits a report refuses; a seed of its own


class RunSection(TypedDict):
    """What the report says of one run (`run_section`)."""

    run: str
    name: str
    model: str
    trained_on: str
    train_images: int
    epochs: int | None
    train_seconds: float | None
    command: str | None
    card_test_accuracy: float
    accuracy: float
    accuracy_ci95: list[float]
    per_class: list[dict[str, Any]]
    confusion_matrix: list[list[int]]
    calibration: dict[str, Any]
    misclassified: list[dict[str, Any]]
    robustness: dict[str, dict[str, Any]]
    robustness_summary: dict[str, float]
    robustness_images: int
    curves: list[dict[str, Any]]
    held_out: dict[str, dict[str, float]]
    size: dict[str, int]
    speed: dict[str, Any]
    sources: list[dict[str, Any]]


class Report(TypedDict):
    """report.json: the runs evaluated on one test set, compared, and what the verifier refuses."""

    version: int
    digitrec_version: str
    created: str
    dataset: str
    classes: list[str]
    test_images: int
    runs: list[RunSection]
    ensemble: NotRequired[dict[str, Any]]  # with several runs
    rejection: NotRequired[dict[str, Any]]  # on digit test sets


def inference_speed(model: torch.nn.Module, images: torch.Tensor,
                    seconds: float = SPEED_SECONDS) -> dict:
    """Eager PyTorch on this machine: images/s at batch SPEED_BATCH and the median latency of
    one image, measured for about `seconds` in all."""
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
    return [{"index": int(i), "label": classes[labels[i]], "prediction": classes[predictions[i]],
             "confidence": float(probabilities[i, predictions[i]]),
             "top": [{"class": classes[k], "probability": float(probabilities[i, k])}
                     for k in np.argsort(-probabilities[i])[:TOP_K]]}
            for i in mistakes_by_confidence(probabilities, labels)[:limit]]


def calibration_section(card: ModelCard, logits: np.ndarray, labels: np.ndarray) -> dict:
    """Test-set calibration without and with the temperature the run fitted on held-out
    training images (`after` is None when the run has no temperature)."""
    temperature = card_temperature(card)
    fitted = temperature != 1.0
    held_out = card["data"]["val_images"]
    return {"temperature": temperature, "held_out_images": held_out,
            "fitted_on": (f"{card['calibration']['fitted_on']} "
                          f"({held_out} training images held out)" if fitted else None),
            "nll_before": negative_log_likelihood(logits, labels),
            "nll_after": negative_log_likelihood(logits, labels, temperature) if fitted else None,
            "before": reliability(softmax(logits), labels),
            "after": reliability(softmax(logits, temperature), labels) if fitted else None}


def robustness_summary(sweep: dict) -> dict[str, float]:
    """Per perturbation, the mean accuracy over its damaging levels."""
    return {name: float(np.mean([a for level, a in zip(s["levels"], s["accuracy"], strict=True)
                                 if level != s["neutral"]]))
            for name, s in sweep.items()}


def run_names(run_dirs: list) -> list[str]:
    """Short, distinct names for runs: the directory name, with its parent's where two
    directories share a name."""
    paths = [Path(r).resolve() for r in run_dirs]
    names = [p.name or str(p) for p in paths]
    longer = [f"{p.parent.name}/{n}" for p, n in zip(paths, names, strict=True)]
    names = [long if names.count(n) > 1 and longer.count(long) == 1 else n
             for n, long in zip(names, longer, strict=True)]
    return [n if names.count(n) == 1 else f"{n} #{names[:i + 1].count(n)}"
            for i, n in enumerate(names)]


def card_facts(card: ModelCard) -> dict:
    """What the report quotes from a model card."""
    return {"model": card["model"], "trained_on": card["data"]["dataset"],
            "train_images": card["data"]["train_images"], "epochs": card["config"].get("epochs"),
            "train_seconds": card["train_seconds"], "command": card["command"],
            "card_test_accuracy": card["metrics"]["test_accuracy"]}


def run_section(run_dir: Path, name: str, images: np.ndarray, labels: np.ndarray, classes,
                robustness_images: int, misclassified: int) -> tuple[RunSection, np.ndarray]:
    """Everything the report says about one run, and its calibrated test probabilities."""
    model, card = load_model(run_dir)
    x = torch.from_numpy(images).unsqueeze(1)
    logits = predict_logits(model, x).numpy()
    probabilities = softmax(logits, card_temperature(card))
    sweep = robustness_sweep(lambda batch: predict_logits(model, batch).argmax(1),
                             x[:robustness_images], torch.from_numpy(labels[:robustness_images]))
    section = {
        "run": str(run_dir), "name": name, **card_facts(card),
        **classification_report(labels, probabilities.argmax(1), classes),
        "calibration": calibration_section(card, logits, labels),
        "misclassified": misclassified_examples(probabilities, labels, classes, misclassified),
        "robustness": sweep, "robustness_summary": robustness_summary(sweep),
        "robustness_images": min(robustness_images, len(labels)),
        "curves": read_jsonl(Path(run_dir) / METRICS),
        "held_out": card["metrics"].get("val_sources", {}),
        "size": {"parameters": sum(p.numel() for p in model.parameters()),
                 "weights_bytes": (Path(run_dir) / WEIGHTS).stat().st_size},
        "speed": inference_speed(model, x),
    }
    return section, probabilities


def rejection_section(verifier: OnnxBackend, name: str, images: np.ndarray) -> dict:
    """How the verifier refuses: the test digits (normalised as the predictor normalises an
    image) against non-digits in fonts it has not learnt from and new drawings, at its
    threshold and over all."""
    others = held_out_nondigits(REPORT_NONDIGITS, REPORT_SEED)
    section = refusal(digit_likeness(verifier.probabilities(normalised(images))),
                      digit_likeness(verifier.probabilities(others)), verifier.threshold)
    return {"verifier": name, **section}


def ensemble_section(probabilities: list[np.ndarray], labels: np.ndarray, classes) -> dict:
    """Accuracy and calibration of the runs' mean probabilities (each run's with its own
    temperature, where it has one)."""
    mean = np.mean(probabilities, axis=0)
    report = classification_report(labels, mean.argmax(1), classes)
    return {"members": len(probabilities), "accuracy": report["accuracy"],
            "accuracy_ci95": report["accuracy_ci95"], "ece": reliability(mean, labels)["ece"]}


def build_report(run_dirs: list, out_dir, data_dir=None, dataset: str | None = None,
                 robustness_images: int | None = None, misclassified: int = 48,
                 folders: list | None = None, warn=None,
                 verifier: str | os.PathLike | None = None) -> Report:
    """Evaluate runs on a test set and write `report.json` and `report.html` into `out_dir`;
    returns the report. `robustness_images` limits the sweep to the first N test images;
    each image folder in `folders` is evaluated per run as a source of its own; `verifier`
    (None: the shipped one) is measured on digit test sets."""
    from .report_html import write_html

    if robustness_images is not None and robustness_images < 1:
        raise ConfigError("robustness_images must be at least 1")
    dataset = evaluation_dataset(run_dirs, dataset)
    images, labels = load_split(dataset, "test", data_dir)
    classes = get_dataset(dataset).classes
    digits = tuple(classes) == DIGITS
    if verifier is not None and not digits:
        raise ConfigError(f"--verifier: {dataset} is not a set of digits, so nothing is "
                          f"refused")
    judge = load_verifier(verifier) if digits else None
    limit = robustness_images or len(labels)
    sections, probabilities = zip(*(run_section(Path(r), name, images, labels, classes, limit,
                                                misclassified)
                                    for r, name in zip(run_dirs, run_names(run_dirs),
                                                       strict=True)), strict=True)
    loaded = load_folders(run_dirs, folders or [], warn)
    for section in sections:
        section["sources"] = folder_sources([section["run"]], loaded)
    report = Report(version=REPORT_VERSION, digitrec_version=__version__,
                    created=time.strftime("%Y-%m-%d %H:%M:%S"), dataset=dataset,
                    classes=list(classes), test_images=len(labels), runs=list(sections))
    if len(sections) > 1:
        report["ensemble"] = ensemble_section(list(probabilities), labels, classes)
    if judge is not None:
        report["rejection"] = rejection_section(judge, str(verifier or "shipped"), images)
    out_dir = Path(out_dir)
    write_json(out_dir / "report.json", report)
    write_html(out_dir / "report.html", report, images)
    return report
