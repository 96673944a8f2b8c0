"""Batched, per-sample random augmentation on tensors: affine transforms, elastic distortion,
stroke width, and the look of other digit sets.

One sampling grid is built for the whole batch (a random rotation, scale, shear and translation
per image, plus an optional smooth random displacement field) and applied with a single
`grid_sample` call on the training device: no per-image Python, no DataLoader workers. Stroke
width then varies per image as different pens would: each image is blended towards its 3x3
dilation (thicker) or erosion (thinner, sometimes broken strokes).

Two transforms imitate how other digit sets were made: some stretch every digit to fill a
square box, whatever its shape (a 1 becomes a wide bar), and some store it as a small binary
bitmap (16x16 or 32x32 pixels, ink or no ink). `fill` stretches a random share of the images
towards their square box; `coarse` renders a random share as a binary bitmap of a random
coarse size, enlarged back as `preprocess` enlarges a tiny image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random transforms; zero turns a transform off."""

    rotate: float = 0.0  # degrees, uniform in [-rotate, rotate]
    scale: float = 0.0  # relative, uniform in [1 - scale, 1 + scale]
    shear: float = 0.0  # degrees, uniform in [-shear, shear]
    translate: float = 0.0  # pixels, uniform in [-translate, translate] on each axis
    elastic_alpha: float = 0.0  # pixels: strength of the elastic displacement
    elastic_sigma: float = 4.0  # pixels: smoothness of the elastic displacement
    thickness: float = 0.0  # strokes up to this much thicker or thinner (1: a pixel each side)
    fill: float = 0.0  # share of the images stretched towards filling their square box
    coarse: float = 0.0  # share of the images rendered as a coarse binary bitmap

    @property
    def warps(self) -> bool:
        """Whether any geometric transform is on."""
        return any((self.rotate, self.scale, self.shear, self.translate, self.elastic_alpha))


def _uniform(n: int, bound: float, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, device=device) * 2 - 1) * bound


def affine_matrices(n: int, aug: Augmentation, size: int, device: torch.device) -> torch.Tensor:
    """Random 2x3 matrices (N, 2, 3) in `affine_grid`'s normalised coordinates."""
    angle = _uniform(n, math.radians(aug.rotate), device)
    shear = _uniform(n, math.radians(aug.shear), device)
    scale = 1 + _uniform(n, aug.scale, device)
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
    # rotation @ shear(x by y) / scale: the grid samples the input, so dividing zooms in
    theta = torch.stack([
        torch.stack([cos, cos * tan - sin, _uniform(n, 2 * aug.translate / size, device)], 1),
        torch.stack([sin, sin * tan + cos, _uniform(n, 2 * aug.translate / size, device)], 1),
    ], 1)
    theta[:, :, :2] /= scale.view(n, 1, 1)
    return theta


def gaussian_kernel(sigma: float, device: torch.device) -> torch.Tensor:
    """A normalised 1-D Gaussian kernel reaching out two sigmas."""
    radius = max(1, round(2 * sigma))
    x = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    kernel = torch.exp(-x**2 / (2 * sigma**2))
    return kernel / kernel.sum()


def elastic_field(n: int, aug: Augmentation, size: int, device: torch.device) -> torch.Tensor:
    """Smooth random displacements (N, H, W, 2) in normalised coordinates (Simard et al. 2003)."""
    field = torch.rand(n * 2, 1, size, size, device=device) * 2 - 1
    kernel = gaussian_kernel(aug.elastic_sigma, device)
    pad = len(kernel) // 2
    field = F.conv2d(F.pad(field, (pad, pad, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    field = F.conv2d(F.pad(field, (0, 0, pad, pad), mode="reflect"), kernel.view(1, 1, -1, 1))
    field = field / field.abs().amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    return field.view(n, 2, size, size).permute(0, 2, 3, 1) * (2 * aug.elastic_alpha / size)


def vary_thickness(images: torch.Tensor, amount: float) -> torch.Tensor:
    """Make each image's strokes thicker or thinner: a blend with its 3x3 dilation or erosion,
    by a random weight in [-amount, amount] per image (negative: thinner)."""
    weight = _uniform(len(images), amount, images.device).view(-1, 1, 1, 1).to(images.dtype)
    dilated = F.max_pool2d(images, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(-images, 3, stride=1, padding=1)
    target = torch.where(weight > 0, dilated, eroded)
    return images + weight.abs() * (target - images)


FILL_INK = 0.2  # pixels above this value count as ink for a digit's box
COARSE_SIZES = (14, 24)  # a coarse bitmap has a side in this range (the 28 px field's share)
COARSE_LEVELS = (0.1, 0.4)  # its ink is what exceeds this share of the image's brightest pixel


def _extent(ink: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last index along the last axis where a (N, L) boolean profile is set."""
    positions = torch.arange(ink.shape[1], device=ink.device)
    first = torch.where(ink, positions, ink.shape[1]).amin(1)
    last = torch.where(ink, positions, -1).amax(1)
    return first, last


def fill_box(images: torch.Tensor, share: float) -> torch.Tensor:
    """Stretch a random `share` of the images so each side of the digit's box grows towards the
    longer one, by a random amount per image (all the way: the digit fills a square)."""
    n, _, size, _ = images.shape
    ink = images[:, 0] > FILL_INK
    top, bottom = _extent(ink.any(2))
    left, right = _extent(ink.any(1))
    height, width = (bottom - top + 1).clamp_min(1), (right - left + 1).clamp_min(1)
    longer = torch.maximum(height, width)
    amount = torch.rand(n, device=images.device) * (torch.rand(n, device=images.device) < share)
    amount = amount * ink.flatten(1).any(1)  # a blank image stays as it is
    theta = torch.zeros(n, 2, 3, device=images.device)
    for row, (low, high, extent) in enumerate([(left, right, width), (top, bottom, height)]):
        target = extent + amount * (longer - extent)
        stretch = extent / target
        centre = (low + high + 1) / size - 1
        theta[:, row, row] = stretch
        theta[:, row, 2] = centre * (1 - stretch)  # the box's centre stays where it is
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def coarsen(images: torch.Tensor, share: float) -> torch.Tensor:
    """Render a random `share` of the images as binary bitmaps of one random coarse size per
    batch, each thresholded at a random level, then enlarged back (bilinear)."""
    n, _, size, _ = images.shape
    chosen = torch.rand(n, device=images.device) < share
    if not chosen.any():
        return images
    side = int(torch.randint(COARSE_SIZES[0], COARSE_SIZES[1] + 1, ()).item())
    small = F.interpolate(images[chosen], size=(side, side), mode="area")
    low, high = COARSE_LEVELS
    level = low + (high - low) * torch.rand(len(small), 1, 1, 1, device=images.device)
    bitmap = (small > level * small.amax(dim=(1, 2, 3), keepdim=True)).to(images.dtype)
    out = images.clone()
    out[chosen] = F.interpolate(bitmap, size=(size, size), mode="bilinear", align_corners=False)
    return out


def warp(images: torch.Tensor, aug: Augmentation) -> torch.Tensor:
    """Each image through its own random affine transform and elastic field, in one call."""
    n, _, size, _ = images.shape
    grid = F.affine_grid(affine_matrices(n, aug, size, images.device), list(images.shape),
                         align_corners=False)
    if aug.elastic_alpha:
        grid = grid + elastic_field(n, aug, size, images.device)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augment(images: torch.Tensor, aug: Augmentation) -> torch.Tensor:
    """Randomly transform each image of a float batch (N, C, H, W); background stays 0."""
    if aug.fill:
        images = fill_box(images, aug.fill)
    if aug.warps:
        images = warp(images, aug)
    if aug.thickness:
        images = vary_thickness(images, aug.thickness)
    if aug.coarse:
        images = coarsen(images, aug.coarse)
    return images
