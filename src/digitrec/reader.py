"""The number reader: a written number read as a whole line, without cutting it into digits.

An image of one line (a cheque amount, a form field, a drawing) becomes the reader's input in
steps that can each be used and tested on their own:

1. `field_box`: a black scanner margin at the edges of a scanned field is cut off.
2. `preprocess.to_ink`: polarity and background removal: white ink on black. Then
   `clean_field`: ink running along nearly the whole field (ruled lines, printed frames) is
   cleared, and `without_marks` takes out the pieces of ink a judge (the verifier, see
   `digitrec.verifier`) calls marks: scribbles, letters and shapes beside the digits.
3. `writing_of`: the line of writing: what is left of ruled lines and frames (straight
   components much longer than the writing is tall) and strays above and below the line are
   dropped; its box holds the components large enough to be part of a digit.
4. `line_input`: the box scaled to HEIGHT rows (aspect ratio kept, at most WIDTH columns)
   and padded to HEIGHT x WIDTH.

The network (`digitrec.reader_model`, trained by `digitrec train-reader`) reads the input as
WIDTH / STEP columns of evidence, each a probability over the ten digits and "nothing here"
(CTC, Graves et al. 2006); each line is read in `views` (shifted a row up and down, bolder,
brighter) whose probabilities are averaged column by column. `decode` finds the most likely
digits, summed over every way of placing them in the columns, and the columns each is read in:
marks that are not digits (separators, dashes, underlines) are read as nothing. Each digit
keeps its column span, and `digit_inks` shares the line's ink out among the digits, so each has
a box in the image and can be read again on its own (`digitrec.predict` does, with the digit
model). numpy, Pillow and ONNX Runtime only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .errors import ConfigError, ModelError
from .options import option
from .preprocess import (
    ImageSource,
    component_areas,
    connected_components,
    ink_box,
    normalise_digit,
    open_image,
    otsu_threshold,
    reduce,
    to_gray,
    to_ink,
)
from .runtime import metadata_of, onnx_session

HEIGHT, WIDTH = 32, 160  # the reader's input, in pixels
MARGIN = 2  # rows of background above and below the writing in the input
STEP = 4  # input columns per output column
BLANK = 10  # the output class for "no digit here"; classes 0-9 are the digits
MARGIN_DARK = 0.9  # an edge column (or row) darker than the paper along more of it is margin
SEAM = 0.1  # and next to it, columns this much darker than the paper are its seam
MIN_FIELD = 0.25  # a margin leaves at least this part of the image's width (and height)
LINE_FRACTION = 0.85  # ink running along more of the field's height or width is a line
PART_FRACTION = 0.08  # components smaller than this fraction of the largest are not writing
TALL = 0.5  # unless they are at least this part of the main component's height (a thin 1)
FLAT = 3  # a component this many times wider than tall is a stroke under or beside digits
THIN = 0.15  # a component this thin for its length is a stroke or a line
LINE_LENGTH = 2.5  # and a line when this many times longer than the others are tall
EDGE = 2  # or when this close to the left or right edge (the rest of a line or margin)
BAND = 0.6  # components centred further than this many line heights off the line are not
INPUT, OUTPUT = "line", "log_probs"  # tensor names in the exported ONNX file
BATCH = 256  # inputs per ONNX Runtime call
BEAM = 8  # readings of a line kept while decoding it (`best_labels`)
PRUNE = 1e-3  # a reading grows only by the digits at least this likely in a column
VIEWS = 5  # each line is read as these many views of it (`views`)
BRIGHTER = 0.6  # the exponent that brightens faint strokes in one of them
MARK_ASPECT = 1.2  # only pieces of ink at most this many times wider than tall may be marks
PIECE_FRACTION = 0.2  # in a digit's ink, pieces smaller than this part of its largest are strays
PIECE_GAP = 0.3  # and so are pieces further than this many line heights from its centre
KIND = "number-reader"  # the card's `kind`, which tells a reader from a digit model


def _margin(edge: np.ndarray) -> tuple[int, int]:
    """How many leading and trailing entries of a per-column (or per-row) flag are set."""
    if edge.all():
        return 0, 0
    return int(np.argmin(edge)), int(np.argmin(edge[::-1]))


def _margins(gray: np.ndarray, dark: np.ndarray, seam_alone: bool) -> tuple[int, int]:
    """Columns of margin at the left and right: dark nearly all the way down, then the shaded
    seam beside them (darker than the paper in the middle). A shaded edge with no dark margin
    counts only where `seam_alone`: at the top and bottom of a field cut from a page, not at
    the sides, where a photo's shading would cut off the first or last digit."""
    left, right = _margin(dark.mean(0) > MARGIN_DARK)
    inner = slice(left, gray.shape[1] - right)
    paper = float(np.median(gray[:, inner][~dark[:, inner]])) if (~dark[:, inner]).any() else 1
    shaded = np.median(gray, 0) < paper - SEAM
    seam_left = _margin(shaded[left:])[0] if left or seam_alone else 0
    seam_right = _margin(shaded[:gray.shape[1] - right])[1] if right or seam_alone else 0
    return left + seam_left, right + seam_right


def field_box(gray: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the field without a black scanner margin at its edges (columns or
    rows dark nearly all along, and their shaded seam). An image whose middle is dark too is
    a dark page, kept whole."""
    h, w = gray.shape
    dark = gray < otsu_threshold(gray)
    left, right = _margins(gray, dark, seam_alone=False)
    if w - left - right < MIN_FIELD * w or dark[:, left:w - right].mean() > 0.5:
        return 0, 0, w, h
    columns = slice(left, w - right)
    top, bottom = _margins(gray[:, columns].T, dark[:, columns].T, seam_alone=True)
    if h - top - bottom < MIN_FIELD * h:
        top = bottom = 0
    return left, top, w - right, h - bottom


def _long_runs(mask: np.ndarray, length: int) -> np.ndarray:
    """The pixels of `mask` in vertical runs at least `length` long, gaps of a pixel bridged
    and a slight tilt allowed (a column counts its neighbours' ink)."""
    wide = mask.copy()
    wide[:, 1:] |= mask[:, :-1]
    wide[:, :-1] |= mask[:, 1:]
    wide[1:-1] |= wide[:-2] & wide[2:]
    # the columns one after another, each between rows of background, so no run crosses two
    flat = np.pad(wide, ((1, 1), (0, 0))).T.ravel().astype(np.int8)
    edges = np.flatnonzero(np.diff(flat))
    starts, ends = edges[::2], edges[1::2]
    long = ends - starts >= length
    inside = np.zeros(len(flat) + 1, np.int32)
    np.add.at(inside, starts[long] + 1, 1)
    np.add.at(inside, ends[long] + 1, -1)
    runs = np.cumsum(inside[:-1]).reshape(mask.shape[1], -1)[:, 1:-1].T > 0
    near = runs.copy()
    near[:, 1:] |= runs[:, :-1]
    near[:, :-1] |= runs[:, 1:]
    return near & mask


def clean_field(ink: np.ndarray) -> np.ndarray:
    """Clear what spans nearly the whole field: ruled lines, printed frames, a margin's edge
    (vertical and horizontal runs of ink longer than LINE_FRACTION of the image)."""
    mask = ink > 0
    lines = _long_runs(mask, int(LINE_FRACTION * mask.shape[0]))
    lines |= _long_runs(mask.T, int(LINE_FRACTION * mask.shape[1])).T
    return np.where(lines, 0, ink).astype(np.float32)


MarkJudge = Callable[[np.ndarray], np.ndarray]  # [N, 28, 28] pieces of ink -> which are marks


def without_marks(ink: np.ndarray, is_mark: MarkJudge) -> np.ndarray:
    """The ink without the connected components that `is_mark` calls marks, each judged
    normalised like a cut-out digit. Only pieces about as wide as one character are judged:
    wider ones are joined-up writing (or lines, which the reader reads as nothing); specks too
    small to normalise are kept."""
    labels, count = connected_components(ink > 0)
    if count == 0:
        return ink
    boxes = component_boxes(labels, count)
    narrow = boxes[:, 2] - boxes[:, 0] <= MARK_ASPECT * (boxes[:, 3] - boxes[:, 1])
    pieces, numbers = [], []
    for number in np.flatnonzero(narrow) + 1:
        x0, y0, x1, y1 = boxes[number - 1]
        box = np.s_[y0:y1, x0:x1]
        digit = normalise_digit(np.where(labels[box] == number, ink[box], 0))
        if digit is not None:
            pieces.append(digit)
            numbers.append(number)
    if not pieces:
        return ink
    marks = np.asarray(numbers)[is_mark(np.stack(pieces))]
    return np.where(np.isin(labels, marks), 0, ink).astype(ink.dtype)


def component_boxes(labels: np.ndarray, count: int) -> np.ndarray:
    """[count, 4] boxes (x0, y0, x1, y1) of the components 1..count of a label image."""
    ys, xs = np.nonzero(labels)
    index = labels[ys, xs] - 1
    boxes = np.empty((count, 4), dtype=np.int64)
    boxes[:, :2], boxes[:, 2:] = np.iinfo(np.int64).max, 0
    np.minimum.at(boxes[:, 0], index, xs)
    np.minimum.at(boxes[:, 1], index, ys)
    np.maximum.at(boxes[:, 2], index, xs + 1)
    np.maximum.at(boxes[:, 3], index, ys + 1)
    return boxes


def _is_line(boxes: np.ndarray, areas: np.ndarray, width: int) -> np.ndarray:
    """Which components are straight lines (the rest of a ruled line, a frame or a margin a
    field was cut from): thin, and much longer than the others are tall or within EDGE of
    the left or right edge. The others are those of at least PART_FRACTION of the largest
    area, so that specks do not make a thin 1 a line; where every one of them is thin (a row
    of 1s), all of them are measured."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    thin = np.minimum(w, h) <= THIN * np.maximum(w, h)
    measured = areas >= PART_FRACTION * areas.max()
    others = h[measured & ~thin] if (measured & ~thin).any() else h[measured]
    edge = (boxes[:, 0] <= EDGE) | (boxes[:, 2] >= width - EDGE)
    return thin & ((np.maximum(w, h) >= LINE_LENGTH * np.median(others)) | edge)


def _main_component(boxes: np.ndarray, areas: np.ndarray, height: int) -> int:
    """The component most likely to be a digit: the largest, counting a long flat one (an
    underline) a quarter and one far from the middle rows (a form's printed footer) half."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    middle = (boxes[:, 1] + boxes[:, 3]) / 2
    score = areas * np.where(w > FLAT * h, 0.25, 1.0) * (1 - abs(middle - height / 2) / height)
    return int(score.argmax())


def writing_of(ink: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The line of writing: the ink without straight lines and without the components centred
    further than BAND line heights off the main component's rows (strays above and below),
    and the box of what is left of at least PART_FRACTION of the largest area or TALL of the
    main component's height. None when there is no writing."""
    labels, count = connected_components(ink > 0)
    if count == 0:
        return None
    areas = component_areas(labels, count).astype(np.float64)
    boxes = component_boxes(labels, count)
    lines = _is_line(boxes, areas, ink.shape[1])
    if lines.all():
        return None
    areas_left = np.where(lines, 0, areas)
    significant = areas_left >= PART_FRACTION * areas_left.max()
    main = _main_component(boxes, np.where(significant, areas_left, 0), ink.shape[0])
    y0, y1 = boxes[main, 1], boxes[main, 3]
    reach = BAND * (y1 - y0)
    middle = (boxes[:, 1] + boxes[:, 3]) / 2
    stray = (middle < y0 - reach) | (middle > y1 + reach)
    tall = ~lines & (boxes[:, 3] - boxes[:, 1] >= TALL * (y1 - y0))
    dropped = np.concatenate([[True], lines | (significant & stray)])
    kept = (significant | tall) & ~stray
    box = (int(boxes[kept, 0].min()), int(boxes[kept, 1].min()),
           int(boxes[kept, 2].max()), int(boxes[kept, 3].max()))
    return np.where(dropped[labels], 0, ink).astype(np.float32), box


def line_input(crop: np.ndarray) -> tuple[np.ndarray, float]:
    """The crop scaled to fill HEIGHT - 2 * MARGIN rows (narrowed further to fit WIDTH) at the
    left of a HEIGHT x WIDTH input; and the scale (input pixels per crop pixel) across."""
    h, w = crop.shape
    rows = HEIGHT - 2 * MARGIN
    scale_y = rows / h
    scale_x = min(scale_y, WIDTH / w)
    size = (max(1, min(WIDTH, round(w * scale_x))), rows)
    resized = Image.fromarray(crop.astype(np.float32), mode="F").resize(size, Image.BILINEAR)
    line = np.zeros((HEIGHT, WIDTH), dtype=np.float32)
    line[MARGIN:MARGIN + rows, :size[0]] = np.clip(np.asarray(resized), 0, 1)
    return line, size[0] / w


@dataclass(frozen=True)
class ReaderConfig:
    """How a reader is trained: each field a `digitrec train-reader` flag; its card records it."""

    lines: tuple[str, ...] = option(
        (), "a folder of real written numbers with labels.csv (file,number); WEIGHT repeats its "
            "training part per epoch (repeatable)", metavar="DIR[:WEIGHT]")
    add_data: tuple[str, ...] = option(
        (), "an image folder (DIR/<digit>/*) whose digits the synthetic lines draw from, besides "
            "MNIST's training digits (repeatable)", metavar="DIR[:WEIGHT]")
    synthetic: int = option(60_000, "synthetic lines to train on")
    epochs: int = option(10, "passes over the lines")
    batch_size: int = option(64, "lines per step")
    lr: float = option(2e-3, "peak learning rate")
    init: str = option("", "start from the weights of this reader .onnx, or `shipped` for the "
                           "shipped reader (fine-tuning)", metavar="READER")
    holdout: float = option(0.25, "the part of each --lines folder kept out of training and read "
                                  "to measure the reader: whole pages where the file names give "
                                  "them")
    seed: int = option(0, "random seed")

    def __post_init__(self) -> None:
        object.__setattr__(self, "lines", tuple(self.lines))  # lists from JSON
        object.__setattr__(self, "add_data", tuple(self.add_data))
        if self.synthetic < 0 or self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 \
                or not 0 <= self.holdout < 1:
            raise ConfigError("--synthetic must be at least 0, --epochs and --batch-size at "
                              "least 1, --lr above 0, --holdout at least 0 and below 1")


@dataclass(frozen=True)
class Line:
    """An image of a written number as the reader sees it: `input` (HEIGHT x WIDTH, white ink
    on black), where it came from in the working image (`box`), the scale across, and the ink
    of the box at the working size (`writing`)."""

    input: np.ndarray
    box: tuple[int, int, int, int]
    scale: float
    writing: np.ndarray = field(repr=False)

    def span(self, first: int, last: int) -> tuple[int, int]:
        """The working-image columns of output columns first..last."""
        x0 = self.box[0] + first * STEP / self.scale
        x1 = self.box[0] + (last + 1) * STEP / self.scale
        return int(x0), min(self.box[2], int(np.ceil(x1)))

    def digit_box(self, read: DigitRead, ink: np.ndarray) -> tuple[int, int, int, int]:
        """Where a digit is in the working image: the box of its ink (from `digit_inks`), or
        where it has none, the line's rows over the columns it was read in."""
        if not ink.any():
            x0, x1 = self.span(read.first, read.last)
            return x0, self.box[1], x1, self.box[3]
        x0, y0, x1, y1 = ink_box(ink)
        return x0 + self.box[0], y0 + self.box[1], x1 + self.box[0], y1 + self.box[1]

    def centre(self, read: DigitRead) -> float:
        """The column of `writing` at the middle of the output columns a digit spans."""
        return (read.first + read.last + 1) / 2 * STEP / self.scale


def line_of(source: ImageSource, is_mark: MarkJudge | None = None) -> Line | None:
    """Steps 1-4 for any image (marks taken out where `is_mark` is given); None when it holds
    no writing. The box is in the pixels of the image reduced to the working size
    (`preprocess.reduce`), as digit boxes are."""
    gray = reduce(to_gray(open_image(source)))
    fx0, fy0, fx1, fy1 = field_box(gray)
    ink = clean_field(to_ink(gray[fy0:fy1, fx0:fx1]))
    found = writing_of(ink if is_mark is None else without_marks(ink, is_mark))
    if found is None:
        return None
    ink, (x0, y0, x1, y1) = found
    writing = ink[y0:y1, x0:x1]
    line, scale = line_input(writing)
    return Line(line, (x0 + fx0, y0 + fy0, x1 + fx0, y1 + fy0), scale, writing)


@dataclass(frozen=True)
class DigitRead:
    """One digit the reader found: its value, the probabilities of the ten digits where it is
    surest, the output columns it spans, and the probability there that a digit, whichever,
    is there (1 - P(nothing))."""

    digit: int
    probabilities: np.ndarray
    first: int
    last: int
    presence: float

    @property
    def confidence(self) -> float:
        """How sure the reader is of this digit: P(this digit) where it is surest."""
        return self.presence * float(self.probabilities[self.digit])


def best_labels(probs: np.ndarray) -> tuple[int, ...]:
    """The most likely digits for [columns, 11] probabilities, each reading's probability
    summed over every way of placing it in the columns: CTC prefix beam search (Hannun et
    al. 2014) keeping BEAM readings, each extended only by the classes at least PRUNE likely
    in a column. A digit spread thinly over several columns, each more likely "nothing",
    is read, where the single most likely path would lose it."""
    # each reading's probability so far, split by whether its path ends in "nothing" or not
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (1.0, 0.0)}
    for column in probs.astype(np.float64).tolist():
        nothing = column[BLANK]
        likely = [(c, p) for c, p in enumerate(column[:BLANK]) if p >= PRUNE]
        if not likely:  # nothing but "nothing" here: every reading stays as it is
            beams = {labels: ((blank + digit) * nothing, 0.0)
                     for labels, (blank, digit) in beams.items()}
            continue
        grown: dict[tuple[int, ...], tuple[float, float]] = {}
        for labels, (blank, digit) in beams.items():
            _grow(grown, labels, (blank + digit) * nothing, 0.0)
            for c, p in likely:
                if labels and labels[-1] == c:  # a repeat is a new digit only after a blank
                    _grow(grown, (*labels, c), 0.0, blank * p)
                    _grow(grown, labels, 0.0, digit * p)
                else:
                    _grow(grown, (*labels, c), 0.0, (blank + digit) * p)
        beams = dict(sorted(grown.items(), key=lambda item: -sum(item[1]))[:BEAM])
    return max(beams, key=lambda labels: sum(beams[labels]))


def _grow(beams: dict[tuple[int, ...], tuple[float, float]], labels: tuple[int, ...],
          blank: float, digit: float) -> None:
    """Add paths' probability (ending in "nothing", ending in a digit) to a reading."""
    old_blank, old_digit = beams.get(labels, (0.0, 0.0))
    beams[labels] = (old_blank + blank, old_digit + digit)


def alignment(log_probs: np.ndarray, labels: tuple[int, ...]) -> np.ndarray:
    """For each column, the index in `labels` of the digit it reads (-1: nothing), along the
    most likely path that reads `labels` (Viterbi over CTC's states: nothing, digit 1,
    nothing, digit 2, ..., nothing)."""
    states = np.full(2 * len(labels) + 1, BLANK)
    states[1::2] = labels
    skip = np.zeros(len(states), dtype=bool)  # a digit may follow the one before directly
    skip[3::2] = states[3::2] != states[1:-2:2]
    score = np.full(len(states), -np.inf)
    score[:2] = log_probs[0, states[:2]]
    back = np.zeros((len(log_probs), len(states)), dtype=np.int64)
    for t in range(1, len(log_probs)):
        before = np.stack([score, np.r_[-np.inf, score[:-1]],
                           np.where(skip, np.r_[-np.inf, -np.inf, score[:-2]], -np.inf)])
        moves = before.argmax(0)
        back[t] = np.arange(len(states)) - moves
        score = before.max(0) + log_probs[t, states]
    state = len(states) - 1 if len(states) == 1 or score[-1] >= score[-2] else len(states) - 2
    path = np.empty(len(log_probs), dtype=np.int64)
    for t in range(len(log_probs) - 1, -1, -1):
        path[t] = state
        state = back[t, state]
    return np.where(path % 2 == 1, path // 2, -1)


def decode(log_probs: np.ndarray) -> list[DigitRead]:
    """The digits in [columns, 11] log-probabilities (`best_labels`), each with the columns
    it is read in (`alignment`); a digit's confidence is its peak probability there."""
    probs = np.exp(log_probs)
    labels = best_labels(probs)
    best = probs.argmax(1)  # the likeliest path: where it reads `labels`, it is their alignment
    starts = (best != BLANK) & (best != np.r_[BLANK, best[:-1]])
    if labels == tuple(int(c) for c in best[starts]):
        owner = np.where(best != BLANK, np.cumsum(starts) - 1, -1)
    else:
        owner = alignment(log_probs, labels)
    reads = []
    for k, digit in enumerate(labels):
        columns = np.flatnonzero(owner == k)
        peak = int(columns[probs[columns, digit].argmax()])
        presence = float(probs[peak, :BLANK].sum())
        reads.append(DigitRead(digit, probs[peak, :BLANK] / presence, int(columns[0]),
                               int(columns[-1]), presence))
    return reads


def digit_inks(line: Line, reads: list[DigitRead]) -> list[np.ndarray]:
    """The ink of each digit read, as arrays the size of `line.writing`, so that each can be
    read again on its own: the ink shared out by `_owners`, without the connected pieces of a
    digit's ink smaller than PIECE_FRACTION of its largest or further than PIECE_GAP line
    heights from its centre (remnants of ruled lines, a neighbour's stub); a digit of one
    piece keeps it."""
    if not reads:
        return []
    writing = line.writing
    h, w = writing.shape
    centres = np.array([line.centre(read) for read in reads])
    digits = len(centres)
    labels, count = connected_components(writing > 0)
    owners = _owners(labels, count, centres)
    # each digit's ink in a band of its own, a row of background between, so that one
    # labelling finds the pieces of every digit
    bands = np.zeros((digits, h + 1, w), dtype=bool)
    bands[:, :h] = (owners == np.arange(digits)[:, None, None]) & (labels > 0)
    pieces, found = connected_components(bands.reshape(-1, w))
    areas = component_areas(pieces, found)
    boxes = component_boxes(pieces, found)
    owner = boxes[:, 1] // (h + 1)
    largest = np.zeros(digits)
    np.maximum.at(largest, owner, areas)
    several = np.bincount(owner, minlength=digits) > 1
    gaps = np.maximum(0, np.maximum(boxes[:, 0] - centres[owner], centres[owner] - boxes[:, 2]))
    near = (areas >= PIECE_FRACTION * largest[owner]) & (gaps <= PIECE_GAP * h)
    kept = np.concatenate([[False], near | ~several[owner]])[pieces].reshape(digits, h + 1, w)
    return [np.where(kept[i, :h], writing, 0) for i in range(digits)]


def _owners(labels: np.ndarray, count: int, centres: np.ndarray) -> np.ndarray:
    """Which digit (an index into `centres`, columns of the label image) each pixel belongs
    to: a connected piece of ink that spans one centre, to that digit; one that spans none,
    to the digit nearest its centre of mass; one that spans several is cut between them, each
    column to the digit whose centre is nearest."""
    width = labels.shape[1]
    nearest = np.searchsorted((centres[1:] + centres[:-1]) / 2, np.arange(width) + 0.5)
    boxes = component_boxes(labels, count)
    spans = (centres >= boxes[:, :1]) & (centres <= boxes[:, 2:3])  # [pieces, digits]
    columns = np.broadcast_to(np.arange(width), labels.shape).ravel()
    middles = np.bincount(labels.ravel(), columns, count + 1)[1:] / component_areas(labels, count)
    spanned = spans.sum(1)
    whole = np.where(spanned == 1, spans.argmax(1),
                     np.where(spanned == 0, nearest[middles.astype(int)], -1))
    whole = np.concatenate([[-1], whole])[labels]
    return np.where(whole >= 0, whole, nearest)


def number_of(reads: list[DigitRead]) -> str:
    """The digits read, as a string."""
    return "".join(str(r.digit) for r in reads)


class NumberReader:
    """Runs an exported reader (`digitrec train-reader`) with ONNX Runtime."""

    def __init__(self, model: str | os.PathLike | bytes, source: str | None = None) -> None:
        source = source or str(model)
        self.session = onnx_session(model if isinstance(model, bytes) else str(model), source)
        self.card = metadata_of(self.session).get("card")
        inputs = self.session.get_inputs()
        if (not isinstance(self.card, dict) or self.card.get("kind") != KIND
                or list(inputs[0].shape[1:]) != [1, HEIGHT, WIDTH]):
            raise ModelError(f"{source} is not a number reader from `digitrec train-reader`")

    def log_probs(self, lines: np.ndarray) -> np.ndarray:
        """[N, columns, 11] log-probabilities for inputs [N, HEIGHT, WIDTH], each the average
        of the probabilities over its `views`."""
        seen = np.concatenate([views(line) for line in lines]) if len(lines) else lines
        batch = np.ascontiguousarray(seen[:, None], dtype=np.float32)
        probs = np.exp(self.session.run(None, {INPUT: batch})[0])
        return np.log(probs.reshape(len(lines), VIEWS, *probs.shape[1:]).mean(1))

    def decode_all(self, lines: np.ndarray) -> list[list[DigitRead]]:
        """The digits of each input [N, HEIGHT, WIDTH], left to right."""
        step = BATCH // VIEWS
        return [decode(row) for start in range(0, len(lines), step)
                for row in self.log_probs(lines[start:start + step])]

    def read(self, line: Line) -> list[DigitRead]:
        """The digits of one line, left to right."""
        return decode(self.log_probs(line.input[None])[0])


def _shifted(line: np.ndarray, rows: int = 0, columns: int = 0) -> np.ndarray:
    """The input moved down by `rows` and right by `columns` (negative: up, left), with
    background coming in at the edges."""
    out = np.zeros_like(line)
    h, w = line.shape
    out[max(rows, 0):h + min(rows, 0), max(columns, 0):w + min(columns, 0)] = \
        line[max(-rows, 0):h - max(rows, 0), max(-columns, 0):w - max(columns, 0)]
    return out


def views(line: np.ndarray) -> np.ndarray:
    """The VIEWS inputs the reader reads a line [HEIGHT, WIDTH] as: itself, one row higher,
    one row lower, with strokes a pixel bolder, and with faint strokes brighter. Every view
    keeps the columns where they are, so their probabilities are averaged column by column:
    a reading that holds only in one view loses to one that holds in most."""
    bolder = np.maximum(line, np.maximum(_shifted(line, rows=1), _shifted(line, columns=1)))
    return np.stack([line, _shifted(line, rows=-1), _shifted(line, rows=1), bolder,
                     line ** BRIGHTER])
