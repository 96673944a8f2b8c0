"""Batched augmentation: per-sample randomness, geometry, the elastic field's bounds, stroke
width, and the looks of other digit sets (stretched to a square, coarse binary bitmaps)."""

from dataclasses import replace

import torch

from digitrec.augment import (
    Augmentation,
    affine_matrices,
    augment,
    coarsen,
    elastic_field,
    fill_box,
    vary_thickness,
    warp,
)

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


def ink_extent(images: torch.Tensor, axis: int) -> torch.Tensor:
    """How many columns (axis 1: ink anywhere down a column) or rows (axis 2) of each image hold
    ink."""
    return (images[:, 0] > 0.2).any(axis).sum(1)


def test_fill_stretches_a_narrow_digit_towards_a_square_and_keeps_its_place():
    torch.manual_seed(0)
    images = digit_batch(256)  # a bar 16 px tall and 4 px wide
    out = fill_box(images, 1.0)
    widths, heights = ink_extent(out, 1), ink_extent(out, 2)
    assert widths.min() >= 4 and widths.max() >= 14 and widths.float().std() > 2
    assert (heights == 16).all()  # the longer side stays
    columns = out[:, 0].sum(1)
    centre = (columns * torch.arange(28)).sum(1) / columns.sum(1)
    assert (centre - 13.5).abs().max() < 0.5  # stretched about its own centre
    assert torch.allclose(fill_box(images, 0.0), images, atol=1e-6)
    assert fill_box(torch.zeros(4, 1, 28, 28), 1.0).abs().max() == 0


def test_fill_picks_its_share_of_the_images():
    torch.manual_seed(0)
    out = fill_box(digit_batch(1000), 0.3)
    stretched = (ink_extent(out, 1) > 5).float().mean()
    assert 0.2 < stretched < 0.35  # a few stretched by almost nothing look unchanged


def test_coarse_images_are_enlarged_bitmaps_of_the_same_digit():
    torch.manual_seed(0)
    images = digit_batch(64)
    images[:, :, 6:22, 12:16] = 0.6  # grey ink: a bitmap knows only ink or none
    out = coarsen(images, 1.0)
    inside, outside = out[:, :, 8:20, 13:15], out[:, :, :, :9]
    assert inside.min() > 0.9 and outside.max() == 0  # the bar, at full strength, nothing else
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(coarsen(images, 0.0), images)
    torch.manual_seed(1)
    some = coarsen(images, 0.5)
    changed = (some != images).flatten(1).any(1).float().mean()
    assert 0.3 < changed < 0.7


def test_fill_and_coarse_belong_to_augment():
    torch.manual_seed(0)
    expected = coarsen(fill_box(digit_batch(8), 1.0), 1.0)
    torch.manual_seed(0)
    assert torch.equal(augment(digit_batch(8), Augmentation(fill=1.0, coarse=1.0)), expected)
