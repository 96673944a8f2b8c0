"""Cutting the ink of a written number into digits (segmentation by recognition).

`split_digits` starts from connected pieces of ink, joins broken strokes and, with a judge
(a classifier's confidence that a piece is one digit), chooses where to cut touching digits.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .preprocess import MIN_INK, connected_components, ink_box, normalise_digit, remove_specks

STUB_FRACTION = 0.2  # pieces at a cut column smaller than this fraction of the largest are stubs
CUT_PENALTY = 0.5  # log-odds against each cut: a cut needs some evidence
CROSSING_PENALTY = 0.2  # and a little more for each extra stroke it severs
MIN_HEIGHT = 0.6  # ink shorter than this many line heights is part of a digit, never a digit
MIN_CUT_WIDTH = 0.65  # ink narrower than this many line heights is one digit, never cut


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
    if not piece[:, left:right].any():
        return None
    x0, _, x1, _ = ink_box(piece > 0)
    edges = [c - left for c, cut in ((left, left > x0), (right - 1, right < x1)) if cut]
    part = np.zeros_like(piece)  # the pieces are labelled between the columns alone
    part[:, left:right] = remove_specks(piece[:, left:right], STUB_FRACTION, edges)
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
