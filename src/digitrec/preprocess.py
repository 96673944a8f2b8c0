"""Any image -> the 28x28 float array an MNIST model expects, normalised the way MNIST was.

The steps, each a function that can be used and tested on its own:

1. `open_image`: decode safely with Pillow (pixel limit, bomb protection, first frame only).
2. `to_gray`: grayscale in [0, 1]; transparent pixels are composited over white.
3. `to_ink`: polarity detection (the background is what the image's border mostly shows, else
   the majority; ink is the other side, dark on light or light on dark), removal of a smooth
   background (uneven light in photos), and a threshold (Otsu) that zeroes the background and
   scales strokes to 1: ink is white on black, as in MNIST.
   Specks much smaller than the largest stroke are dropped.
4. `crop_to_ink`: the bounding box of the ink.
5. `fit_box`: stroke width brought to MNIST's proportions, then the longer side scaled to 20 px
   with anti-aliasing, keeping the aspect ratio.
6. `centre_by_mass`: pasted into 28x28 so that the centre of mass is at the centre.

`preprocess(image)` runs them all, for one digit at the smallest working size that keeps it
sharp (`digit_ink`); `split_digits` cuts an image of a written number into digits.
numpy and Pillow only: no torch.
"""

from __future__ import annotations

import functools
import io
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from .errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageError

MAX_PIXELS = 50_000_000  # larger images are refused before decoding
WORK_SIZE = 768  # images are reduced so their longer side is at most this many pixels
MIN_CONTRAST = 0.15  # ink must stand out from the background by this much (of full range)
MIN_INK = 4  # ink smaller than this many pixels each way is a dot, not a digit
SPECK_FRACTION = 0.02  # components smaller than this fraction of the largest are noise
STROKE_FRACTION = 0.12  # MNIST strokes are about 2.4 px wide in the 20 px box
STUB_FRACTION = 0.2  # pieces at a cut column smaller than this fraction of the largest are stubs
CUT_PENALTY = 0.5  # log-odds against each cut: a cut needs some evidence
CROSSING_PENALTY = 0.2  # and a little more for each extra stroke it severs
MIN_HEIGHT = 0.6  # ink shorter than this many line heights is part of a digit, never a digit
MIN_CUT_WIDTH = 0.65  # ink narrower than this many line heights is one digit, never cut
QUICK_SIZE = 128  # a single digit is first looked for at this working size,
DETAIL = 40  # which is kept when the digit is at least this many pixels tall or wide there
QUICK_STROKE = 2.5  # and its strokes at least this many pixels wide (thinner ones lose width)
BACKGROUND_SIZE = 32  # the background surface is fitted to the image reduced to this size
BORDER_MARGIN = 0.1  # the border decides the polarity when one class has 60% of it
FLAT = 1 / 255  # a background whose middle half spans less than this is flat (a drawing)
BOX, SIZE = 20, 28

Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own bomb check (error at twice this)

ImageSource = str | os.PathLike | bytes | Image.Image | np.ndarray


def open_image(source: ImageSource) -> Image.Image:
    """Decode an image file, bytes or array; anything unreadable is an ImageDecodeError."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return Image.fromarray(_as_uint8(source))
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        if image.width * image.height > MAX_PIXELS:
            raise ImageTooLargeError(f"{name}: {image.width}x{image.height} pixels is more than "
                                   f"the {MAX_PIXELS:,} allowed")
        frame = next(ImageSequence.Iterator(image))  # animated images: the first frame
        frame.load()
        return frame
    except ImageDecodeError:
        raise
    except FileNotFoundError:
        raise ImageDecodeError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageDecodeError(f"{name}: is a directory") from None
    except UnidentifiedImageError:
        raise UnsupportedImageError(f"{name}: not an image format Pillow can decode") from None
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"{name}: refused as a decompression bomb ({e})") from None
    except PermissionError:
        raise ImageDecodeError(f"{name}: permission denied") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise ImageDecodeError(f"{name}: corrupt or truncated image ({e})") from None


def _as_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    array = np.asarray(array, dtype=np.float32)
    scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0
    return np.clip(array * scale, 0, 255).astype(np.uint8)


def to_gray(image: Image.Image) -> np.ndarray:
    """Grayscale float32 in [0, 1] (1 = white); alpha is composited over white."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0,
                               neginf=0.0)
        top = 255.0 if image.mode != "F" and values.max(initial=0) <= 255 else None
        if image.mode.startswith("I;16") or (image.mode == "I" and top is None):
            top = 65535.0
        if top is None:  # float image: use its own range
            low, high = float(values.min(initial=0)), float(values.max(initial=1))
            return (values - low) / max(high - low, 1e-6)
        return np.clip(values / top, 0, 1)
    try:
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except ValueError as e:  # modes Pillow cannot convert to grayscale, e.g. LAB
        raise ImageDecodeError(f"unsupported image mode {image.mode}: {e}") from None


def _float_image(values: np.ndarray) -> Image.Image:
    """A Pillow 32-bit float image of an array (any float dtype)."""
    return Image.fromarray(np.ascontiguousarray(values, dtype=np.float32), mode="F")


def reduce(gray: np.ndarray, limit: int = WORK_SIZE) -> np.ndarray:
    """Shrink (area-averaging) so the longer side is at most `limit` pixels."""
    h, w = gray.shape
    if max(h, w) <= limit:
        return gray
    scale = limit / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(_float_image(gray).resize(size, Image.BOX))


def shrink(gray: np.ndarray, limit: int) -> np.ndarray:
    """Shrink by the smallest whole factor that brings the longer side to at most `limit`
    pixels (averages of factor x factor blocks: several times faster than `reduce`)."""
    factor = -(-max(gray.shape) // limit)
    if factor <= 1:
        return gray
    return np.asarray(_float_image(gray).reduce(factor))


def _window_extreme(values: np.ndarray, radius: int, reducer) -> np.ndarray:
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
        previous, strokes = strokes, residual >= otsu_threshold(residual)
        if strokes.mean() > 0.9 or (previous is not None and np.array_equal(strokes, previous)):
            break  # mostly ink, or the same background pixels as the last fit
        rest = values[~strokes]
        if coefficients is None:
            low, middle, high = np.percentile(rest, [25, 50, 75])
            if high - low <= FLAT:  # the bulk of the background is one level
                return np.full((h, w), middle, dtype=np.float32)
        coefficients = _least_squares(terms[~strokes], rest)
        background = terms @ coefficients
    if coefficients is None:
        return np.zeros((h, w), dtype=np.float32)
    return _surface(coefficients, h, w)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """The threshold that best separates two classes of values (Otsu, 1979): values below it
    are one class, values at or above it the other. Values are clipped to [0, 1]."""
    inside = np.clip(np.asarray(values, dtype=np.float32).ravel(), 0, 1)
    hist = np.bincount(np.minimum((inside * bins).astype(np.intp), bins - 1), minlength=bins)
    centres = (np.arange(bins) + 0.5) / bins
    weight = np.cumsum(hist)
    mean = np.cumsum(hist * centres)
    total, total_mean = weight[-1], mean[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mean * weight - mean * total) ** 2 / (weight * (total - weight))
    if np.isnan(between[:-1]).all():  # a single value: nothing to separate, all below
        return float(inside.max(initial=0)) + 1 / bins
    return float(np.nanargmax(between[:-1]) + 1) / bins  # the upper edge of the last bin below


def ink_is_dark(dark: np.ndarray) -> bool:
    """Whether the darker of the two classes of pixels is the ink. The background is what the
    border of the image mostly shows: a bold digit can cover more of a tight crop than the
    paper does. Where the border is split about evenly, the minority class is the ink."""
    if not 0 < dark.mean() < 1:
        return False
    border = np.concatenate([dark[0], dark[-1], dark[1:-1, 0], dark[1:-1, -1]])
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
    top = np.percentile(ink[strokes], 90) if strokes.any() else ink.max()
    floor = max(otsu, 0.35 * top) / 2  # below half the threshold is background
    ink = np.clip((ink - floor) / max(top - floor, 1e-6), 0, 1).astype(np.float32)
    return remove_specks(ink)


def _ink_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal runs of ink in raster order: (row, first column, end column exclusive)."""
    edges = np.diff(np.pad(mask.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    rows, starts = np.nonzero(edges == 1)
    ends = np.nonzero(edges == -1)[1]
    return rows, starts, ends


def _touching_runs(rows: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                   width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a, b) of runs in consecutive rows that touch, diagonals included."""
    stride = width + 3  # keys of different rows never mix
    start_keys, end_keys = rows * stride + starts, rows * stride + ends
    above = (rows - 1) * stride
    first = np.searchsorted(end_keys, above + starts, side="left")  # ends at or after my start
    last = np.searchsorted(start_keys, above + ends, side="right")  # starts at or before my end
    counts = np.maximum(last - first, 0)
    b = np.repeat(np.arange(len(rows)), counts)
    a = np.repeat(first - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
    return a, b


def connected_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected component labels (0 = background, 1..n, numbered in raster order) and n.

    Runs of ink in each row are joined (union-find) with the runs they touch in the row above,
    so the work grows with the number of runs, not with the number of pixels.
    """
    h, w = mask.shape
    rows, starts, ends = _ink_runs(mask)
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(*_touching_runs(rows, starts, ends, w), strict=True):
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # the root is the component's first run
    run_roots = np.array([root(i) for i in range(len(rows))], dtype=np.int64)
    roots, dense = np.unique(run_roots, return_inverse=True)
    lengths = ends - starts
    flat = np.repeat(rows * w + starts - np.cumsum(lengths) + lengths, lengths) \
        + np.arange(lengths.sum())
    out = np.zeros(h * w, dtype=np.int32)
    out[flat] = np.repeat(dense.ravel() + 1, lengths)
    return out.reshape(h, w), len(roots)


def remove_specks(ink: np.ndarray, fraction: float = SPECK_FRACTION,
                  columns: list[int] | None = None) -> np.ndarray:
    """Zero the components smaller than `fraction` of the largest one (dust, paper texture);
    with `columns`, only those that have ink in one of these columns."""
    labels, count = connected_components(ink > 0)
    if count <= 1:
        return ink
    areas = np.bincount(labels.ravel())[1:]
    small = np.concatenate([[False], areas < fraction * areas.max()])
    if columns is not None:
        small &= np.isin(np.arange(count + 1), labels[:, columns])
    return np.where(small[labels], 0, ink).astype(np.float32)


def ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the smallest rectangle that holds all the ink."""
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The smallest rectangle that holds all the ink."""
    x0, y0, x1, y1 = ink_box(ink)
    return ink[y0:y1, x0:x1]


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: ink area over half its boundary length."""
    mask = ink > 0.5
    padded = np.pad(mask, 1)
    interior = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
    boundary = np.count_nonzero(mask & ~interior)
    return 2 * np.count_nonzero(mask) / max(boundary, 1)


def normalise_stroke(crop: np.ndarray) -> np.ndarray:
    """Thicken strokes that would vanish at 20 px, thin strokes that would fill the digit."""
    target = STROKE_FRACTION * max(crop.shape)
    width = stroke_width(crop)
    if width < 0.6 * target:
        radius = round((target - width) / 2)
        return _window_extreme(np.pad(crop, radius), radius, np.max)
    if width > 3 * target:
        thinned = _window_extreme(crop, round((width - target) / 2), np.min)
        if thinned.any():  # a blob with no stroke in it is left as it is
            return thinned
    return crop


def fit_box(crop: np.ndarray, box: int = BOX) -> np.ndarray:
    """Scale so the longer side is `box` pixels, keeping the aspect ratio (anti-aliased)."""
    crop = crop_to_ink(normalise_stroke(crop))
    h, w = crop.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = _float_image(crop).resize(size, Image.LANCZOS)
    return np.clip(np.asarray(resized), 0, 1)


def centre_by_mass(digit: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Paste into a size x size field so that the centre of mass lands at the centre."""
    h, w = digit.shape
    total = digit.sum()
    cy = (digit.sum(1) @ np.arange(h)) / total
    cx = (digit.sum(0) @ np.arange(w)) / total
    top = int(np.clip(round((size - 1) / 2 - cy), 0, size - h))
    left = int(np.clip(round((size - 1) / 2 - cx), 0, size - w))
    field = np.zeros((size, size), dtype=np.float32)
    field[top:top + h, left:left + w] = digit
    return field


def ink_of(source: ImageSource) -> np.ndarray:
    """Steps 1-3: the ink map of any image, at working resolution."""
    return to_ink(reduce(to_gray(open_image(source))))


def digit_ink(source: ImageSource) -> np.ndarray:
    """Steps 1-3 for an image of one digit, at the smallest working size that keeps it sharp:
    a digit that fills much of the image (a drawing, a close-up) is read at QUICK_SIZE, several
    times faster; a small one in a large image, or one written with a fine pen, at WORK_SIZE."""
    gray = to_gray(open_image(source))
    quick = to_ink(shrink(gray, QUICK_SIZE))
    if max(gray.shape) <= QUICK_SIZE:
        return quick
    if quick.any():
        crop = crop_to_ink(quick)
        if max(crop.shape) >= DETAIL and stroke_width(crop) >= QUICK_STROKE:
            return quick
    return to_ink(reduce(gray))


def normalise_digit(ink: np.ndarray) -> np.ndarray | None:
    """Steps 4-6 on an ink map: the 28x28 MNIST-style array, or None if there is no ink
    (or only a dot, smaller than MIN_INK pixels each way)."""
    if not ink.any() or max(crop_to_ink(ink).shape) < MIN_INK:
        return None
    return centre_by_mass(fit_box(crop_to_ink(ink)))


def preprocess(source: ImageSource) -> np.ndarray | None:
    """Any image -> float32 [28, 28] in [0, 1] (white ink on black), or None for a blank image."""
    return normalise_digit(digit_ink(source))


@dataclass(frozen=True)
class Segment:
    """One digit cut out of a number: its box (x0, y0, x1, y1) in working pixels, and its ink."""

    box: tuple[int, int, int, int]
    ink: np.ndarray


Judge = Callable[[list[np.ndarray]], list[float]]  # 28x28 pieces of ink -> how sure: a digit


def split_digits(ink: np.ndarray, judge: Judge | None = None) -> list[Segment]:
    """Cut the ink of one written line of digits into digits, ordered left to right.

    Connected components are the starting point; fragments shorter than MIN_HEIGHT line
    heights (a broken stroke) join a neighbouring digit. A component wide enough to hold
    touching digits may be cut at columns with little ink: with a `judge` (how sure a
    classifier is that a piece of ink is one digit: `Predictor` asks the digit model and the
    verifier), the cuts are chosen by dynamic programming so that the judge is surest of
    the resulting digits and their widths and heights are plausible (segmentation by
    recognition); without one, components wider than 1.3 line heights are cut into
    equal-width digits at their thinnest columns.
    """
    labels, count = connected_components(ink > 0)
    if count == 0:
        return []
    groups = _merge_broken_strokes(labels, count, judge)
    line_height = float(np.median([ink_box(g)[3] - ink_box(g)[1] for g in groups]))
    segments = []
    for group in groups:
        piece = np.where(group, ink, 0)
        if judge is None:
            segments.extend(_cut_evenly(piece, line_height))
        else:
            segments.extend(_cut_by_recognition(piece, line_height, judge))
    digits = [s for s in segments if max(s.box[2] - s.box[0], s.box[3] - s.box[1]) >= MIN_INK]
    return sorted(digits, key=lambda s: (s.box[0] + s.box[2]) / 2)


def _judged(judge: Judge, inks: list[np.ndarray]) -> list[float]:
    """The judge's confidence in each ink map read as one digit (0 for a mere dot)."""
    digits = [normalise_digit(ink) for ink in inks]
    found = iter(judge([d for d in digits if d is not None]))
    return [next(found) if d is not None else 0.0 for d in digits]


def _merge_broken_strokes(labels: np.ndarray, count: int, judge: Judge | None) -> list[np.ndarray]:
    """Component masks, with fragments (shorter than MIN_HEIGHT line heights) joined to a
    neighbouring digit: the nearest one if it shares or abuts their columns (a stroke broken
    off above or below it), else the neighbour the judge reads best, else the nearest in x."""
    masks = [labels == i for i in range(1, count + 1)]
    boxes = [ink_box(m) for m in masks]
    heights = np.array([b[3] - b[1] for b in boxes])
    line_height = np.median(heights[heights >= 0.5 * heights.max()])
    whole = [i for i in range(count) if heights[i] >= MIN_HEIGHT * line_height]
    digits = {i: masks[i] for i in whole}
    for i in sorted(set(range(count)) - set(whole), key=lambda i: -heights[i]):
        if not digits:
            digits[i] = masks[i]
            continue
        gap = {j: max(boxes[j][0] - boxes[i][2], boxes[i][0] - boxes[j][2]) for j in digits}
        left = [j for j in digits if boxes[j][0] <= boxes[i][0]]
        right = [j for j in digits if boxes[j][0] > boxes[i][0]]
        near = {min(side, key=gap.get) for side in (left, right) if side}
        if judge is not None and len(near) > 1 and min(gap[j] for j in near) > 0:
            merged = {j: digits[j] | masks[i] for j in near}
            scores = _judged(judge, [np.where(m, 1.0, 0.0) for m in merged.values()])
            best = list(merged)[int(np.argmax(scores))]
        else:
            best = min(near, key=gap.get)
        digits[best] = digits[best] | masks[i]
    return _join_overlapping(list(digits.values()), judge, line_height)


def _join_overlapping(groups: list[np.ndarray], judge: Judge | None,
                      line_height: float) -> list[np.ndarray]:
    """Join neighbours that overlap in x by half the narrower one's width or more (a digit
    drawn in two strokes, like a 6 whose loop misses its stem), unless the judge reads them
    clearly better as two digits."""
    groups = sorted(groups, key=lambda g: ink_box(g)[0])
    joined = [groups[0]]
    for group in groups[1:]:
        a, b = ink_box(joined[-1]), ink_box(group)
        overlap = min(a[2], b[2]) - max(a[0], b[0])
        if overlap >= 0.5 * min(a[2] - a[0], b[2] - b[0]):
            union = joined[-1] | group
            if judge is None:
                joined[-1] = union
                continue
            one, left, right = _judged(judge, [np.where(m, 1.0, 0.0)
                                               for m in (union, joined[-1], group)])
            x0, _, x1, _ = ink_box(union)
            as_one = np.log(max(one, 1e-9)) + _width_log_prior(x1 - x0, line_height)
            as_two = np.log(max(left, 1e-9)) + np.log(max(right, 1e-9)) - CUT_PENALTY
            if as_one >= as_two:
                joined[-1] = union
                continue
        joined.append(group)
    return joined


def _clean_cut(piece: np.ndarray, left: int, right: int) -> Segment | None:
    """The ink between two columns, without the small stubs of neighbouring digits' strokes
    that a straight cut leaves behind: pieces smaller than STUB_FRACTION of the largest that
    touch a column where the ink was cut. Small pieces clear of the cut columns are kept: a
    digit's own broken strokes (the bar of a 5, the left stroke of an open 4)."""
    part = np.zeros_like(piece)
    part[:, left:right] = piece[:, left:right]
    if not part.any():
        return None
    x0, _, x1, _ = ink_box(piece > 0)
    edges = [c for c, cut in ((left, left > x0), (right - 1, right < x1)) if cut]
    part = remove_specks(part, STUB_FRACTION, edges)
    return Segment(ink_box(part), part)


def _cut_evenly(piece: np.ndarray, line_height: float) -> list[Segment]:
    """Without a classifier: cut components wider than 1.3 line heights into equal parts."""
    x0, _, x1, _ = ink_box(piece > 0)
    width = x1 - x0
    parts = max(1, round(width / (0.75 * line_height))) if width > 1.3 * line_height else 1
    profile = (piece[:, x0:x1] > 0).sum(0)
    cuts = [x0]
    for k in range(1, parts):
        lo = k * width // parts - width // (4 * parts)
        hi = k * width // parts + width // (4 * parts) + 1
        cuts.append(x0 + lo + int(np.argmin(profile[lo:hi])))
    cuts.append(x1)
    return [s for a, b in itertools.pairwise(cuts) if (s := _clean_cut(piece, a, b)) is not None]


def _candidate_cuts(profile: np.ndarray, most: int = 14) -> list[int]:
    """Columns where a cut could separate touching digits: local minima of the ink profile
    (the least inked first), at least 3 px apart and away from the ends."""
    width = len(profile)
    smooth = np.convolve(profile, np.ones(3) / 3, mode="same")
    minima = [c for c in range(3, width - 3)
              if smooth[c] <= smooth[c - 1] and smooth[c] <= smooth[c + 1]]
    chosen: list[int] = []
    for c in sorted(minima, key=lambda c: smooth[c]):
        if all(abs(c - d) >= 3 for d in chosen):
            chosen.append(c)
        if len(chosen) == most:
            break
    return sorted(chosen)


def _crossings(column: np.ndarray) -> int:
    """How many strokes a vertical cut through this column would sever (runs of ink)."""
    inked = np.concatenate([[False], column > 0, [False]])
    return int(np.count_nonzero(inked[1:] & ~inked[:-1]))


def _width_log_prior(width: int, line_height: float) -> float:
    """How plausible a width is for one digit: handwritten digits are rarely wider than about
    0.9 line heights (log of a half-Gaussian penalty beyond that)."""
    return -(max(0.0, width / line_height - 0.9) / 0.25) ** 2


def _height_log_prior(height: int, line_height: float) -> float:
    """How plausible a height is for one digit: a digit fills most of its line's height,
    so shorter ink (the bar of a 5, the tail of a 2) is part of one (log of a steep
    half-Gaussian penalty below MIN_HEIGHT)."""
    return -(max(0.0, MIN_HEIGHT - height / line_height) / 0.1) ** 2


def _shape_log_prior(segment: Segment, line_height: float) -> float:
    """How plausible a segment's width and height are for one digit."""
    x0, y0, x1, y1 = segment.box
    return _width_log_prior(x1 - x0, line_height) + _height_log_prior(y1 - y0, line_height)


def _cut_by_recognition(piece: np.ndarray, line_height: float, judge: Judge) -> list[Segment]:
    """The cuts that maximise the digits' summed log-confidence plus width priors, minus a
    penalty per cut (dynamic programming over candidate columns)."""
    x0, _, x1, _ = ink_box(piece > 0)
    if x1 - x0 < MIN_CUT_WIDTH * line_height:
        return [Segment(ink_box(piece > 0), piece)]
    cuts = [x0, *(x0 + c for c in _candidate_cuts((piece[:, x0:x1] > 0).sum(0))), x1]
    spans = {(i, j): seg for i in range(len(cuts)) for j in range(i + 1, len(cuts))
             if cuts[j] - cuts[i] <= 1.6 * line_height
             and (seg := _clean_cut(piece, cuts[i], cuts[j])) is not None}
    if not spans:
        return [Segment(ink_box(piece > 0), piece)]
    confidences = _judged(judge, [seg.ink for seg in spans.values()])
    score = {span: np.log(max(c, 1e-9)) + _shape_log_prior(spans[span], line_height)
             for span, c in zip(spans, confidences, strict=True)}
    cost = [0.0, *(CUT_PENALTY + CROSSING_PENALTY * max(0, _crossings(piece[:, c]) - 1)
                   for c in cuts[1:-1]), 0.0]  # the ends are no cuts
    best: dict[int, tuple[float, list]] = {0: (0.0, [])}
    for j in range(1, len(cuts)):
        options = [(best[i][0] + score[(i, j)] - (cost[i] if i else 0.0), best[i][1] + [(i, j)])
                   for i in range(j) if i in best and (i, j) in score]
        if options:
            best[j] = max(options, key=lambda o: o[0])
    if len(cuts) - 1 not in best:
        return [Segment(ink_box(piece > 0), piece)]
    return [spans[span] for span in best[len(cuts) - 1][1]]
