"""Refusing non-digits and reading digits, through `digitrec predict`'s path (Predictor).

    python benchmarks/rejection.py                    # the shipped models, ../shared/data
    python benchmarks/rejection.py --verifier FILE    # another verifier
    python benchmarks/rejection.py --count 300        # at most 300 images per set (quicker)

Every image is a PNG file's bytes, decoded and preprocessed as `digitrec predict FILE` does.
Non-digits: letters and signs printed in fonts the verifier never learnt from (matplotlib's
STIX; Liberation where the system has it) as scans; new drawings (other random strokes) of the
shapes and scribbles it learnt, on the page's canvas and on photo-like canvases (scribbles, one
in nine of them, also alone); Fashion-MNIST test images. Digits: MNIST test digits on
photo-like canvases, and the parts of USPS, CVL and ARDIS the shipped models held out (CVL by
writer; the verifier chose its threshold on these parts too, so only the MNIST line is
independent of it). Then the calibration error (ECE) of the digit model on MNIST test and CVL
valid, and the time per image with and without asking the verifier, alternated in one run.
One line per set, then one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from pathlib import Path

import numpy as np
from common import run_benchmark
from PIL import Image
from real_digits import held_out_files

from digitrec.calibration import reliability
from digitrec.data import load_split
from digitrec.folders import holdout_mask, load_folder
from digitrec.nondigits import LETTERS, drawn, drawn_kinds, font_files, printed
from digitrec.photos import drawing, render_digit
from digitrec.predict import Predictor
from digitrec.preprocess import normalise_digit, preprocess
from digitrec.rejection import HELD_OUT_FONTS

SEED = 11  # not a seed the verifier was trained or measured with
SYSTEM_FONTS = Path("/usr/share/fonts/truetype/liberation")
DIGIT_FOLDERS = ["usps/train", "cvl-digits/train", "cvl-digits/valid", "ardis-iv/train"]
TIMED = 300  # images per timing pass


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def photo(ink: np.ndarray, rng: np.random.Generator) -> bytes | None:
    """Ink as a photo or scan (the tests' photo-like canvas), None if too small to draw."""
    digit = normalise_digit(ink)
    return None if digit is None else png(render_digit((digit * 255).astype(np.uint8), rng))


def nondigit_sets(count: int, data_dir: Path,
                  rng: np.random.Generator) -> dict[str, list[bytes]]:
    """The non-digit sets, `count` images each (as many fonts as are there)."""
    fonts = font_files(HELD_OUT_FONTS) + sorted(SYSTEM_FONTS.glob("*.ttf"))
    kinds = drawn_kinds()
    letters = [photo(printed(LETTERS[rng.integers(len(LETTERS))], fonts[i % len(fonts)], rng),
                     rng) for i in range(count)]
    drawings = [drawn(kinds[rng.integers(len(kinds))], rng) for _ in range(count)]
    scribbles = [drawn("scribble", rng) for _ in range(count)]
    clothes = load_split("fashion-mnist", "test", data_dir)[0][:count]
    return {"printed letters, signs (held-out fonts)": [x for x in letters if x],
            "drawn shapes, page canvas": [png(drawing(d)) for d in drawings],
            "drawn shapes, photo canvas": [x for x in (photo(d, rng) for d in drawings) if x],
            "scribbles alone, page canvas": [png(drawing(d)) for d in scribbles],
            "Fashion-MNIST test": [png(Image.fromarray(255 - c)) for c in clothes]}


def digit_sets(count: int, card: dict, data_dir: Path,
               rng: np.random.Generator) -> dict[str, list[bytes | str]]:
    """MNIST test on photo-like canvases and the held-out parts of the real digit folders."""
    mnist = load_split("mnist", "test", data_dir)[0][:count]
    sets: dict[str, list[bytes | str]] = {
        "MNIST test, photo canvas": [png(render_digit(d, rng)) for d in mnist]}
    for name in DIGIT_FOLDERS:
        folder = data_dir / name
        if folder.is_dir():
            files, _, part = held_out_files(folder, card)
            sets[f"{name} ({part})"] = [str(folder / f) for f in files[:count]]
    return sets


def refused(predictor: Predictor, images: list) -> float:
    """The part of the images answered "not a digit"."""
    answers = [a for i in range(0, len(images), 256) for a in predictor.predict(images[i:i + 256])]
    return float(np.mean([a.status == "not_digit" for a in answers]))


def calibration(predictor: Predictor, data_dir: Path) -> dict:
    """ECE of the digit model's calibrated probabilities on MNIST test and CVL valid (all of
    it, and the writers the shipped model held out)."""
    x, y = load_split("mnist", "test", data_dir)
    out = {"MNIST test": reliability(predictor.backend.probabilities(x / np.float32(255)), y)}
    folder = data_dir / "cvl-digits/valid"
    if folder.is_dir():
        data = load_folder(folder)
        p = predictor.backend.probabilities(data.images / np.float32(255))
        mask = holdout_mask(data, predictor.backend.card.get("config", {}).get("holdout", 0.0))
        out["CVL valid"] = reliability(p, data.labels)
        out["CVL valid (held-out writers)"] = reliability(p[mask], data.labels[mask])
    return {name: {"ece": r["ece"], "images": sum(b["count"] for b in r["bins"])}
            for name, r in out.items()}


def per_image_ms(read, images: list[bytes]) -> float:
    start = time.perf_counter()
    for image in images:
        read(image)
    return 1000 * (time.perf_counter() - start) / len(images)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verifier", help="verifier .onnx file (default: the shipped one)")
    parser.add_argument("--count", type=int, default=1000,
                        help="at most this many images per set (default 1000)")
    parser.add_argument("--data-dir", default=os.environ.get("DIGITREC_DATA", "../shared/data"))
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be at least 1")
    rng = np.random.default_rng(SEED)
    predictor = Predictor(verifier=args.verifier)
    print(f"verifier: {args.verifier or 'shipped'}, threshold {predictor.verifier.threshold:.3f}")
    print(f"{'set':<44} {'images':>7} {'refused':>8}")
    results = {"non-digits": {}, "digits": {}}
    sets = {"non-digits": nondigit_sets(args.count, Path(args.data_dir), rng),
            "digits": digit_sets(args.count, predictor.backend.card, Path(args.data_dir), rng)}
    for kind, named in sets.items():
        for name, images in named.items():
            rate = refused(predictor, images)
            results[kind][name] = {"images": len(images), "refused": rate}
            print(f"{kind + ': ' + name:<44} {len(images):>7} {rate:>8.2%}")
    results["calibration"] = calibration(predictor, Path(args.data_dir))
    for name, r in results["calibration"].items():
        print(f"ECE {name:<40} {r['images']:>7} {r['ece']:>8.2%}")
    timed = sets["digits"]["MNIST test, photo canvas"][:TIMED]

    def without(image: bytes) -> None:  # predict without asking the verifier
        predictor.classify([preprocess(image)], refuse=False)

    times = {"with": [], "without": []}
    for _ in range(3):
        times["without"].append(per_image_ms(without, timed))
        times["with"].append(per_image_ms(lambda image: predictor.predict([image]), timed))
    with_ms, without_ms = min(times["with"]), min(times["without"])
    print(f"per image: {with_ms:.2f} ms with the verifier, {without_ms:.2f} ms without "
          f"({with_ms / without_ms - 1:+.1%})")
    results["per_image_ms"] = {"with_verifier": with_ms, "without": without_ms,
                               "ratio": with_ms / without_ms}
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    run_benchmark(main)
