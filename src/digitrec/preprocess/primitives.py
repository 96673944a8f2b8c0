"""Image primitives on float arrays: resizing to a working size and square window filters."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

WORK_SIZE = 768  # images are reduced so their longer side is at most this many pixels
TINY, ENLARGED = 28, 64  # an image smaller than TINY each way is enlarged to at least ENLARGED


def float_image(values: np.ndarray) -> Image.Image:
    """A Pillow 32-bit float image of an array (any float dtype)."""
    return Image.fromarray(np.ascontiguousarray(values, dtype=np.float32), mode="F")


def reduce(gray: np.ndarray, limit: int = WORK_SIZE) -> np.ndarray:
    """Shrink (area-averaging) so the longer side is at most `limit` pixels."""
    h, w = gray.shape
    if max(h, w) <= limit:
        return gray
    scale = limit / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(float_image(gray).resize(size, Image.BOX))


def shrink(gray: np.ndarray, limit: int) -> np.ndarray:
    """Shrink by the smallest whole factor that brings the longer side to at most `limit`
    pixels (averages of factor x factor blocks: cheaper than `reduce`'s resampling to an exact
    size)."""
    factor = -(-max(gray.shape) // limit)
    if factor <= 1:
        return gray
    return np.asarray(float_image(gray).reduce(factor))


def enlarge(gray: np.ndarray, limit: int = TINY, size: int = ENLARGED) -> np.ndarray:
    """Enlarge (bicubic, by a whole factor) an image whose longer side is under `limit` pixels,
    so that its longer side is at least `size`: a 16 px binary digit has too few pixels for
    the threshold and the stroke filters to find smooth strokes."""
    if max(gray.shape) >= limit:
        return gray
    factor = -(-size // max(gray.shape))
    h, w = gray.shape
    return np.asarray(float_image(gray).resize((w * factor, h * factor), Image.BICUBIC))


def window_extreme(values: np.ndarray, radius: int, reducer) -> np.ndarray:
    """Separable square max or min filter of the given radius (edges padded by replication)."""
    if radius < 1:
        return values
    out = values
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)],
                        mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1, axis=axis)
        out = reducer(windows, axis=-1)
    return out


def percentiles(values: np.ndarray, q: float | Sequence[float]) -> np.floating | list[float]:
    """The q-th percentiles of the values, to the last bit as `np.percentile(values, q)` gives
    them (linear), by one partial sort: numpy's general machinery costs several times more on
    the small arrays of one image. A single q gives one value in the values' own precision, a
    list of q a list of doubles, as numpy does."""
    flat = np.asarray(values).ravel()
    single = isinstance(q, int | float)
    last = flat.size - 1
    positions = [p / 100 * last for p in ([q] if single else q)]
    below = [math.floor(p) for p in positions]
    above = [min(b + 1, last) for b in below]
    ordered = np.partition(flat, sorted({*below, *above}))
    kind = flat.dtype.type if single else float
    out = []
    for position, b, a in zip(positions, below, above, strict=True):
        low, high, t = ordered[b], ordered[a], position - b
        step = kind(high - low)  # in the values' own precision, as numpy takes it
        out.append(kind(high) - step * kind(1 - t) if t >= 0.5 else kind(low) + step * kind(t))
    return out[0] if single else out
