"""End to end on the real data, as a user runs it: train baseline for one epoch, then evaluate."""

import json
import subprocess
import sys
from pathlib import Path


def digitrec(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digitrec", *args], capture_output=True,
                          text=True, timeout=900, check=True)


def test_baseline_one_epoch_reaches_98_percent_and_evaluate_agrees(data_root: Path,
                                                                   tmp_path: Path):
    run = tmp_path / "run"
    digitrec("train", "--model", "baseline", "--epochs", "1", "--out", str(run),
             "--data-dir", str(data_root))
    card = json.loads((run / "card.json").read_text())
    assert card["metrics"]["test_accuracy"] >= 0.98

    report = json.loads(digitrec("evaluate", str(run), "--json", "--data-dir",
                                 str(data_root)).stdout)
    assert report["accuracy"] == card["metrics"]["test_accuracy"]
    assert sum(map(sum, report["confusion_matrix"])) == report["test_images"] == 10000
    assert len(report["per_class"]) == 10
    assert all(0.9 < row["f1"] <= 1 for row in report["per_class"])
    for plot in report["plots"].values():
        assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    table = digitrec("evaluate", str(run), "--data-dir", str(data_root)).stdout
    assert f"accuracy {card['metrics']['test_accuracy']:.2%}" in table
