"""Connected pieces of ink: labelling, dropping specks, bounding boxes."""

from __future__ import annotations

import numpy as np

SPECK_FRACTION = 0.02  # components smaller than this fraction of the largest are noise


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
