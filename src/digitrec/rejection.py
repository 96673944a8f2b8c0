"""Refusing what is not a digit: the threshold, its curve, and the non-digits it is measured on.

The verifier (`digitrec.verifier`) gives every piece of ink a digit-likeness in [0, 1]; an
image below the threshold is answered "not a digit". The threshold trades the two errors, so
both are always reported together: the part of real digits refused, and the part of
non-digits refused, over every threshold (the curve) and at the chosen one. The threshold is
chosen on held-out training digits only; non-digits to measure on are printed in fonts the
verifier never learnt from (HELD_OUT_FONTS) and drawn as new renderings (other random strokes)
of the shapes it learnt. numpy and Pillow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .nondigits import font_files, nondigits
from .options import option
from .preprocess import normalise_digit
from .processes import forked_map

MAX_REFUSED = 0.004  # the threshold refuses at most this part of the held-out digits
CURVE = np.round(np.linspace(0.0, 1.0, 41), 3)  # thresholds of the refusal curve
TRAIN_FONTS, HELD_OUT_FONTS = ("DejaVu", "cm"), ("STIXGeneral",)  # see nondigits.font_files
NORMALISE_CHUNK = 256  # images a worker normalises per task


@dataclass(frozen=True)
class VerifierConfig:
    """How the verifier is trained: each field a `digitrec train-verifier` flag."""

    add_data: tuple[str, ...] = option(
        (), "an image folder of real digits to learn from besides MNIST (repeatable); part of "
            "each is held out to choose the threshold", metavar="DIR")
    count: int = option(40_000, "whole digits, and as many pieces, to train on")
    others: int = option(60_000, "non-digits (letters, signs, drawn shapes, clothes) to train on")
    photos: int = option(10_000, "whole digits, and as many non-digits, also trained on as "
                                 "photos and scans")
    epochs: int = option(8, "passes over them")
    holdout: float = option(0.15, "the part of each --add-data folder held out, by writer where "
                                  "names give writers")
    seed: int = option(0, "random seed")

    def __post_init__(self) -> None:
        object.__setattr__(self, "add_data", tuple(str(path) for path in self.add_data))
        if min(self.count, self.others, self.epochs) < 1 or self.photos < 0 \
                or not 0 < self.holdout < 1:
            raise ConfigError("--count, --others and --epochs must be at least 1, --photos at "
                              "least 0, --holdout between 0 and 1")


def stacked(digits: list) -> np.ndarray:
    """28x28 arrays as float32 [N, 28, 28], those that are None (no ink) left out."""
    found = [d for d in digits if d is not None]
    return np.stack(found).astype(np.float32) if found else np.zeros((0, 28, 28), np.float32)


def normalised_each(inks: Sequence[np.ndarray]) -> list[np.ndarray | None]:
    """`normalise_digit` of each ink (float in [0, 1]), on every core."""
    return list(forked_map(normalise_digit, inks, chunksize=NORMALISE_CHUNK))


def _normalised_uint8(image: np.ndarray) -> np.ndarray | None:
    return normalise_digit(image / np.float32(255))


def normalised(images: np.ndarray) -> np.ndarray:
    """uint8 MNIST-style images normalised as a cut-out digit (and any preprocessed image)
    is: float32 [N, 28, 28]."""
    return stacked(list(forked_map(_normalised_uint8, images, chunksize=NORMALISE_CHUNK)))


def rendered_nondigits(count: int, seed: int, fonts: list) -> np.ndarray:
    """`count` non-digits (`nondigits.nondigits`: letters in `fonts`, drawings), normalised
    as cut-out digits."""
    return stacked(normalised_each(nondigits(count, seed, fonts)))


def choose_threshold(digit_scores: np.ndarray, most_refused: float = MAX_REFUSED) -> float:
    """The highest threshold that refuses (scores below it) at most `most_refused` of the
    held-out digits' scores."""
    if len(digit_scores) == 0:
        raise ConfigError("no held-out digits to choose a threshold on")
    ranked = np.sort(np.asarray(digit_scores))
    return float(ranked[int(most_refused * len(ranked))])


def refusal(digit_scores: np.ndarray, other_scores: np.ndarray, threshold: float) -> dict:
    """Both error rates at `threshold`, and over the thresholds of CURVE (a score below the
    threshold is refused)."""
    def rates(t: float) -> dict:
        return {"threshold": float(t), "digits_refused": float((digit_scores < t).mean()),
                "others_refused": float((other_scores < t).mean())}

    return {**rates(threshold), "digits": len(digit_scores), "others": len(other_scores),
            "curve": [rates(t) for t in CURVE]}


def held_out_nondigits(count: int, seed: int) -> np.ndarray:
    """`count` non-digits the verifier has not seen, normalised as cut-out digits: half
    printed in HELD_OUT_FONTS, half drawn with strokes of a seed training does not use."""
    return rendered_nondigits(count, seed, font_files(HELD_OUT_FONTS))
