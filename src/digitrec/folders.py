"""Image-folder datasets: `DIR/<label>/<image>` (torchvision's ImageFolder layout) as tensors.

Every image goes through `preprocess`, the same steps `digitrec predict` takes, so a model
trained on a folder sees exactly what it will be asked to read. Images may have any size and
either polarity. The 28x28 results are cached under the decoded cache, keyed by the contents
of every file and of the preprocessing code, so a second load reads one file. Files that
cannot be read or hold no ink are reported, never silently dropped.

Writers: a file named `<label>-<writer>-<anything>` (as CVL's `3-0169-01-07.png`) names its
writer, so a held-out part can be made of whole writers. numpy and Pillow only: no torch.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from . import preprocess as preprocessing
from .data import decoded_cache_dir
from .errors import DataUnavailableError, ImageDecodeError
from .files import atomic_write
from .processes import forked_map

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                            ".pgm", ".ppm", ".pbm", ".pnm"})
DIGITS = tuple(str(d) for d in range(10))
SPLIT_NAMES = frozenset({"train", "training", "valid", "validation", "val", "test", "dev"})
HOLDOUT_SEED = 20240  # every run holds out the same part of a folder, so runs compare fairly
SHOWN_PROBLEMS = 10  # unreadable files named in the warning; the rest are counted
CONVERT_CHUNK = 64  # files a worker converts per task


@dataclass(frozen=True)
class FolderData:
    """The usable images of one folder: uint8 [N, 28, 28] white ink on black, int64 labels,
    each image's file (relative to the folder) and writer ('' where the name gives none)."""

    name: str
    root: Path
    images: np.ndarray
    labels: np.ndarray
    files: tuple[str, ...]
    writers: tuple[str, ...]
    fingerprint: str  # SHA-256 of every file's path and contents
    problems: tuple[str, ...]  # "file: why" for each file that was left out

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def has_writers(self) -> bool:
        return all(self.writers) and len(set(self.writers)) > 1


def source_name(root: Path) -> str:
    """A short name for a folder: `cvl-digits/train` -> `cvl-digits-train`, `usps` -> `usps`."""
    root = root.resolve()
    return f"{root.parent.name}-{root.name}" if root.name.lower() in SPLIT_NAMES else root.name


def list_images(root: Path, classes: tuple[str, ...]) -> list[tuple[str, int]]:
    """(relative path, label) of every image file under the class folders, sorted; anything
    else in the folder that looks like a class folder but is not one is an error."""
    if not root.is_dir():
        raise DataUnavailableError(f"image folder {root} does not exist or is not a directory")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in subdirs if p.name not in classes]
    if unknown:
        raise DataUnavailableError(
            f"{root}: folders {', '.join(unknown[:5])} are not class names; an image folder "
            f"holds one folder per class ({', '.join(classes)}) with the images inside")
    entries = []
    for directory in subdirs:
        label = classes.index(directory.name)
        entries += [(str(p.relative_to(root)), label) for p in sorted(directory.rglob("*"))
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return entries


def writer_of(path: str, label_name: str) -> str:
    """The writer id in a file name `<label>-<writer>-...`, else ''."""
    parts = Path(path).stem.split("-")
    return parts[1] if len(parts) >= 3 and parts[0] == label_name and parts[1] else ""


def code_fingerprint(*modules: ModuleType) -> str:
    """Changes whenever the code of these modules changes, so cached results follow it."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def contents_fingerprint(root: Path, entries: Sequence[tuple[str, object]]) -> str:
    """SHA-256 over every file's path, label and contents (read one file at a time)."""
    content = hashlib.sha256()
    for path, label in entries:
        try:
            blob = (root / path).read_bytes()
        except OSError:  # reported as left out when the folder is read
            blob = b""
        content.update(f"{path}\0{label}\0{len(blob)}\0".encode())
        content.update(hashlib.sha256(blob).digest())
    return content.hexdigest()


def _convert_one(root: Path, path: str, convert: Callable[[bytes], np.ndarray | None]
                ) -> np.ndarray | str:
    """`convert` applied to one file: the uint8 result, or "file: why" when it is left out."""
    try:
        array = convert((root / path).read_bytes())
    except ImageDecodeError as e:
        return f"{path}: {str(e).removeprefix('<bytes>: ')}"
    except OSError as e:
        return f"{path}: cannot be read ({e.strerror or e})"
    if array is None:
        return f"{path}: no ink found"
    return np.round(array * 255).astype(np.uint8)


def convert_all(root: Path, files: Sequence[str], convert: Callable[[bytes], np.ndarray | None],
                shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`convert` (an image's bytes -> float array in [0, 1], or None for no ink) applied to
    every file, on every core, with a progress bar: the uint8 results, the indices of the
    files they came from, and "file: why" for each file left out."""
    from tqdm import tqdm

    converted = forked_map(functools.partial(_convert_one, root, convert=convert), files,
                           chunksize=CONVERT_CHUNK)
    arrays, kept, problems = [], [], []
    for index, result in enumerate(tqdm(converted, total=len(files), unit="img", leave=False,
                                        desc=f"preprocessing {root}", disable=None)):
        if isinstance(result, str):
            problems.append(result)
        else:
            arrays.append(result)
            kept.append(index)
    stacked = np.stack(arrays) if arrays else np.zeros((0, *shape), np.uint8)
    return stacked, np.array(kept, dtype=np.int64), problems


def cached_arrays(name: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays stored as `name`.npz in the decoded cache, computed (and stored) when missing or
    unreadable; a read-only cache only costs time."""
    entry = decoded_cache_dir() / f"{name}.npz"
    try:
        with np.load(entry, allow_pickle=False) as cached:
            return dict(cached)
    except (OSError, ValueError):
        pass
    arrays = compute()
    try:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        with atomic_write(entry) as f:
            f.write(buffer.getvalue())
    except OSError:
        pass
    return arrays


def cached_conversion(root: Path, files: Sequence[str], fingerprint: str, code: str,
                      convert: Callable[[bytes], np.ndarray | None], shape: tuple[int, ...]
                      ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`convert_all`, cached in the decoded cache under the folder's contents and the code."""
    digest = hashlib.sha256(code.encode())
    digest.update(fingerprint.encode())

    def compute() -> dict[str, np.ndarray]:
        images, kept, problems = convert_all(root, files, convert, shape)
        return {"images": images, "kept": kept, "problems": np.array(problems, dtype=str)}

    arrays = cached_arrays(f"folder-{digest.hexdigest()}", compute)
    return arrays["images"], arrays["kept"], [str(p) for p in arrays["problems"]]


def check_problems(root: Path, problems: list[str], total: int, usable: int,
                   warn: Callable[[str], None] | None) -> None:
    """One warning listing the files left out; an error when none was usable."""
    if problems and warn is not None:
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        more = f"; and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        warn(f"{root}: {len(problems)} of {total} files left out ({shown}{more})")
    if usable == 0:
        raise DataUnavailableError(f"image folder {root} has no usable image: "
                                   f"{'; '.join(problems[:SHOWN_PROBLEMS])}")


def load_folder(root: str | os.PathLike, classes: tuple[str, ...] = DIGITS,
                warn: Callable[[str], None] | None = None) -> FolderData:
    """Read an image folder through `preprocess` (cached by content); `warn` gets one message
    listing the files left out, if any. A folder with no usable image is an error."""
    root = Path(root)
    entries = list_images(root, classes)
    if not entries:
        raise DataUnavailableError(f"image folder {root} holds no image files in its class "
                                   f"folders ({', '.join(classes)})")
    fingerprint = contents_fingerprint(root, entries)
    images, kept, problems = cached_conversion(
        root, [path for path, _ in entries], fingerprint, code_fingerprint(preprocessing),
        preprocessing.preprocess, (28, 28))
    check_problems(root, problems, len(entries), len(kept), warn)
    files = tuple(entries[i][0] for i in kept)
    labels = np.array([entries[i][1] for i in kept], dtype=np.int64)
    writers = tuple(writer_of(f, classes[label]) for f, label in zip(files, labels, strict=True))
    return FolderData(source_name(root), root, images, labels, files, writers, fingerprint,
                      tuple(problems))


def held_out(groups: Sequence[str], fraction: float, seed: int = HOLDOUT_SEED) -> np.ndarray:
    """Which items form the held-out part: whole groups (writers, pages) where every item has
    one and there are several (at least one group held out, one kept), else single items."""
    rng = np.random.default_rng(seed)
    if fraction <= 0:
        return np.zeros(len(groups), dtype=bool)
    names = sorted(set(groups))
    if all(groups) and len(names) > 1:
        count = min(len(names) - 1, max(1, int(np.ceil(fraction * len(names)))))
        held = set(rng.permutation(names)[:count].tolist())
        return np.array([g in held for g in groups])
    count = min(len(groups) - 1, max(1, round(fraction * len(groups))))
    mask = np.zeros(len(groups), dtype=bool)
    mask[rng.permutation(len(groups))[:count]] = True
    return mask


def holdout_mask(data: FolderData, fraction: float, seed: int = HOLDOUT_SEED) -> np.ndarray:
    """Which images of a folder form the held-out part: whole writers where the file names
    give them, else single images (`held_out`)."""
    return held_out(data.writers if data.has_writers else [""] * len(data), fraction, seed)
