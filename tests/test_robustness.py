"""The robustness perturbations: the neutral level changes nothing, and each does what its
name says."""

from __future__ import annotations

import pytest
import torch

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
    rows = torch.arange(28.0).view(1, 1, 28, 1) - 13.5
    cols = torch.arange(28.0).view(1, 1, 1, 28) - 13.5
    lying = rotate(stroke_image, 90)  # the vertical bar lies down: its row spread shrinks
    assert (lying * rows**2).sum() < (stroke_image * rows**2).sum() / 4
    tilted = rotate(stroke_image, 30)  # alternately each way: opposite slants
    slant = (tilted * rows * cols).sum(dim=(1, 2, 3))
    assert slant[0] * slant[1] < 0
    moved = translate(stroke_image, 4)  # image 0 moves 4 px right, image 1 another way
    centre = (moved * cols).sum(dim=(1, 2, 3)) / moved.sum(dim=(1, 2, 3))
    assert centre[0].item() == pytest.approx(-0.5 + 4, abs=0.05)
    assert abs(centre[1].item() + 0.5) < 4
