"""The whole path for one digit: any image -> ink at the right working size -> 28x28."""

from __future__ import annotations

import numpy as np

from .background import to_ink
from .components import crop_to_ink
from .decode import ImageSource, open_image, to_gray
from .normalise import normalise_digit, stroke_width
from .primitives import enlarge, reduce, shrink

QUICK_SIZE = 128  # a single digit is first looked for at this working size,
DETAIL = 40  # which is kept when the digit is at least this many pixels tall or wide there
QUICK_STROKE = 2.5  # and its strokes at least this many pixels wide (thinner ones lose width)


def ink_of(source: ImageSource) -> np.ndarray:
    """Steps 1-3: the ink map of any image, at working resolution."""
    return to_ink(reduce(to_gray(open_image(source))))


def digit_ink(source: ImageSource) -> np.ndarray:
    """Steps 1-3 for an image of one digit, at the smallest working size that keeps it sharp:
    a digit that fills much of the image (a drawing, a close-up) is read at QUICK_SIZE, which
    has far fewer pixels to process; a small one in a large image, or one written with a fine
    pen, at WORK_SIZE. A tiny image (a 16 px scan) is enlarged first."""
    gray = enlarge(to_gray(open_image(source)))
    quick = to_ink(shrink(gray, QUICK_SIZE))
    if max(gray.shape) <= QUICK_SIZE:
        return quick
    if quick.any():
        crop = crop_to_ink(quick)
        if max(crop.shape) >= DETAIL and stroke_width(crop) >= QUICK_STROKE:
            return quick
    return to_ink(reduce(gray))


def preprocess(source: ImageSource) -> np.ndarray | None:
    """Any image -> float32 [28, 28] in [0, 1] (white ink on black), or None for a blank image."""
    return normalise_digit(digit_ink(source))
