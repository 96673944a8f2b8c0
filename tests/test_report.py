"""Evaluation reports: `baseline`, `fast` and `accurate` compared, and a Fashion-MNIST model,
each trained briefly (CI-sized) with a held-out slice for temperature scaling."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from digitrec import data
from digitrec.calibration import softmax
from digitrec.checkpoint import load_model, read_card
from digitrec.config import recipe
from digitrec.evaluate import evaluate_runs, predict_logits
from digitrec.export import export_run
from digitrec.predict import Predictor
from digitrec.report import build_report, run_names
from digitrec.train import train

SMALL = {"epochs": 1, "train_size": 8000, "val_size": 2000}
ROBUSTNESS_IMAGES = 200
RUN_KEYS = {"accuracy", "accuracy_ci95", "per_class", "confusion_matrix", "curves",
            "misclassified", "calibration", "robustness", "robustness_summary", "size", "speed"}
PERTURBATIONS = {"rotation", "scale", "translation", "gaussian_noise", "blur", "stroke",
                 "inversion"}


@pytest.fixture(scope="module")
def zoo(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The three MNIST models, briefly trained."""
    root = tmp_path_factory.mktemp("zoo")
    for name in ("baseline", "fast", "accurate"):
        train(replace(recipe(name), **SMALL), root / name, data_root, log=lambda *_: None)
    return [root / name for name in ("baseline", "fast", "accurate")]


@pytest.fixture(scope="module")
def comparison(zoo: list[Path], data_root: Path,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("report")
    return build_report(zoo, out, data_root, robustness_images=ROBUSTNESS_IMAGES), out


def parse_html(path: Path) -> ET.Element:
    """The page parsed as XML: a strict check that the markup is well-formed."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    return ET.fromstring(text.split("\n", 1)[1])


def headings(root: ET.Element) -> list[str]:
    return ["".join(h.itertext()) for h in root.iter()
            if h.tag.split("}")[-1] in ("h1", "h2", "h3")]


def check_self_contained(root: ET.Element) -> None:
    images = [e for e in root.iter() if e.tag.endswith("img")]
    assert images and all(e.get("src").startswith("data:image/png;base64,") for e in images)
    assert not [e for e in root.iter() if e.tag.split("}")[-1] in ("script", "link")]


def test_comparison_report_has_every_section(comparison: tuple[dict, Path]):
    report, out = comparison
    assert json.loads((out / "report.json").read_text())["runs"][0]["name"] == "baseline"
    assert [r["model"] for r in report["runs"]] == ["baseline", "fast", "accurate"]
    root = parse_html(out / "report.html")
    check_self_contained(root)
    titles = headings(root)
    assert "Comparison" in titles
    for section in ("Per class", "Training curves", "Calibration", "Robustness"):
        assert titles.count(section) == 3, section
    assert sum(t.startswith("Misclassified") for t in titles) == 3
    for run in report["runs"]:
        assert set(run) >= RUN_KEYS
        assert set(run["robustness"]) == PERTURBATIONS
        low, high = run["accuracy_ci95"]
        assert low < run["accuracy"] < high
        assert run["accuracy"] == pytest.approx(run["card_test_accuracy"], abs=1e-4)
        assert run["name"] == run["model"]
        assert run["curves"] and run["size"]["parameters"] > 0 and run["speed"]["images_per_s"] > 0
    assert report["ensemble"]["members"] == 3
    assert "Refusing non-digits" in titles
    rejection = report["rejection"]
    assert rejection["verifier"] == "shipped" and rejection["digits"] == report["test_images"]
    assert rejection["digits_refused"] <= 0.01 and rejection["others_refused"] >= 0.85
    refused = [c["digits_refused"] for c in rejection["curve"]]
    assert len(refused) == 41 and refused == sorted(refused)


def test_misclassified_are_the_most_confident_mistakes_with_top3(
        comparison: tuple[dict, Path], zoo: list[Path], mnist_test):
    run = comparison[0]["runs"][0]
    images, labels = mnist_test
    model, card = load_model(zoo[0])
    logits = predict_logits(model, torch.from_numpy(images).unsqueeze(1)).numpy()
    probabilities = softmax(logits, card["calibration"]["temperature"])
    wrong = np.flatnonzero(probabilities.argmax(1) != labels)
    most_confident = wrong[np.argsort(-probabilities[wrong].max(1), kind="stable")][:48]
    mistakes = run["misclassified"]
    assert len(wrong) > 48 and [m["index"] for m in mistakes] == most_confident.tolist()
    for m in mistakes:
        assert m["label"] != m["prediction"] == m["top"][0]["class"] and len(m["top"]) == 3
        assert m["confidence"] == m["top"][0]["probability"]


def test_temperature_scaling_does_not_worsen_test_calibration(comparison: tuple[dict, Path]):
    """The temperature is fitted on held-out training images; the test set is another
    held-out set, where the calibration error must not grow."""
    for run in comparison[0]["runs"]:
        calibration = run["calibration"]
        assert calibration["after"]["ece"] <= calibration["before"]["ece"], run["name"]
        assert calibration["nll_after"] <= calibration["nll_before"], run["name"]


def test_baseline_accuracy_falls_as_rotation_grows(comparison: tuple[dict, Path]):
    sweep = comparison[0]["runs"][0]["robustness"]["rotation"]
    accuracy = sweep["accuracy"]
    assert sweep["levels"] == sorted(sweep["levels"]) and sweep["levels"][0] == 0
    assert all(b <= a + 0.02 for a, b in itertools.pairwise(accuracy)), accuracy
    assert accuracy[0] - accuracy[-1] > 0.5
    inversion = comparison[0]["runs"][0]["robustness"]["inversion"]["accuracy"]
    assert inversion[1] < inversion[0]


def test_predictors_use_the_fitted_temperature(zoo: list[Path], mnist_test, data_root: Path,
                                              tmp_path: Path):
    """Run directory (PyTorch) and exported ONNX file alike: softmax(logits / temperature)."""
    run = zoo[1]
    temperature = read_card(run)["calibration"]["temperature"]
    assert temperature != pytest.approx(1.0, abs=0.01)
    images = mnist_test[0][:8]
    model, _ = load_model(run)
    logits = predict_logits(model, torch.from_numpy(images).unsqueeze(1)).numpy()
    onnx_file = tmp_path / "fast.onnx"
    export_run(run, onnx_file, data_dir=data_root, log=lambda *_: None)
    for source in (run, onnx_file):
        answers = Predictor(source).classify(images / np.float32(255))
        np.testing.assert_allclose([a.probabilities for a in answers],
                                   softmax(logits, temperature), atol=1e-4)


def digitrec(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digitrec", *args], capture_output=True,
                          text=True, timeout=600)


def test_fashion_mnist_end_to_end(data_root: Path, tmp_path: Path):
    data = digitrec("data", "--dataset", "fashion-mnist", "--data-dir", str(data_root))
    assert data.returncode == 0, data.stderr
    run = tmp_path / "fashion"
    trained = digitrec("train", "--model", "baseline", "--dataset", "fashion-mnist", "--epochs",
                       "1", "--train-size", "8000", "--val-size", "2000", "--out", str(run),
                       "--data-dir", str(data_root))
    assert trained.returncode == 0, trained.stderr
    result = digitrec("evaluate", str(run), "--report", str(tmp_path / "report"),
                      "--robustness-images", "300", "--data-dir", str(data_root))
    assert result.returncode == 0, result.stderr
    assert re.search(r"^fashion\s+\d+\.\d\d% \(", result.stdout, re.M)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["dataset"] == "fashion-mnist" and report["classes"][9] == "Ankle boot"
    assert 0.7 < report["runs"][0]["accuracy"] < 1
    assert "rejection" not in report  # refusing non-digits is about digits
    root = parse_html(tmp_path / "report" / "report.html")
    check_self_contained(root)
    assert "Ankle boot" in "".join(root.itertext())


@pytest.mark.parametrize("args, message", [
    (["--report", "R", "--tta"], "cannot be combined"),
    (["--report", "R", "--robustness-images", "0"], "at least 1"),
    (["--robustness-images", "100"], "needs --report"),
    (["--verifier", "v.onnx"], "--verifier needs --report"),
    (["--dataset", "fashion-mnist"], "classes differ"),
    (["--dataset", "no-such-set"], "unknown dataset"),
])
def test_evaluate_refuses_bad_options_clearly(zoo: list[Path], data_root: Path, tmp_path: Path,
                                              args: list[str], message: str):
    args = [str(tmp_path / a) if a == "R" else a for a in args]
    result = digitrec("evaluate", str(zoo[0]), *args, "--data-dir", str(data_root))
    assert result.returncode == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_run_without_held_out_images_is_reported_uncalibrated(trained_run, data_root: Path,
                                                              tmp_path: Path):
    run, card = trained_run
    assert "calibration" not in card  # the accurate recipe trains on every training image
    report = build_report([run], tmp_path, data_root, robustness_images=200)
    calibration = report["runs"][0]["calibration"]
    assert calibration["temperature"] == 1.0 and calibration["after"] is None
    assert "ensemble" not in report
    text = "".join(parse_html(tmp_path / "report.html").itertext())
    assert "No temperature" in text and "Comparison" not in text


def test_runs_can_be_tested_on_another_registered_dataset_with_their_classes(
        zoo: list[Path], data_root: Path, tmp_path: Path):
    """A new IDX dataset is one `register_dataset` call; here, a second copy of MNIST's
    test files under another name."""
    spec = data.DATASETS["mnist"]
    copy = tmp_path / "digits-copy"
    copy.mkdir()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (copy / f"{name}.gz").symlink_to(data_root / "mnist" / f"{name}.gz")
    data.register_dataset(data.DatasetSpec(name="digits-copy", classes=spec.classes, mirrors=(),
                                           sha256=spec.sha256, torchvision_name="DigitsCopy"))
    try:
        report = evaluate_runs(zoo[:1], data_dir=tmp_path, dataset="digits-copy")
    finally:
        del data.DATASETS["digits-copy"]
    assert report["dataset"] == "digits-copy"
    assert report["accuracy"] == pytest.approx(read_card(zoo[0])["metrics"]["test_accuracy"],
                                               abs=1e-4)


def test_run_names_are_short_and_distinct(tmp_path: Path):
    runs = [tmp_path / "a" / "run", tmp_path / "b" / "run", tmp_path / "c", tmp_path / "c"]
    assert run_names(runs) == ["a/run", "b/run", "c #1", "c #2"]
