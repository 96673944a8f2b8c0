"""Connected pieces of ink: labelling, dropping specks, bounding boxes."""

from __future__ import annotations

import numpy as np

SPECK_FRACTION = 0.02  # components smaller than this fraction of the largest are noise


def _ink_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal runs of ink in raster order: (row, first column, end column exclusive).
    Each row is framed by background, so its edges alternate: a run's start, then its end."""
    h, w = mask.shape
    framed = np.zeros((h, w + 2), dtype=np.int8)
    framed[:, 1:-1] = mask
    rows, columns = np.divmod(np.flatnonzero(np.diff(framed, axis=1)), w + 1)
    return rows[0::2], columns[0::2], columns[1::2]


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
    parent = _join(len(rows), *_touching_runs(rows, starts, ends, w))
    first = parent == np.arange(len(rows))  # a component's first run is its root
    labels = np.cumsum(first, dtype=np.int32)[parent]
    lengths = ends - starts
    flat = np.repeat(rows * w + starts - np.cumsum(lengths) + lengths, lengths) \
        + np.arange(lengths.sum())
    out = np.zeros(h * w, dtype=np.int32)
    out[flat] = np.repeat(labels, lengths)
    return out.reshape(h, w), int(first.sum())


def _root(parent: list[int], item: int) -> int:
    """The root of an item, halving the path to it on the way."""
    while parent[item] != item:
        parent[item] = parent[parent[item]]
        item = parent[item]
    return item


def _join(count: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The root of each of `count` items once the pairs (a, b) are joined: the lowest item
    of its group. Every item's parent is at or below it, so one pass in order resolves all."""
    parent = list(range(count))
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        x, y = _root(parent, x), _root(parent, y)
        if x != y:
            parent[max(x, y)] = min(x, y)
    for i in range(count):
        parent[i] = parent[parent[i]]
    return np.array(parent, dtype=np.intp)


def component_areas(labels: np.ndarray, count: int) -> np.ndarray:
    """[count] pixels in each of the components 1..count of a label image."""
    return np.bincount(labels.ravel(), minlength=count + 1)[1:]


def remove_specks(ink: np.ndarray, fraction: float = SPECK_FRACTION,
                  columns: list[int] | None = None) -> np.ndarray:
    """Zero the components smaller than `fraction` of the largest one (dust, paper texture);
    with `columns`, only those that have ink in one of these columns."""
    labels, count = connected_components(ink > 0)
    if count <= 1:
        return ink
    areas = component_areas(labels, count)
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
