"""Written numbers read exactly: real numbers from folders, or five MNIST test digits side by
side, rendered as photos.

    python benchmarks/read_numbers.py --folder ../shared/data/orand-car-a  # real cheque amounts
    python benchmarks/read_numbers.py                               # synthetic, shipped reader
    python benchmarks/read_numbers.py --reader segment --verifier v.onnx --seeds 1,2
    python benchmarks/read_numbers.py --reader segment --perfect-cuts  # the classifier's limit
    python benchmarks/read_numbers.py --reader segment --explain  # was it cut right?

A folder holds images and a `labels.csv` (`file,number`). For a folder the reader was trained
on (its card names it by its contents' fingerprint), only the part it held out is read, with
the files of that part left out in training for want of ink counted as misread; `--all` reads
every image, `--fresh-from F` only the part beyond what `--holdout F` held out. Folder mode
prints exact reads overall and by number of digits, and the time per
image through `Predictor.predict_number` (warm; p50 and p90).

Each seed renders `count` numbers with `digitrec.photos` (random gaps, slight overlaps,
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
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
from common import run_benchmark
from PIL.Image import Image

from digitrec import photos
from digitrec.data import load_split
from digitrec.number_folders import held_out_files, load_numbers, read_labels
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
        yield photos.render_number(digits, rng, only=k)


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
    number = predictor.predict_number(photos.render_number(digits, rng))
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


def folder_files(predictor: Predictor, root: Path, every: bool, fresh_from: float
                 ) -> tuple[list[tuple[str, str]], str]:
    """(file, number) to read from a number folder, and which part that is."""
    labels = dict(read_labels(root))
    card = predictor.reader.card if predictor.reader is not None else {}
    if not every:
        folder = load_numbers(root)
        for source in card.get("sources", []):
            if source["fingerprint"] == folder.fingerprint:
                left_out = source.get("left_out_files")  # as when the reader was trained
                files = held_out_files(folder, card["config"]["holdout"], left_out)
                if fresh_from:
                    seen = set(held_out_files(folder, fresh_from, left_out))
                    files = [f for f in files if f not in seen]
                    return [(f, labels[f]) for f in files], f"held out beyond {fresh_from:g}"
                return [(f, labels[f]) for f in files], "held out in training"
    return list(labels.items()), "all"


def read_folder(predictor: Predictor, root: Path, every: bool, fresh_from: float) -> dict:
    """Read a folder of numbers; print and return exact reads, by length, and times."""
    entries, part = folder_files(predictor, root, every, fresh_from)
    predictor.predict_number(root / entries[0][0])  # warm up
    right, by_length, times = 0, Counter(), []
    totals = Counter(len(number) for _, number in entries)
    for file, number in entries:
        start = time.perf_counter()
        got = predictor.predict_number(root / file).number
        times.append(time.perf_counter() - start)
        right += got == number
        by_length[len(number)] += got == number
    p50, p90 = (float(np.percentile(times, q) * 1000) for q in (50, 90))
    print(f"{root}: {part}: {right} of {len(entries)} read exactly ({right / len(entries):.1%}); "
          f"p50 {p50:.1f} ms, p90 {p90:.1f} ms per image")
    for length in sorted(totals):
        print(f"  {length} digits: {by_length[length]} of {totals[length]} "
              f"({by_length[length] / totals[length]:.1%})")
    return {"folder": str(root), "part": part, "numbers": len(entries),
            "exact_fraction": right / len(entries), "p50_ms": p50, "p90_ms": p90,
            "by_length": {n: [by_length[n], totals[n]] for n in sorted(totals)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run directory or .onnx file (default: the shipped model)")
    parser.add_argument("--reader", help="number reader .onnx, or `segment` (default: shipped)")
    parser.add_argument("--verifier", help="verifier .onnx (default: shipped)")
    parser.add_argument("--force-digit", action="store_true",
                        help="keep the marks the verifier calls non-digits in each number")
    parser.add_argument("--folder", action="append", default=[], type=Path,
                        help="a folder of numbers with labels.csv (repeatable)")
    parser.add_argument("--all", action="store_true",
                        help="read every image of a folder, even those the reader trained on")
    parser.add_argument("--fresh-from", type=float, default=0.0, metavar="F",
                        help="read only the held-out part beyond the first F of it (the same "
                             "seed holds out a superset for a larger fraction): a part that "
                             "no earlier run with --holdout F held out, so never looked at")
    parser.add_argument("--seeds", default="1,2,21,22,31,32", help="comma-separated")
    parser.add_argument("--count", type=int, default=200, help="numbers per seed")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--perfect-cuts", action="store_true",
                     help="read each digit rendered alone in its place")
    how.add_argument("--explain", action="store_true",
                     help="tell misreads of well-cut digits from those of wrong cuts")
    parser.add_argument("--data-dir", help="directory with the MNIST files")
    args = parser.parse_args()
    predictor = Predictor(args.model, verifier=args.verifier, reader=args.reader,
                          force_digit=args.force_digit)
    if args.folder:
        results = [read_folder(predictor, root, args.all, args.fresh_from)
                   for root in args.folder]
        print(json.dumps({"model": args.model or "shipped", "reader": args.reader or "shipped",
                          "folders": results}))
        return
    images, labels = load_split("mnist", "test", args.data_dir)
    read = read_perfectly_cut if args.perfect_cuts else partial(read_whole, explain=args.explain)
    kinds = Counter(read(predictor, digits, rng, truth)
                    for seed in (int(s) for s in args.seeds.split(","))
                    for digits, truth, rng in photos.five_digit_numbers(images, labels, seed,
                                                                       args.count))
    total = sum(kinds.values())
    for name, n in kinds.most_common():
        print(f"{name:<36} {n:>5}  {n / total:.1%}")
    print(json.dumps({"model": args.model or "shipped", "reader": args.reader or "shipped",
                      "verifier": args.verifier or "shipped",
                      "perfect_cuts": args.perfect_cuts, "seeds": args.seeds,
                      "numbers": total, "exact_fraction": kinds.get("exact", 0) / total,
                      "counts": dict(kinds)}))


if __name__ == "__main__":
    run_benchmark(main)
