"""Ink of one digit -> the 28x28 MNIST-style array: stroke width, 20 px box, centre of mass."""

from __future__ import annotations

import numpy as np
from PIL import Image

from .components import crop_to_ink
from .primitives import float_image, window_extreme

MIN_INK = 4  # ink smaller than this many pixels each way is a dot, not a digit
STROKE_FRACTION = 0.12  # MNIST strokes are about 2.4 px wide in the 20 px box
BOX, SIZE = 20, 28


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: ink area over half its boundary length."""
    mask = ink > 0.5
    framed = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), dtype=bool)
    framed[1:-1, 1:-1] = mask
    interior = (framed[:-2, 1:-1] & framed[2:, 1:-1] & framed[1:-1, :-2] & framed[1:-1, 2:])
    boundary = np.count_nonzero(mask & ~interior)
    return 2 * np.count_nonzero(mask) / max(boundary, 1)


def normalise_stroke(crop: np.ndarray) -> np.ndarray:
    """Thicken strokes that would vanish at 20 px, thin strokes that would fill the digit."""
    target = STROKE_FRACTION * max(crop.shape)
    width = stroke_width(crop)
    if width < 0.6 * target:
        radius = round((target - width) / 2)
        return window_extreme(np.pad(crop, radius), radius, np.max)
    if width > 3 * target:
        thinned = window_extreme(crop, round((width - target) / 2), np.min)
        if thinned.any():  # a blob with no stroke in it is left as it is
            return thinned
    return crop


def fit_box(crop: np.ndarray, box: int = BOX) -> np.ndarray:
    """Scale so the longer side is `box` pixels, keeping the aspect ratio (anti-aliased)."""
    crop = crop_to_ink(normalise_stroke(crop))
    h, w = crop.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = float_image(crop).resize(size, Image.LANCZOS)
    return np.clip(np.asarray(resized), 0, 1)


def centre_by_mass(digit: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Paste into a size x size field so that the centre of mass lands at the centre."""
    h, w = digit.shape
    total = digit.sum()
    cy = (digit.sum(1) @ np.arange(h)) / total
    cx = (digit.sum(0) @ np.arange(w)) / total
    top = min(max(round((size - 1) / 2 - cy), 0), size - h)
    left = min(max(round((size - 1) / 2 - cx), 0), size - w)
    field = np.zeros((size, size), dtype=np.float32)
    field[top:top + h, left:left + w] = digit
    return field


def normalise_digit(ink: np.ndarray) -> np.ndarray | None:
    """Steps 4-6 on an ink map: the 28x28 MNIST-style array, or None if there is no ink
    (or only a dot, smaller than MIN_INK pixels each way)."""
    if not ink.any():
        return None
    crop = crop_to_ink(ink)
    return centre_by_mass(fit_box(crop)) if max(crop.shape) >= MIN_INK else None
