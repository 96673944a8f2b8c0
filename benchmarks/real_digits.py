"""Real handwriting of other sources, read through the Predictor path (`digitrec predict`).

    python benchmarks/real_digits.py                       # shipped model, ../shared/data
    python benchmarks/real_digits.py --model runs/x        # a run directory or an .onnx file
    python benchmarks/real_digits.py --folders DIR DIR     # other image folders

Every image file is decoded and preprocessed as `digitrec predict FILE` does it. A folder the
model was trained on (its card names a source with the same contents) is read only on the
part that training held out (the same writers or images), so every line is a held-out
measure; the `part` column says which. One line per source, then one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from common import run_benchmark

from digitrec.evaluate import trained_on, wilson_interval
from digitrec.folders import holdout_mask, load_folder
from digitrec.predict import Predictor

SOURCES = ["usps/train", "cvl-digits/train", "cvl-digits/valid", "ardis-iv/train"]
BATCH = 256


def held_out_files(folder: Path, card: dict) -> tuple[list[str], list[int], str]:
    """The files to read (relative to the folder), their labels, and which part they are."""
    data = load_folder(folder)
    source = trained_on([card], data.fingerprint)
    if source is None:
        return list(data.files), data.labels.tolist(), "all"
    holdout = card.get("config", {}).get("holdout", 0.0)
    mask = holdout_mask(data, holdout)
    if mask.sum() != source["val_images"]:
        raise SystemExit(f"{folder}: the held-out part does not match the card's "
                         f"({mask.sum()} vs {source['val_images']} images)")
    files = [f for f, m in zip(data.files, mask, strict=True) if m]
    part = f"held out ({len(source['val_writers'])} writers)" if "val_writers" in source \
        else "held out"
    return files, data.labels[mask].tolist(), part


def digits_read(predictor: Predictor, images: list) -> list[int]:
    """The digit read from each image, in batches (-1 for "not a digit" or blank)."""
    digits = []
    for i in range(0, len(images), BATCH):
        answers = predictor.predict(images[i:i + BATCH])
        digits += [a.digit if a.digit is not None else -1 for a in answers]
    return digits


def read(predictor: Predictor, folder: Path, files: list[str]) -> tuple[list[int], float]:
    """The digit read from each file (-1 for "not a digit" or blank) and the seconds it took."""
    start = time.perf_counter()
    digits = digits_read(predictor, [str(folder / f) for f in files])
    return digits, time.perf_counter() - start


def scored(digits: list[int], labels: list[int]) -> dict:
    """How many reads are right, the accuracy and its 95% interval."""
    right = int((np.array(digits) == np.array(labels)).sum())
    return {"images": len(labels), "correct": right, "accuracy": right / len(labels),
            "ci95": list(wilson_interval(right, len(labels)))}


def accuracy_text(score: dict) -> str:
    """'97.55% (96.53%-98.28%)'"""
    low, high = score["ci95"]
    return f"{score['accuracy']:.2%} ({low:.2%}-{high:.2%})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run directory or .onnx file (default: the shipped model)")
    parser.add_argument("--data-dir", default=os.environ.get("DIGITREC_DATA", "../shared/data"))
    parser.add_argument("--folders", nargs="+", help="image folders (default: the real sources "
                                                     "under --data-dir)")
    args = parser.parse_args()
    folders = [Path(f) for f in args.folders] if args.folders else \
        [Path(args.data_dir) / s for s in SOURCES if (Path(args.data_dir) / s).is_dir()]
    predictor = Predictor(args.model)
    card = predictor.backend.card
    print(f"model: {args.model or 'shipped'} ({card.get('command', 'no command in its card')})")
    print(f"{'source':<22} {'part':<24} {'images':>7}  {'accuracy (95% CI)':<26} {'ms/img':>7}")
    results = []
    for folder in folders:
        files, labels, part = held_out_files(folder, card)
        digits, seconds = read(predictor, folder, files)
        score = scored(digits, labels)
        name = f"{folder.parent.name}/{folder.name}"
        print(f"{name:<22} {part:<24} {len(labels):>7}  {accuracy_text(score):<26} "
              f"{1000 * seconds / len(files):>7.2f}")
        results.append({"source": name, "part": part, **score,
                        "ms_per_image": 1000 * seconds / len(files)})
    print(json.dumps({"model": args.model or "shipped", "sources": results}))
    return 0


if __name__ == "__main__":
    run_benchmark(main)
