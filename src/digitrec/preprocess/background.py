"""Ink from grey levels: polarity, removal of an uneven background, and the threshold."""

from __future__ import annotations

import functools

import numpy as np

from .components import remove_specks
from .primitives import percentiles, reduce

MIN_CONTRAST = 0.15  # ink must stand out from the background by this much (of full range)
BACKGROUND_SIZE = 32  # the background surface is fitted to the image reduced to this size
BORDER_MARGIN = 0.1  # the border decides the polarity when one class has 60% of it
FLAT = 1 / 255  # a background whose middle half spans less than this is flat (a drawing)
TEXTURE = 0.6  # a brighter class this much of the image is paper, not ink (see `_strokes`)


def _quadratic(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The terms (1, x, y, x², xy, y²) of a quadratic surface, for broadcastable x and y."""
    return [np.ones_like(x * y), x, y, x * x, x * y, y * y]


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in [0, 1]: a row of x (1, w) and a column of y (h, 1)."""
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :] if w > 1 else np.zeros((1, 1), np.float32)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None] if h > 1 else np.zeros((1, 1), np.float32)
    return x, y


@functools.lru_cache(maxsize=16)
def _surface_terms(h: int, w: int) -> np.ndarray:
    """Quadratic polynomial terms over an h x w grid: (h*w, 6), read-only (shared)."""
    x, y = _grid(h, w)
    terms = np.stack([np.broadcast_to(t, (h, w)).ravel() for t in _quadratic(x, y)], axis=1)
    terms.setflags(write=False)
    return terms


def _surface(coefficients: np.ndarray, h: int, w: int) -> np.ndarray:
    """The quadratic surface with these coefficients of (1, x, y, x², xy, y²) over an h x w
    grid, float32: a row plus a column plus the one cross term."""
    x, y = _grid(h, w)
    c0, cx, cy, cxx, cxy, cyy = (np.float32(c) for c in coefficients)
    return (c0 + cx * x + cxx * x * x) + (cy * y + cyy * y * y) + y * (cxy * x)


def _least_squares(terms: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Coefficients of the least-squares fit terms @ c = values (normal equations: six terms on
    [0, 1] coordinates are well conditioned, and this is much cheaper than an SVD)."""
    gram = terms.T.astype(np.float64) @ terms
    try:
        return np.linalg.solve(gram, terms.T.astype(np.float64) @ values)
    except np.linalg.LinAlgError:  # too few background pixels to fit a surface
        return np.linalg.lstsq(terms, values, rcond=None)[0]


def smooth_background(ink: np.ndarray, rounds: int = 3) -> np.ndarray:
    """The slowly varying background level of a bright-ink image (uneven light in photos):
    a quadratic surface fitted to the pixels that are not strokes, refitted as the strokes
    are told apart better. Large ink areas are never mistaken for background."""
    h, w = ink.shape
    small = reduce(ink, BACKGROUND_SIZE)
    terms = _surface_terms(*small.shape)
    values = small.ravel()
    background, coefficients, strokes = np.zeros_like(values), None, None
    for _ in range(rounds):
        residual = values - background
        previous, strokes = strokes, _strokes(residual.reshape(small.shape)).ravel()
        if strokes.mean() > 0.9 or (previous is not None and np.array_equal(strokes, previous)):
            break  # mostly ink, or the same background pixels as the last fit
        rest = values[~strokes]
        if coefficients is None:
            low, middle, high = percentiles(rest, [25, 50, 75])
            if high - low <= FLAT:  # the bulk of the background is one level
                return np.full((h, w), middle, dtype=np.float32)
        coefficients = _least_squares(terms[~strokes], rest)
        background = terms @ coefficients
    if coefficients is None:
        return np.zeros((h, w), dtype=np.float32)
    return _surface(coefficients, h, w)


def _strokes(residual: np.ndarray) -> np.ndarray:
    """The brighter of the two classes of `residual` (an image), or, where that class holds
    most of the border and more than TEXTURE of the image, the brighter part of it: the two
    classes were then a plain and a textured part of the paper (a cheque's printed pattern)."""
    strokes = residual >= otsu_threshold(residual)
    if _border(strokes).mean() > 0.5 and TEXTURE < strokes.mean() < 1:
        strokes = residual >= otsu_threshold(residual[strokes])
    return strokes


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """The threshold that best separates two classes of values (Otsu, 1979): values below it
    are one class, values at or above it the other. Values are clipped to [0, 1]."""
    inside = np.asarray(values, dtype=np.float32).ravel()
    hist = np.bincount(np.clip(inside * bins, 0, bins - 1).astype(np.intp), minlength=bins)
    weight = np.cumsum(hist)
    mean = np.cumsum(hist * _bin_centres(bins))
    total, total_mean = weight[-1], mean[-1]
    spread = weight[:-1] * (total - weight[:-1])  # 0 where one class is empty
    between = np.divide((total_mean * weight[:-1] - mean[:-1] * total) ** 2, spread,
                        out=np.full(bins - 1, -1.0), where=spread > 0)
    best = int(np.argmax(between))
    if between[best] < 0:  # a single value: nothing to separate, all below
        return float(np.clip(inside, 0, 1).max(initial=0)) + 1 / bins
    return float(best + 1) / bins  # the upper edge of the last bin below


@functools.lru_cache(maxsize=4)
def _bin_centres(bins: int) -> np.ndarray:
    """The centres of `bins` equal bins over [0, 1], read-only (shared)."""
    centres = (np.arange(bins) + 0.5) / bins
    centres.setflags(write=False)
    return centres


def _border(image: np.ndarray) -> np.ndarray:
    """The pixels along the four edges of an image, each once."""
    return np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])


def ink_is_dark(dark: np.ndarray) -> bool:
    """Whether the darker of the two classes of pixels is the ink. The background is what the
    border of the image mostly shows: a bold digit can cover more of a tight crop than the
    paper does. Where the border is split about evenly, the minority class is the ink."""
    if not 0 < dark.mean() < 1:
        return False
    border = _border(dark)
    if abs(border.mean() - 0.5) > BORDER_MARGIN:
        return bool(border.mean() < 0.5)
    return bool(dark.mean() < 0.5)


def to_ink(gray: np.ndarray) -> np.ndarray:
    """Ink map in [0, 1], 0 = background; all zeros when there is no ink."""
    gray = np.asarray(gray, dtype=np.float32)
    ink = 1.0 - gray if ink_is_dark(gray < otsu_threshold(gray)) else gray.copy()
    ink = np.clip(ink - smooth_background(ink), 0, None)
    if ink.max(initial=0) < MIN_CONTRAST:
        return np.zeros_like(ink)
    otsu = otsu_threshold(ink)
    strokes = ink >= otsu
    top = percentiles(ink[strokes], 90) if strokes.any() else ink.max()
    floor = max(otsu, 0.35 * top) / 2  # below half the threshold is background
    ink = np.clip((ink - floor) / max(top - floor, 1e-6), 0, 1).astype(np.float32)
    return remove_specks(ink)
