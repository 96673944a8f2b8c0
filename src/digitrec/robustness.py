"""Robustness sweep: test accuracy as one kind of damage to the images grows.

Each perturbation is deterministic (a sweep run twice gives the same numbers) and batched on
tensors. Where a transform has a direction, the images take turns: rotations alternate
clockwise and anticlockwise, shifts point each image a golden angle further round.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .augment import gaussian_kernel

GOLDEN_ANGLE = math.pi * (3 - math.sqrt(5))
NOISE_SEED = 0


def _warp(images: torch.Tensor, angle: torch.Tensor, scale: float,
          shift: torch.Tensor) -> torch.Tensor:
    """Rotate (radians, per image), enlarge by `scale` and move by `shift` (pixels, (N, 2))."""
    size = images.shape[-1]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    move = -2 * shift / size  # the grid samples the input: content moves the other way
    theta = torch.stack([torch.stack([cos, -sin, move[:, 0]], 1),
                         torch.stack([sin, cos, move[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _turns(n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(n, device=device, dtype=torch.float32)


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate by `degrees`, alternately each way."""
    sign = 1 - 2 * (_turns(len(images), images.device) % 2)
    zero = torch.zeros(len(images), 2, device=images.device)
    return _warp(images, sign * math.radians(degrees), 1.0, zero)


def zoom(images: torch.Tensor, factor: float) -> torch.Tensor:
    """Scale about the centre: above 1 the digit grows, below 1 it shrinks."""
    n = len(images)
    return _warp(images, torch.zeros(n, device=images.device), factor,
                 torch.zeros(n, 2, device=images.device))


def translate(images: torch.Tensor, pixels: float) -> torch.Tensor:
    """Move by `pixels`, each image in its own direction."""
    direction = _turns(len(images), images.device) * GOLDEN_ANGLE
    shift = pixels * torch.stack([torch.cos(direction), torch.sin(direction)], 1)
    return _warp(images, torch.zeros(len(images), device=images.device), 1.0, shift)


def gaussian_noise(images: torch.Tensor, std: float) -> torch.Tensor:
    """Add Gaussian noise (std in units of full intensity), clipped to [0, 1]."""
    generator = torch.Generator().manual_seed(NOISE_SEED)
    noise = torch.randn(images.shape, generator=generator).to(images.device)
    return (images + std * noise).clamp(0, 1)


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with standard deviation `sigma` pixels."""
    if sigma <= 0:
        return images
    kernel = gaussian_kernel(sigma, images.device)
    pad = len(kernel) // 2
    out = F.conv2d(images, kernel.view(1, 1, 1, -1), padding=(0, pad))
    return F.conv2d(out, kernel.view(1, 1, -1, 1), padding=(pad, 0))


def stroke(images: torch.Tensor, pixels: float) -> torch.Tensor:
    """Thicken (positive: grey-level dilation) or thin (negative: erosion) strokes by whole
    pixels, one 3x3 step per pixel."""
    out = images
    for _ in range(round(abs(pixels))):
        out = (F.max_pool2d(out, 3, 1, 1) if pixels > 0 else -F.max_pool2d(-out, 3, 1, 1))
    return out


def invert(images: torch.Tensor, amount: float) -> torch.Tensor:
    """Dark digits on a light background (amount 1) instead of light on dark (0)."""
    return 1 - images if amount else images


@dataclass(frozen=True)
class Perturbation:
    """One kind of damage and the strengths it is swept over (the first leaves images alone)."""

    name: str
    unit: str
    levels: tuple[float, ...]
    apply: Callable[[torch.Tensor, float], torch.Tensor]


PERTURBATIONS = (
    Perturbation("rotation", "degrees", (0, 15, 30, 45, 60, 90), rotate),
    Perturbation("scale", "factor", (1.0, 0.85, 0.7, 0.5, 1.2, 1.4), zoom),
    Perturbation("translation", "pixels", (0, 2, 4, 6, 8), translate),
    Perturbation("gaussian_noise", "std", (0, 0.1, 0.2, 0.3, 0.5), gaussian_noise),
    Perturbation("blur", "sigma (pixels)", (0, 0.5, 1, 1.5, 2, 3), blur),
    Perturbation("stroke", "pixels (+ thicker, - thinner)", (0, -1, -2, 1, 2, 3), stroke),
    Perturbation("inversion", "inverted", (0, 1), invert),
)


def robustness_sweep(predict: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                     labels: torch.Tensor) -> dict[str, dict]:
    """Accuracy of `predict` (float images (N, 1, 28, 28) in [0, 1] -> class indices) at every
    level of every perturbation: {name: {"unit", "levels", "accuracy", "neutral"}}, levels
    ascending; `neutral` is the level that leaves the images alone."""
    x = images.float().div(255) if images.dtype == torch.uint8 else images.float()
    sweep = {}
    for p in PERTURBATIONS:
        levels = sorted(p.levels)
        accuracy = [(predict(p.apply(x, level)) == labels).float().mean().item()
                    for level in levels]
        sweep[p.name] = {"unit": p.unit, "levels": levels, "accuracy": accuracy,
                         "neutral": p.levels[0]}
    return sweep
