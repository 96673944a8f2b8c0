"""Batched augmentation: per-sample randomness, geometry, the elastic field's bounds and
stroke width."""

from dataclasses import replace

import torch

from digitrec.augment import Augmentation, affine_matrices, augment, elastic_field, vary_thickness, warp

FULL = Augmentation(rotate=12, scale=0.1, shear=8, translate=2.5, elastic_alpha=1.5)


def digit_batch(n: int) -> torch.Tensor:
    images = torch.zeros(n, 1, 28, 28)
    images[:, :, 6:22, 12:16] = 1.0  # a thick vertical bar: a "1"
    return images


def test_disabled_augmentation_is_identity():
    images = torch.rand(4, 1, 28, 28)
    assert augment(images, Augmentation()) is images


def test_each_image_gets_its_own_transform_and_keeps_its_ink():
    torch.manual_seed(0)
    images = digit_batch(64)
    out = augment(images, FULL)
    assert out.shape == images.shape
    assert len({tuple(x.flatten().round(decimals=3).tolist()) for x in out}) == 64
    ink = out.sum(dim=(1, 2, 3)) / images[0].sum()
    assert ((ink > 0.7) & (ink < 1.35)).all()  # zoom within ±10% changes area by at most ~21%
    assert out[:, :, :2, :].abs().max() < 0.05  # content stays near the centre; borders blank


def test_background_stays_black_and_values_stay_in_range():
    torch.manual_seed(0)
    assert augment(torch.zeros(8, 1, 28, 28), FULL).abs().max() == 0
    out = augment(torch.rand(8, 1, 28, 28), FULL)
    assert out.min() >= 0 and out.max() <= 1


def test_affine_parameters_respect_their_bounds():
    torch.manual_seed(0)
    theta = affine_matrices(1000, Augmentation(rotate=10, translate=2), 28, torch.device("cpu"))
    angles = torch.rad2deg(torch.atan2(theta[:, 1, 0], theta[:, 0, 0]))
    assert angles.abs().max() <= 10 + 1e-4 and angles.abs().max() > 9
    shifts_px = theta[:, :, 2] * 28 / 2
    assert shifts_px.abs().max() <= 2 + 1e-5
    torch.manual_seed(0)
    scaled = affine_matrices(1000, Augmentation(scale=0.1), 28, torch.device("cpu"))
    zoom = 1 / scaled[:, 0, 0]
    assert zoom.min() >= 0.9 - 1e-5 and zoom.max() <= 1.1 + 1e-5


def test_elastic_field_is_bounded_and_smooth():
    torch.manual_seed(0)
    field = elastic_field(16, Augmentation(elastic_alpha=2.0, elastic_sigma=4), 28,
                          torch.device("cpu"))
    pixels = field * 28 / 2
    assert field.shape == (16, 28, 28, 2)
    assert pixels.abs().max() <= 2.0 + 1e-5
    neighbour_step = (pixels[:, 1:] - pixels[:, :-1]).abs().mean()
    assert neighbour_step < 0.25 * pixels.abs().mean()  # neighbours move together


def test_same_seed_same_augmentation():
    images = digit_batch(8)
    torch.manual_seed(3)
    first = augment(images, FULL)
    torch.manual_seed(3)
    assert torch.equal(first, augment(images, FULL))


def test_strokes_get_thicker_or_thinner_per_image_within_a_pixel():
    torch.manual_seed(0)
    images = digit_batch(256)  # a bar 4 px wide
    out = vary_thickness(images, 1.0)
    ink = out.sum(dim=(1, 2, 3)) / images[0].sum()
    assert ink.min() < 0.6 and ink.max() > 1.5  # thinner and thicker ones, each its own
    assert ink.min() >= 28 / 64 - 1e-5 and ink.max() <= 108 / 64 + 1e-5  # 2x14 .. 6x18 px
    assert out.min() >= 0 and out.max() <= 1
    assert out[:, :, :5, :].abs().max() == 0  # no further than a pixel
    assert torch.equal(vary_thickness(images, 0.0), images)


def test_thickness_follows_the_warp():
    torch.manual_seed(0)
    expected = vary_thickness(warp(digit_batch(8), FULL), 0.5)
    torch.manual_seed(0)
    both = augment(digit_batch(8), replace(FULL, thickness=0.5))
    assert torch.equal(both, expected) and not torch.equal(both, augment(digit_batch(8), FULL))
