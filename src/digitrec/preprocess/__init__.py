"""Any image -> the 28x28 float array an MNIST model expects, normalised the way MNIST was.

The steps, each a function that can be used and tested on its own:

1. `open_image` (`decode`): decode safely with Pillow (pixel limit, bomb protection, first
   frame only).
2. `to_gray` (`decode`): grayscale in [0, 1]; transparent pixels are composited over white.
3. `to_ink` (`background`): polarity detection (the background is what the image's border
   mostly shows, else the majority; ink is the other side, dark on light or light on dark),
   removal of a smooth background (uneven light in photos), and a threshold (Otsu) that zeroes
   the background and scales strokes to 1: ink is white on black, as in MNIST. Specks much
   smaller than the largest stroke are dropped (`components`).
4. `crop_to_ink` (`components`): the bounding box of the ink.
5. `fit_box` (`normalise`): stroke width brought to MNIST's proportions, then the longer side
   scaled to 20 px with anti-aliasing, keeping the aspect ratio.
6. `centre_by_mass` (`normalise`): pasted into 28x28 so that the centre of mass is at the
   centre.

`preprocess(image)` (`pipeline`) runs them all, for one digit at the smallest working size
that keeps it sharp (`digit_ink`); an image under TINY pixels each way (a 16 px scan) is
first enlarged (`enlarge`, bicubic), so that the threshold and the stroke filters have
enough pixels to work with. Cutting a written number into digits is `digitrec.segment`.
numpy and Pillow only: no torch.
"""

from __future__ import annotations

import warnings

from .background import (
    BACKGROUND_SIZE,
    BORDER_MARGIN,
    FLAT,
    MIN_CONTRAST,
    ink_is_dark,
    otsu_threshold,
    smooth_background,
    to_ink,
)
from .components import (
    SPECK_FRACTION,
    component_areas,
    connected_components,
    crop_to_ink,
    ink_box,
    remove_specks,
)
from .decode import MAX_PIXELS, ImageSource, open_image, to_gray
from .normalise import (
    BOX,
    MIN_INK,
    SIZE,
    STROKE_FRACTION,
    centre_by_mass,
    fit_box,
    normalise_digit,
    normalise_stroke,
    stroke_width,
)
from .pipeline import DETAIL, QUICK_SIZE, QUICK_STROKE, digit_ink, ink_of, preprocess
from .primitives import ENLARGED, TINY, WORK_SIZE, enlarge, percentiles, reduce, shrink

__all__ = [
    "BACKGROUND_SIZE", "BORDER_MARGIN", "BOX", "DETAIL", "ENLARGED", "FLAT", "MAX_PIXELS",
    "MIN_CONTRAST", "MIN_INK", "QUICK_SIZE", "QUICK_STROKE", "SIZE", "SPECK_FRACTION",
    "STROKE_FRACTION", "TINY", "WORK_SIZE", "ImageSource", "centre_by_mass", "component_areas",
    "connected_components", "crop_to_ink", "digit_ink", "enlarge", "fit_box", "ink_box",
    "ink_is_dark", "ink_of", "normalise_digit", "normalise_stroke", "open_image",
    "otsu_threshold", "percentiles", "preprocess", "reduce", "remove_specks",
    "shrink", "smooth_background", "stroke_width", "to_gray", "to_ink",
]

MOVED_TO_SEGMENT = ("CROSSING_PENALTY", "CUT_PENALTY", "Judge", "MIN_CUT_WIDTH", "MIN_HEIGHT",
                    "STUB_FRACTION", "Segment", "split_digits")


def __getattr__(name: str):
    """Deprecated aliases: the names of MOVED_TO_SEGMENT import from `digitrec.segment`, with a
    DeprecationWarning."""
    if name in MOVED_TO_SEGMENT:
        warnings.warn(f"digitrec.preprocess.{name} moved to digitrec.segment.{name}",
                      DeprecationWarning, stacklevel=2)
        from .. import segment

        return getattr(segment, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
