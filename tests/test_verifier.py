"""The verifier: its training examples, a verifier trained by this test session, loading it,
and `digitrec train-verifier`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitrec.errors import ModelError
from digitrec.predict import (
    WHOLE,
    OnnxBackend,
    default_model,
    digit_likeness,
    load_backend,
    load_verifier,
    shipped,
)
from digitrec.preprocess import normalise_digit
from digitrec.rejection import MAX_REFUSED, held_out_nondigits, normalised
from digitrec.verifier import cut_examples, examples, side_by_side


def bar(width: int) -> np.ndarray:
    digit = np.zeros((28, width), np.uint8)
    digit[4:24] = 255
    return digit


def test_side_by_side_overlaps_and_drops():
    line, start = side_by_side(bar(5), bar(7), gap=-2, drop=3)
    assert line.shape == (31, 10) and start == 3  # 5 + 7 - 2 columns, 3 rows lower
    assert line[:, :5].any(1).nonzero()[0].tolist() == list(range(4, 27))  # both in the overlap
    assert line[:, 5:].any(1).nonzero()[0].tolist() == list(range(7, 27))  # the right one only
    line, start = side_by_side(bar(2), bar(6), gap=-3, drop=0)
    assert line.shape == (28, 6) and start == 0  # the right one cannot start before column 0


def test_examples_are_balanced_normalised_and_reproducible(mnist_test):
    images = mnist_test[0][:500]
    x, y = cut_examples(images, 40, seed=0)
    assert x.shape == (80, 28, 28) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 1
    assert y.tolist() == [0] * 40 + [1] * 40  # pieces, then whole digits
    same, _ = cut_examples(images, 40, seed=0)
    other, _ = cut_examples(images, 40, seed=1)
    assert np.array_equal(x, same) and not np.array_equal(x, other)
    # whole digits are MNIST digits as a cut-out digit is normalised
    assert any(np.array_equal(x[-1], normalise_digit(d / np.float32(255))) for d in images)
    others = np.stack([normalise_digit(d / np.float32(255)) for d in images[:7]])
    x, y = examples(images, others, 40, seed=0, photos=5)
    assert np.bincount(y).tolist() == [40, 45, 12]  # photographed digits and others added
    assert np.array_equal(x[:80], cut_examples(images, 40, seed=0)[0])


def whole_probability(path: Path, digits: list[np.ndarray]) -> np.ndarray:
    batch = np.stack([normalise_digit(d / np.float32(255)) for d in digits])
    return load_verifier(path).probabilities(batch)[:, WHOLE]


def test_trained_verifier_tells_whole_digits_from_pairs_and_halves(trained_verifier, mnist_test):
    images = mnist_test[0]
    assert OnnxBackend.load(trained_verifier).metadata["test_accuracy"] >= 0.95
    whole = whole_probability(trained_verifier, list(images[:100]))
    pairs = whole_probability(trained_verifier, [side_by_side(images[i], images[i + 1], 0, 2)[0]
                                                 for i in range(100, 200)])
    halves = whole_probability(trained_verifier, [images[i][:, :14] for i in range(200, 300)])
    assert (whole > 0.5).mean() >= 0.9
    assert (pairs < 0.5).mean() >= 0.95 and (halves < 0.5).mean() >= 0.8


def test_the_shipped_threshold_is_the_highest_its_refusal_curve_allows():
    """The threshold refuses at most MAX_REFUSED of the held-out digits it was chosen on, and
    any higher one would refuse more: so every curve point up to it refuses at most that
    share, and every point above it more."""
    verifier = load_verifier()
    rejection = verifier.metadata["verifier"]["rejection"]
    assert rejection["threshold"] == verifier.threshold
    assert rejection["digits_refused"] <= MAX_REFUSED
    below = [c for c in rejection["curve"] if c["threshold"] <= verifier.threshold]
    above = [c for c in rejection["curve"] if c["threshold"] > verifier.threshold]
    assert below and above
    assert all(c["digits_refused"] <= MAX_REFUSED for c in below)
    assert all(c["digits_refused"] > MAX_REFUSED for c in above)


def test_the_shipped_verifier_judges_digits_it_never_saw(mnist_test):
    """On MNIST test digits (used neither to train it nor to choose its threshold) and on
    non-digits printed in fonts it never learnt from: it tells whole digits from pieces,
    and at its threshold refuses few digits and most non-digits."""
    verifier = load_verifier()
    images = mnist_test[0]
    x, y = cut_examples(images, 500, seed=5)
    assert (verifier.logits(x[:, None])[:, :2].argmax(1) == y).mean() >= 0.96
    digits = digit_likeness(verifier.probabilities(normalised(images[:2000])))
    others = digit_likeness(verifier.probabilities(held_out_nondigits(300, seed=5)))
    assert (digits < verifier.threshold).mean() <= 2 * MAX_REFUSED
    assert (others < verifier.threshold).mean() >= 0.9


def test_a_verifier_and_a_digit_model_are_not_mixed_up(tmp_path: Path):
    assert load_verifier(shipped("digit-verifier.onnx")).labels == ["pieces", "digit", "other"]
    with pytest.raises(ModelError, match="is not a verifier"):
        load_verifier(default_model())
    with pytest.raises(ModelError, match="is a verifier, not a digit model"):
        load_backend(shipped("digit-verifier.onnx"))
    with pytest.raises(ModelError, match="does not exist"):
        load_verifier(tmp_path / "missing.onnx")
    with pytest.raises(ModelError, match="is not a file"):
        load_verifier(tmp_path)


def digitrec(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digitrec", *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_trains_a_verifier(verifier_training: tuple[Path, dict], tmp_path: Path):
    out, report = verifier_training
    # 12,000 pieces and whole digits each, 6,000 non-digits (less any drawn empty), 600 of
    # each kind photographed
    assert 2 * 12_000 + 600 + 5_990 + 600 <= report["examples"] <= 2 * 12_000 + 600 + 6_000 + 600
    assert report["test_examples"] == 10_000 and report["epochs"] == 3
    assert [s["name"] for s in report["sources"]] == ["mnist"]
    rejection = report["rejection"]
    assert rejection["digits"] > 5000 and rejection["digits_refused"] <= 0.005
    assert len(rejection["curve"]) == 41
    assert load_verifier(out).metadata["verifier"] == report
    assert load_verifier(out).threshold == rejection["threshold"]
    bad = digitrec("train-verifier", "--out", str(out), "--count", "0")
    assert bad.returncode == 1 and "--count, --others and --epochs must be at least 1" in bad.stderr
    bad = digitrec("train-verifier", "--out", str(tmp_path))
    assert bad.returncode == 1 and "is a directory" in bad.stderr


def test_cli_refuses_a_missing_verifier(tmp_path: Path):
    (tmp_path / "x.png").write_bytes(b"")
    result = digitrec("predict", str(tmp_path / "x.png"), "--verifier", str(tmp_path / "no.onnx"))
    assert result.returncode == 1 and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
