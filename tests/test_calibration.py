"""Calibration arithmetic, confidence intervals and the robustness perturbations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from digitrec.calibration import (
    card_temperature,
    fit_temperature,
    negative_log_likelihood,
    reliability,
    softmax,
)
from digitrec.evaluate import wilson_interval
from digitrec.robustness import (
    PERTURBATIONS,
    blur,
    gaussian_noise,
    invert,
    rotate,
    stroke,
    translate,
    zoom,
)


def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20000, 10))
    p = softmax(logits, 2.5).astype(float)
    labels = np.array([rng.choice(10, p=row / row.sum()) for row in p])
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(2.5, rel=0.05)
    assert negative_log_likelihood(logits, labels, fitted) < negative_log_likelihood(logits, labels)


def test_softmax_with_temperature_keeps_the_ranking():
    logits = np.array([[2.0, 1.0, 0.0]])
    sharp, soft = softmax(logits, 0.5), softmax(logits, 2.0)
    assert sharp.sum() == pytest.approx(1) and soft.sum() == pytest.approx(1)
    assert sharp[0, 0] > softmax(logits)[0, 0] > soft[0, 0]
    assert card_temperature({}) == 1.0 and card_temperature({"calibration": {"temperature": 0.7}}) == 0.7


def test_reliability_table_and_expected_calibration_error():
    # two images at 95% confidence (one right), two at 55% (both right)
    probabilities = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    labels = np.array([0, 1, 0, 0])
    table = reliability(probabilities, labels, bins=10)
    full = [b for b in table["bins"] if b["count"]]
    assert [(b["count"], b["accuracy"]) for b in full] == [(2, 1.0), (2, 0.5)]
    assert table["ece"] == pytest.approx((2 * 0.45 + 2 * 0.45) / 4)


def test_wilson_interval():
    low, high = wilson_interval(9975, 10000)
    assert low < 0.9975 < high and high - low == pytest.approx(0.0020, abs=2e-4)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 10)[0] == 0.0


@pytest.fixture
def stroke_image() -> torch.Tensor:
    """Two images with a vertical bar, float in [0, 1]."""
    x = torch.zeros(2, 1, 28, 28)
    x[:, :, 8:20, 12:15] = 1.0
    return x


def test_neutral_level_of_every_perturbation_leaves_images_alone(stroke_image: torch.Tensor):
    for p in PERTURBATIONS:
        torch.testing.assert_close(p.apply(stroke_image, p.levels[0]), stroke_image, atol=1e-5,
                                   rtol=0, msg=p.name)


def test_perturbations_do_what_they_say(stroke_image: torch.Tensor):
    ink = stroke_image.sum()
    assert stroke(stroke_image, 1).sum() > ink > stroke(stroke_image, -1).sum()
    torch.testing.assert_close(invert(stroke_image, 1), 1 - stroke_image)
    assert zoom(stroke_image, 1.4).sum() > ink > zoom(stroke_image, 0.7).sum()
    torch.testing.assert_close(blur(stroke_image, 1.0).sum(), ink, rtol=1e-3, atol=0)
    assert blur(stroke_image, 1.0).max() < 1
    noisy = gaussian_noise(stroke_image, 0.3)
    torch.testing.assert_close(noisy, gaussian_noise(stroke_image, 0.3))  # deterministic
    assert noisy.min() >= 0 and noisy.max() <= 1
    rows = torch.arange(28.0).view(1, 1, 28, 1)
    tall = rotate(stroke_image, 90)  # the vertical bar lies down: its row spread shrinks
    assert (tall * (rows - 14) ** 2).sum() < (stroke_image * (rows - 14) ** 2).sum() / 4
    cols = torch.arange(28.0).view(1, 1, 1, 28)
    moved = translate(stroke_image, 4)  # image 0 moves 4 px right
    centre = (moved[0] * cols).sum() / moved[0].sum()
    assert centre.item() == pytest.approx(13 + 4, abs=0.05)
