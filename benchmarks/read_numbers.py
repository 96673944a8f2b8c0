"""Written numbers read exactly: five MNIST test digits side by side, rendered as photos.

    python benchmarks/read_numbers.py                               # shipped model and verifier
    python benchmarks/read_numbers.py --model runs/acc --verifier v.onnx --seeds 1,2
    python benchmarks/read_numbers.py --perfect-cuts --seeds 21,22  # the classifier's own limit
    python benchmarks/read_numbers.py --explain  # digit wrong: was it cut right?

Each seed renders `count` numbers with `tests/synth.py` (random gaps, slight overlaps,
baseline jitter, coloured pages, blur, JPEG): the same numbers as the tests for the same seed.
Misreads are counted by kind: a digit lost (touching digits read as one), a digit gained, or
the right length with a digit wrong. `--perfect-cuts` renders each digit of a number alone in
its place and reads it with the classifier, so no cut can be wrong. `--explain` tells the
misreads of the right length apart: "cut right" when every piece the number was cut into
matches one digit's own ink (its box, rendered alone, overlaps the piece's box by at least
BOX_MATCH of their union), so the classifier misread a well-cut digit; else "cut wrong".
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
from PIL.Image import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import synth
from common import run_benchmark

from digitrec.data import load_split
from digitrec.predict import NumberPrediction, Predictor
from digitrec.preprocess import ink_box, ink_of

BOX_MATCH = 0.7  # intersection over union of a piece's box and a digit's own ink box


def kind(got: str, truth: str) -> str:
    """How a reading compares with the truth."""
    if got == truth:
        return "exact"
    if len(got) != len(truth):
        return "lost a digit" if len(got) < len(truth) else "gained a digit"
    return "one length, digit wrong"


def alone(digits: list[np.ndarray], rng: np.random.Generator, state: dict) -> Iterator[Image]:
    """Each digit rendered alone where it stands in the number: the same page, the same
    effects, the same random draws from the generator `state` the number was drawn with."""
    for k in range(len(digits)):
        rng.bit_generator.state = state
        yield synth.render_number(digits, rng, only=k)


def overlap(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / area


def cut_right(number: NumberPrediction, digits: list[np.ndarray], rng: np.random.Generator,
              state: dict) -> bool:
    """Whether each piece the number was cut into is one digit (see BOX_MATCH)."""
    own = [ink_box(ink_of(image)) for image in alone(digits, rng, state)]
    return len(own) == len(number.digits) and all(
        overlap(d.box, box) >= BOX_MATCH for d, box in zip(number.digits, own, strict=True))


def read_whole(predictor: Predictor, digits: list[np.ndarray], rng: np.random.Generator,
               truth: str, explain: bool = False) -> str:
    """How `predict_number` reads the number (`kind`, and with `explain` whether a
    misread of the right length was cut right)."""
    state = rng.bit_generator.state
    number = predictor.predict_number(synth.render_number(digits, rng))
    found = kind(number.number, truth)
    if explain and found == "one length, digit wrong":
        return found + (", cut right" if cut_right(number, digits, rng, state) else
                        ", cut wrong")
    return found


def read_perfectly_cut(predictor: Predictor, digits: list[np.ndarray],
                       rng: np.random.Generator, truth: str) -> str:
    """How the classifier reads each digit rendered alone in its place (`kind`)."""
    answers = predictor.predict(list(alone(digits, rng, rng.bit_generator.state)))
    return kind("".join("?" if a.digit is None else str(a.digit) for a in answers), truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run directory or .onnx file (default: the shipped model)")
    parser.add_argument("--verifier", help="cut verifier .onnx (default: the shipped one)")
    parser.add_argument("--seeds", default="1,2,21,22,31,32", help="comma-separated")
    parser.add_argument("--count", type=int, default=200, help="numbers per seed")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--perfect-cuts", action="store_true",
                     help="read each digit rendered alone in its place")
    how.add_argument("--explain", action="store_true",
                     help="tell misreads of well-cut digits from those of wrong cuts")
    parser.add_argument("--data-dir", help="directory with the MNIST files")
    args = parser.parse_args()
    images, labels = load_split("mnist", "test", args.data_dir)
    predictor = Predictor(args.model, verifier=args.verifier)
    read = read_perfectly_cut if args.perfect_cuts else partial(read_whole, explain=args.explain)
    kinds = Counter(read(predictor, digits, rng, truth)
                    for seed in (int(s) for s in args.seeds.split(","))
                    for digits, truth, rng in synth.five_digit_numbers(images, labels, seed,
                                                                       args.count))
    total = sum(kinds.values())
    for name, n in kinds.most_common():
        print(f"{name:<36} {n:>5}  {n / total:.1%}")
    print(json.dumps({"model": args.model or "shipped", "verifier": args.verifier or "shipped",
                      "perfect_cuts": args.perfect_cuts, "seeds": args.seeds,
                      "numbers": total, "exact_fraction": kinds.get("exact", 0) / total,
                      "counts": dict(kinds)}))


if __name__ == "__main__":
    run_benchmark(main)
