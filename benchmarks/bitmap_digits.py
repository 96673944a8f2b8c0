"""Held-out real digits stored as small binary bitmaps, read through the Predictor path.

    python benchmarks/bitmap_digits.py                     # shipped model, ../shared/data
    python benchmarks/bitmap_digits.py --model runs/x      # a run directory or an .onnx file

Some public digit sets keep each digit as a small bitmap: Semeion stretches every digit to fill
a 16x16 box and stores ink or no ink; UCI optdigits keeps 32x32 bitmaps. Neither is in
`../shared`, so this benchmark renders the held-out parts of the real sources that way: each
digit's ink cropped, stretched to fill a square of 16 or 32 px, and thresholded (ink is what
is darker than 35% of the digit's darkest ink: these scans are small and grey, where a fixed
mid-grey threshold would break thin strokes), as dark ink on white. Every bitmap then goes
through `digitrec predict`'s path, refusals counted as misreads. One line per source and
size, then one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from common import run_benchmark
from PIL import Image
from real_digits import SOURCES, accuracy_text, digits_read, held_out_files, scored

from digitrec.predict import Predictor

SIZES = (16, 32)
INK_LEVEL = 0.35  # a pixel is ink when it is darker than this share of the darkest ink
FOUND = 0.25  # the digit's box: pixels with more than this share of the darkest ink


def scan_ink(gray: np.ndarray) -> np.ndarray:
    """Ink in [0, 1] of a grey digit of either polarity (the border shows the paper)."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    ink = 1 - gray if border.mean() > 0.5 else gray
    return ink - ink.min()


def as_bitmap(gray: np.ndarray, size: int) -> Image.Image:
    """The digit stretched to fill a size x size square, then ink or paper: black on white."""
    ink = scan_ink(gray)
    rows, cols = np.nonzero(ink > FOUND * ink.max())
    crop = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    square = np.asarray(Image.fromarray(crop.astype(np.float32), mode="F")
                        .resize((size, size), Image.BILINEAR))
    return Image.fromarray(np.where(square > INK_LEVEL * square.max(), 0, 255).astype(np.uint8))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run directory or .onnx file (default: the shipped model)")
    parser.add_argument("--data-dir", default=os.environ.get("DIGITREC_DATA", "../shared/data"))
    args = parser.parse_args()
    folders = [Path(args.data_dir) / s for s in SOURCES if (Path(args.data_dir) / s).is_dir()]
    if not folders:
        raise SystemExit(f"no real sources under {args.data_dir}")
    predictor = Predictor(args.model)
    card = predictor.backend.card
    print(f"model: {args.model or 'shipped'}")
    print(f"{'source':<22} {'bitmap':>7} {'part':<24} {'images':>7}  accuracy (95% CI)")
    results = []
    for folder in folders:
        files, labels, part = held_out_files(folder, card)
        grays = [np.asarray(Image.open(folder / f).convert("L"), np.float32) / 255 for f in files]
        name = f"{folder.parent.name}/{folder.name}"
        for size in SIZES:
            score = scored(digits_read(predictor, [as_bitmap(g, size) for g in grays]), labels)
            print(f"{name:<22} {size:>4} px {part:<24} {len(labels):>7}  {accuracy_text(score)}")
            results.append({"source": name, "bitmap": size, "part": part, **score})
    print(json.dumps({"model": args.model or "shipped", "sources": results}))
    return 0


if __name__ == "__main__":
    run_benchmark(main)
