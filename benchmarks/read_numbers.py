"""Written numbers read exactly: five MNIST test digits side by side, rendered as photos.

    python benchmarks/read_numbers.py                               # shipped model and verifier
    python benchmarks/read_numbers.py --model runs/acc --verifier v.onnx --seeds 1,2
    python benchmarks/read_numbers.py --perfect-cuts --seeds 21,22  # the classifier's own limit

Each seed renders `count` numbers with `tests/synth.py` (random gaps, slight overlaps,
baseline jitter, coloured pages, blur, JPEG): the same numbers as the tests for the same seed.
Misreads are counted by kind: a digit lost (touching digits read as one), a digit gained, or
the right length with a digit wrong. `--perfect-cuts` renders each digit of a number alone in
its place and reads it with the classifier, so no cut can be wrong. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import synth

from digitrec.data import load_split
from digitrec.predict import Predictor


def kind(got: str, truth: str) -> str:
    """How a reading compares with the truth."""
    if got == truth:
        return "exact"
    if len(got) != len(truth):
        return "lost a digit" if len(got) < len(truth) else "gained a digit"
    return "one length, digit wrong"


def read_whole(predictor: Predictor, digits: list[np.ndarray], rng: np.random.Generator) -> str:
    """The number as `predict_number` reads it."""
    return predictor.predict_number(synth.render_number(digits, rng)).number


def read_perfectly_cut(predictor: Predictor, digits: list[np.ndarray],
                       rng: np.random.Generator) -> str:
    """Each digit rendered alone where it stands in the number (same page, same effects, the
    same random draws) and read on its own."""
    state, read = rng.bit_generator.state, []
    for k in range(len(digits)):
        rng.bit_generator.state = state
        answer = predictor.predict([synth.render_number(digits, rng, only=k)])[0]
        read.append("?" if answer.digit is None else str(answer.digit))
    return "".join(read)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run directory or .onnx file (default: the shipped model)")
    parser.add_argument("--verifier", help="cut verifier .onnx (default: the shipped one)")
    parser.add_argument("--seeds", default="1,2,21,22,31,32", help="comma-separated")
    parser.add_argument("--count", type=int, default=200, help="numbers per seed")
    parser.add_argument("--perfect-cuts", action="store_true",
                        help="read each digit rendered alone in its place")
    parser.add_argument("--data-dir", help="directory with the MNIST files")
    args = parser.parse_args()
    images, labels = load_split("mnist", "test", args.data_dir)
    predictor = Predictor(args.model, verifier=args.verifier)
    read = read_perfectly_cut if args.perfect_cuts else read_whole
    kinds = Counter(kind(read(predictor, digits, rng), truth)
                    for seed in (int(s) for s in args.seeds.split(","))
                    for digits, truth, rng in synth.five_digit_numbers(images, labels, seed,
                                                                       args.count))
    total = sum(kinds.values())
    for name, n in kinds.most_common():
        print(f"{name:<24} {n:>5}  {n / total:.1%}")
    print(json.dumps({"model": args.model or "shipped", "verifier": args.verifier or "shipped",
                      "perfect_cuts": args.perfect_cuts, "seeds": args.seeds,
                      "numbers": total, "exact_fraction": kinds.get("exact", 0) / total,
                      "counts": dict(kinds)}))


if __name__ == "__main__":
    main()
