"""Render the documentation's pictures of preprocessing and of the number reader's input.

    PYTHONPATH=src python scripts/docs_figures.py    # writes docs/images/preprocess-steps.png
                                                     # and docs/images/reader-steps.png

Each step is the public function of `digitrec.preprocess` or `digitrec.reader` that the
pipeline runs, applied to the example photos in docs/examples/. numpy and Pillow only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitrec import reader
from digitrec.preprocess import (
    centre_by_mass,
    crop_to_ink,
    digit_ink,
    fit_box,
    open_image,
    reduce,
    to_gray,
    to_ink,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES, IMAGES = ROOT / "docs" / "examples", ROOT / "docs" / "images"
TILE, CAPTION, GAP = 150, 34, 10  # pixels
FONT = ImageFont.load_default()


def tile(picture: Image.Image | np.ndarray, width: int = TILE, height: int = TILE,
         nearest: bool = False) -> Image.Image:
    """A picture (an image, or an array in [0, 1]) fitted into a grey-framed tile."""
    if isinstance(picture, np.ndarray):
        picture = Image.fromarray((255 * np.clip(picture, 0, 1)).astype(np.uint8))
    picture = picture.convert("RGB")
    scale = min(width / picture.width, height / picture.height)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    picture = picture.resize(size, Image.NEAREST if nearest else Image.LANCZOS)
    out = Image.new("RGB", (width, height), (235, 235, 235))
    out.paste(picture, ((width - size[0]) // 2, (height - size[1]) // 2))
    return out


def strip(tiles: list[tuple[Image.Image, str]], columns: int) -> Image.Image:
    """Tiles with their captions below, `columns` to a row."""
    width, height = tiles[0][0].size
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * (width + GAP) + GAP, rows * (height + CAPTION + GAP) + GAP),
                      "white")
    draw = ImageDraw.Draw(sheet)
    for i, (picture, caption) in enumerate(tiles):
        x = GAP + (i % columns) * (width + GAP)
        y = GAP + (i // columns) * (height + CAPTION + GAP)
        sheet.paste(picture, (x, y))
        for j, line in enumerate(caption.split("\n")):
            draw.text((x + 2, y + height + 4 + 12 * j), line, fill=(40, 40, 40), font=FONT)
    return sheet


def preprocess_steps(path: Path) -> Image.Image:
    """The steps of `digitrec.preprocess.preprocess` on a photo of one digit."""
    image = open_image(path)
    gray = to_gray(image)
    ink = digit_ink(path)  # steps 1-3 at the working size preprocess chooses
    crop = crop_to_ink(ink)
    boxed = fit_box(crop)
    digit = centre_by_mass(boxed)
    return strip([
        (tile(image), "1. the photo\nopen_image"),
        (tile(gray), "2. grayscale\nto_gray"),
        (tile(ink), "3. ink: white on black\nto_ink"),
        (tile(crop), "4. cropped to the ink\ncrop_to_ink"),
        (tile(np.pad(boxed, 1), nearest=True), "5. stroke, 20 px box\nfit_box"),
        (tile(digit, nearest=True), "6. 28x28, centre of mass\ncentre_by_mass"),
    ], columns=3)


def reader_steps(path: Path) -> Image.Image:
    """The steps of `digitrec.reader.line_of` on a photo of a written number (no marks judge)."""
    image = open_image(path)
    gray = reduce(to_gray(image))
    x0, y0, x1, y1 = reader.field_box(gray)
    ink = reader.clean_field(to_ink(gray[y0:y1, x0:x1]))
    writing, (wx0, wy0, wx1, wy1) = reader.writing_of(ink)
    line = reader.line_of(path)
    wide = 3 * TILE + 2 * GAP
    return strip([
        (tile(image, wide, 130), "1. the photo; a scanner margin is cut off (field_box)"),
        (tile(ink, wide, 130), "2. ink, white on black, ruled lines cleared (to_ink, clean_field)"),
        (tile(writing[wy0:wy1, wx0:wx1], wide, 130), "3. the line of writing, cropped (writing_of)"),
        (tile(line.input, wide, 3 * reader.HEIGHT, nearest=True),
         f"4. the reader's input: {reader.HEIGHT} x {reader.WIDTH} px (line_input)"),
    ], columns=1)


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name, sheet in (("preprocess-steps.png", preprocess_steps(EXAMPLES / "digit.jpg")),
                        ("reader-steps.png", reader_steps(EXAMPLES / "number.jpg"))):
        target = IMAGES / name
        sheet.convert("P", palette=Image.ADAPTIVE, colors=64).save(target, optimize=True)
        print(f"wrote {target.relative_to(ROOT)} ({target.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
