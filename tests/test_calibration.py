"""Calibration arithmetic and confidence intervals."""

from __future__ import annotations

import numpy as np
import pytest

from digitrec.calibration import fit_temperature, negative_log_likelihood, reliability, softmax
from digitrec.evaluate import wilson_interval


def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20000, 10))
    p = softmax(logits, 2.5).astype(float)
    labels = np.array([rng.choice(10, p=row / row.sum()) for row in p])
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(2.5, rel=0.05)
    assert negative_log_likelihood(logits, labels, fitted) < negative_log_likelihood(logits, labels)


def test_no_temperature_where_the_held_out_images_hold_no_mistakes():
    logits = np.eye(10)[np.arange(100) % 10] * 5.0
    labels = np.arange(100) % 10
    assert fit_temperature(logits, labels) is None  # the NLL falls forever as T shrinks
    assert fit_temperature(logits[:0], labels[:0]) is None
    labels[0] = 3  # one mistake bounds it
    assert fit_temperature(logits, labels) is not None


def test_softmax_with_temperature_keeps_the_ranking():
    logits = np.array([[2.0, 1.0, 0.0]])
    sharp, soft = softmax(logits, 0.5), softmax(logits, 2.0)
    assert sharp.sum() == pytest.approx(1) and soft.sum() == pytest.approx(1)
    assert sharp[0, 0] > softmax(logits)[0, 0] > soft[0, 0]


def test_reliability_table_and_expected_calibration_error():
    # two images at 95% confidence (one right), two at 55% (both right)
    probabilities = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    labels = np.array([0, 1, 0, 0])
    table = reliability(probabilities, labels, bins=10)
    full = [b for b in table["bins"] if b["count"]]
    assert [(b["count"], b["accuracy"]) for b in full] == [(2, 1.0), (2, 0.5)]
    assert table["ece"] == pytest.approx((2 * 0.45 + 2 * 0.45) / 4)


def test_wilson_interval():
    """Reference values of the Wilson score interval (not the normal approximation's)."""
    assert wilson_interval(9975, 10000) == pytest.approx((0.996312, 0.998306), abs=1e-6)
    assert wilson_interval(10, 10) == pytest.approx((0.722460, 1.0), abs=1e-6)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.277540), abs=1e-6)
