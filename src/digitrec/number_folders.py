"""Folders of written numbers: images with a `labels.csv` (`file,number`), as the reader's
inputs.

Every image goes through `reader.line_of`, the steps `digitrec predict --multi` takes, and the
results are cached by content like digit folders (`digitrec.folders`). A number is labelled
with its digits only (`1.990.-` is `1990`). Fields cut from the same page (`<page>_row_id_3.jpg`)
share a group, so a held-out part can be made of whole pages. numpy and Pillow only.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import preprocess, reader
from .errors import DataUnavailableError
from .folders import cached_conversion, check_problems, code_fingerprint, contents_fingerprint, held_out

LABELS = "labels.csv"
PAGE = re.compile(r"[_-]row(?:[_-]?id)?[_-]?\d+$", re.IGNORECASE)  # a field's place on its page


@dataclass(frozen=True)
class NumberFolder:
    """The usable images of a number folder: uint8 reader inputs [N, HEIGHT, WIDTH], each
    image's number, file (relative to the folder) and page ('' where the name gives none);
    the files listed but left out, and why."""

    name: str
    root: Path
    inputs: np.ndarray
    numbers: tuple[str, ...]
    files: tuple[str, ...]
    pages: tuple[str, ...]
    fingerprint: str
    left_out: tuple[str, ...]
    problems: tuple[str, ...]  # "file: why" for each file left out

    def __len__(self) -> int:
        return len(self.numbers)


def page_of(file: str) -> str:
    """The page a field was cut from (`died_K2709_0099a-DM_row_id_0.jpg` -> `died_K2709_0099a-DM`),
    '' when the name does not say."""
    stem = Path(file).stem
    return PAGE.sub("", stem) if PAGE.search(stem) else ""


def read_labels(root: Path) -> list[tuple[str, str]]:
    """(file, number) from `root/labels.csv`; clear errors for a missing file or bad rows."""
    path = root / LABELS
    if not path.is_file():
        raise DataUnavailableError(f"{root} has no {LABELS}: a number folder lists its images "
                                   f"as rows `file,number`")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["file", "number"]:
        raise DataUnavailableError(f"{path} must start with the header `file,number`")
    entries = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) < 2 or not row[0].strip() or not row[1].strip().isdigit():
            raise DataUnavailableError(f"{path}, line {line}: expected `file,number` with the "
                                       f"number as digits, got {','.join(row)!r}")
        entries.append((row[0].strip(), row[1].strip()))
    if not entries:
        raise DataUnavailableError(f"{path} lists no images")
    return entries


def as_input(image: bytes) -> np.ndarray | None:
    """The reader's input for one image, or None when it holds no writing."""
    line = reader.line_of(image)
    return None if line is None else line.input


def load_numbers(root: str | os.PathLike,
                 warn: Callable[[str], None] | None = None) -> NumberFolder:
    """Read a number folder through `reader.line_of` (cached by content); `warn` gets one
    message listing the files left out. A folder with no usable image is an error."""
    root = Path(root)
    entries = read_labels(root)
    fingerprint = contents_fingerprint(root, entries)
    inputs, kept, problems = cached_conversion(
        root, [file for file, _ in entries], fingerprint,
        code_fingerprint(preprocess, reader), as_input, (reader.HEIGHT, reader.WIDTH))
    check_problems(root, problems, len(entries), len(kept), warn)
    files = tuple(entries[i][0] for i in kept)
    left_out = tuple(sorted({file for file, _ in entries} - set(files)))
    return NumberFolder(root.resolve().name, root, inputs, tuple(entries[i][1] for i in kept),
                        files, tuple(page_of(f) for f in files), fingerprint, left_out,
                        tuple(problems))


def held_out_files(folder: NumberFolder, fraction: float,
                   left_out: Sequence[str] | None = None) -> list[str]:
    """The files of a folder's held-out part (`folders.held_out` with its fixed seed), and the
    files left out that belong to it (all of them where the part is single images), so that
    an evaluation counts the unreadable ones as misread. The part is drawn over the labelled
    files less `left_out`: those left out when a reader was trained (its card's
    `left_out_files`; default: those left out now), so that a file that could not be read
    then and can now does not move the part away from what the reader never saw."""
    left = set(folder.left_out if left_out is None else left_out)
    listed = [file for file, _ in read_labels(folder.root) if file not in left]
    pages = [page_of(f) for f in listed]
    mask = held_out(pages, fraction)
    files = [f for f, held in zip(listed, mask, strict=True) if held]
    held_pages = {p for p, held in zip(pages, mask, strict=True) if held and p}
    by_page = all(pages)
    return files + sorted(f for f in left if not by_page or page_of(f) in held_pages)
