"""Evaluation: metrics arithmetic, ensembles of runs, and their errors."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from digitrec.checkpoint import load_model
from digitrec.config import TrainConfig
from digitrec.data import load_split
from digitrec.errors import RunDirError
from digitrec.evaluate import (
    classification_report,
    evaluate_runs,
    predict_logits,
    tta_probabilities,
)
from digitrec.train import train

TINY = TrainConfig(epochs=1, batch_size=100, train_size=2000, val_size=0)


def test_classification_report_arithmetic():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 1, 1, 1, 2, 0])
    report = classification_report(labels, predictions, ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    a, b, c = report["per_class"]
    assert (a["precision"], a["recall"], a["support"]) == (0.5, 0.5, 2)
    assert b["precision"] == pytest.approx(2 / 3) and b["recall"] == 1.0
    assert c["f1"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)


@pytest.fixture(scope="module")
def two_runs(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    for seed in (0, 1):
        train(replace(TINY, seed=seed), root / f"seed{seed}", data_root, log=lambda *_: None)
    return [root / "seed0", root / "seed1"]


def test_ensemble_averages_member_probabilities(two_runs: list[Path], data_root: Path):
    report = evaluate_runs(two_runs, data_dir=data_root)
    images, labels = load_split("mnist", "test", data_root)
    x = torch.from_numpy(images).unsqueeze(1)
    mean = sum(predict_logits(load_model(r)[0], x).softmax(1) for r in two_runs) / 2
    assert report["accuracy"] == (mean.argmax(1).numpy() == labels).mean()
    assert report["runs"] == [str(r) for r in two_runs] and "plots" not in report


def test_test_time_augmentation_averages_shifted_views(two_runs: list[Path], data_root: Path,
                                                       tmp_path: Path):
    model, _ = load_model(two_runs[0])
    images = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    images[:, :, 10:18, 12:15] = 255
    views = [images, images.roll(1, 2), images.roll(-1, 2), images.roll(1, 3), images.roll(-1, 3)]
    expected = sum(predict_logits(model, v).softmax(1) for v in views) / 5
    torch.testing.assert_close(tta_probabilities(model, images), expected)
    report = evaluate_runs(two_runs[:1], data_dir=data_root, plots_dir=tmp_path, tta=True)
    assert report["tta"] and 0.5 < report["accuracy"] <= 1


def test_cli_evaluates_an_ensemble(two_runs: list[Path], data_root: Path):
    result = subprocess.run([sys.executable, "-m", "digitrec", "evaluate", *map(str, two_runs),
                             "--json", "--data-dir", str(data_root)],
                            capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(result.stdout)
    assert len(report["runs"]) == 2 and 0.5 < report["accuracy"] <= 1


def test_ensemble_of_different_datasets_is_refused(two_runs: list[Path], data_root: Path,
                                                   tmp_path: Path):
    if not (data_root / "fashion-mnist").is_dir():
        pytest.skip("no fashion-mnist files")
    train(replace(TINY, dataset="fashion-mnist", train_size=200), tmp_path / "fashion",
          data_root, log=lambda *_: None)
    with pytest.raises(RunDirError, match="different datasets"):
        evaluate_runs([two_runs[0], tmp_path / "fashion"], data_dir=data_root)
