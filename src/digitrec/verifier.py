"""Is a piece of ink one whole digit? The small classifier that judges cuts and refuses non-digits.

The digit classifier alone is a poor judge: it has only ever seen digits, so it reads two
touching digits ("13") as one ("8"), and a letter A or a smiley as a digit, with high confidence.
The verifier is the `fast` CNN with three outputs (VERIFIER_LABELS):
- **digit**: one whole digit (MNIST and any `--add-data` folders of real digits);
- **pieces**: what a wrong cut produces: two touching or overlapping digits, part of a digit,
  a digit with part of its neighbour;
- **other**: not a digit at all: printed letters and signs, drawn shapes and scribbles
  (`digitrec.nondigits`) and Fashion-MNIST's clothes.

Every example is normalised the way a cut-out digit is (`preprocess.normalise_digit`), some
are photographed first and read back through `preprocess` (`photographed`), and all are
augmented as `digitrec train` augments. One decision is used everywhere: an image whose
digit-likeness (`predict.digit_likeness`: all but the probability of "other") is below the
threshold is not a digit. The threshold is chosen so that at most `rejection.MAX_REFUSED` of
held-out real digits are refused, and stored in the file's metadata. `Predictor.predict`
answers such an image "not_digit", `Predictor.predict_number` takes such pieces out of a
number before reading it; cutting a number into digits uses the probability of "digit".
The package ships one (`assets/digit-verifier.onnx`); `digitrec train-verifier` trains another.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import __version__
from .augment import Augmentation, augment
from .config import SCHEDULES
from .data import load_split
from .export import to_onnx, with_metadata
from .files import write_bytes
from .folders import holdout_mask, load_folder
from .models import create_model
from .nondigits import font_files
from .photos import render_digit
from .predict import OTHER, VERIFIER_LABELS, WHOLE, OnnxBackend, digit_likeness
from .preprocess import preprocess
from .processes import forked_map
from .rejection import (
    TRAIN_FONTS,
    VerifierConfig,
    choose_threshold,
    held_out_nondigits,
    normalised,
    normalised_each,
    refusal,
    rendered_nondigits,
    stacked,
)

INK = 30  # a column with a value above this (of 255) holds ink
MIN_HALVED = 8  # digits narrower than this (a 1) are not halved: each half looks like a 1
BATCH_SIZE, LR, WIDTH = 128, 2e-3, 32
PHOTO_SCALES = (2, 5)  # photographed examples are upscaled this much (both included)
PHOTO_CHUNK = 32  # examples a worker photographs per task
AUGMENTATION = Augmentation(rotate=10, scale=0.1, shear=10, translate=1.5, thickness=0.5)
CLOTHES_SHARE = 0.2  # of the non-digits, Fashion-MNIST images
FOLDER_WEIGHT = 2  # how many times each training image of a digit folder is in the pool
HELD_OUT_MNIST, HELD_OUT_CLOTHES = 5000, 2000  # training images kept out to measure on
HELD_OUT_OTHERS, HELD_OUT_PIECES, HELD_OUT_PHOTOS = 3000, 5000, 1500


def _crop(digit: np.ndarray) -> np.ndarray:
    """The columns of a uint8 MNIST digit that hold ink."""
    cols = np.flatnonzero(digit.max(0) > INK)
    return digit[:, cols[0]:cols[-1] + 1]


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int,
                 drop: int) -> tuple[np.ndarray, int]:
    """Two 28-row digit crops on one line, `gap` columns apart (negative: overlapping), the
    right one `drop` rows lower (negative: higher); and the column where the right one starts."""
    x = max(0, left.shape[1] + gap)
    line = np.zeros((28 + abs(drop), max(x + right.shape[1], left.shape[1])), np.uint8)
    top_left, top_right = max(0, -drop), max(0, drop)
    line[top_left:top_left + 28, :left.shape[1]] = left
    region = line[top_right:top_right + 28, x:x + right.shape[1]]
    np.maximum(region, right, out=region)
    return line, x


def piece(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a wrong cut leaves: two touching digits, part of a digit, or a digit with part of
    its neighbour (uint8 ink, white on black)."""
    left, right = (_crop(images[i]) for i in rng.integers(len(images), size=2))
    kind = rng.integers(3)
    if kind == 0:
        return side_by_side(left, right, int(rng.integers(-3, 2)), int(rng.integers(-5, 6)))[0]
    if kind == 1 and left.shape[1] >= MIN_HALVED:
        cut = int(rng.uniform(0.3, 0.7) * left.shape[1])
        return left[:, :cut] if rng.integers(2) else left[:, cut:]
    line, x = side_by_side(left, right, int(rng.integers(-2, 3)), int(rng.integers(-5, 6)))
    if rng.integers(2):  # the left digit and the start of the right one
        return line[:, :x + max(1, int(rng.uniform(0.3, 0.7) * right.shape[1]))]
    return line[:, int(rng.uniform(0.3, 0.7) * left.shape[1]):]  # the end of the left one


def pieces_of(images: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` pieces (what wrong cuts leave) made from uint8 digits, normalised."""
    pieces: list[np.ndarray] = []
    while len(pieces) < count:  # a sliver too small to be read is no example: draw another
        drawn = [piece(images, rng) / np.float32(255) for _ in range(count - len(pieces))]
        pieces += [p for p in normalised_each(drawn) if p is not None]
    return stacked(pieces)


def others_of(count: int, seed: int, fonts: list[Path], clothes: np.ndarray) -> np.ndarray:
    """`count` things that are not digits, normalised: letters, signs and drawn shapes
    (`nondigits`), and one in CLOTHES_SHARE of them a Fashion-MNIST image from `clothes`."""
    rng = np.random.default_rng(seed)
    worn = min(len(clothes), int(count * CLOTHES_SHARE))
    picked = clothes[rng.choice(len(clothes), worn, replace=False)]
    return np.concatenate([rendered_nondigits(count - worn, seed, fonts), normalised(picked)])


def cut_examples(digits: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` pieces and `count` whole digits made from uint8 `digits`, normalised: float32
    [2 * count, 28, 28] and labels (indices into VERIFIER_LABELS)."""
    rng = np.random.default_rng(seed)
    whole = normalised(digits[rng.integers(len(digits), size=count)])
    return (np.concatenate([pieces_of(digits, count, rng), whole]),
            np.repeat(np.arange(2), count))


def _photographed(task: tuple[np.ndarray, int]) -> np.ndarray | None:
    ink, seed = task
    return preprocess(render_digit(ink, np.random.default_rng(seed), PHOTO_SCALES))


def photographed(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """28x28 inks (float in [0, 1] or uint8) as photos or scans at 2-5x (page colour, uneven
    light, blur, JPEG; `photos.render_digit`), read back through `preprocess` as a user's
    photo is read; on every core, each image drawn with a seed of its own from `rng`."""
    pixels = images if images.dtype == np.uint8 else (images * 255).round().astype(np.uint8)
    seeds = rng.integers(2**63, size=len(pixels))
    return stacked(list(forked_map(_photographed, list(zip(pixels, seeds, strict=True)),
                                   chunksize=PHOTO_CHUNK)))


def examples(digits: np.ndarray, others: np.ndarray, count: int, seed: int,
             photos: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`cut_examples`, `photos` whole digits and as many of the normalised `others`
    photographed, and the `others` (labelled "other")."""
    x, y = cut_examples(digits, count, seed)
    rng = np.random.default_rng(seed + 1)
    whole = photographed(digits[rng.integers(len(digits), size=photos)], rng)
    others = np.concatenate([others, photographed(others[rng.integers(len(others), size=photos)],
                                                  rng)])
    return (np.concatenate([x, whole, others]),
            np.concatenate([y, np.full(len(whole), WHOLE),
                            np.full(len(others), OTHER)]))


def fit(x: np.ndarray, y: np.ndarray, epochs: int, seed: int,
        batch_size: int = BATCH_SIZE, lr: float = LR) -> torch.nn.Module:
    """Train the verifier network (Adam, cosine-decayed learning rate)."""
    torch.manual_seed(seed)
    model = create_model("fast", num_classes=len(VERIFIER_LABELS), width=WIDTH)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    images, labels = torch.from_numpy(x)[:, None], torch.from_numpy(y)
    steps, step = epochs * math.ceil(len(x) / batch_size), 0
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(batch_size):
            for group in optimizer.param_groups:
                group["lr"] = lr * SCHEDULES["cosine"](step / steps)
            loss = F.cross_entropy(model(augment(images[batch], AUGMENTATION)), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    return model.eval()


@dataclass
class Digits:
    """Real digits to learn from and to choose the threshold on: uint8 [N, 28, 28] each, and
    where they come from (name, images used for training, images held out)."""

    train: np.ndarray
    held_out: np.ndarray
    sources: list[dict]


def real_digits(data_dir: str | os.PathLike | None, folders: list[str | os.PathLike],
                holdout: float, seed: int) -> Digits:
    """MNIST training digits (HELD_OUT_MNIST of them held out) and digit folders (read
    through `preprocess`, held out by writer where names give writers, as `digitrec train`
    holds them out; each training image FOLDER_WEIGHT times, so that real writers weigh about
    as much as MNIST)."""
    mnist = load_split("mnist", "train", data_dir)[0]
    order = np.random.default_rng(seed).permutation(len(mnist))
    train, held = [mnist[order[HELD_OUT_MNIST:]]], [mnist[order[:HELD_OUT_MNIST]]]
    sources = [{"name": "mnist", "train_images": len(train[0]), "val_images": len(held[0])}]
    for folder in folders:
        data = load_folder(folder)
        mask = holdout_mask(data, holdout)
        train.append(np.tile(data.images[~mask], (FOLDER_WEIGHT, 1, 1)))
        held.append(data.images[mask])
        sources.append({"name": data.name, "fingerprint": data.fingerprint,
                        "train_images": int((~mask).sum()), "val_images": int(mask.sum()),
                        "weight": FOLDER_WEIGHT})
    return Digits(np.concatenate(train), np.concatenate(held), sources)


def train_verifier(config: VerifierConfig, out: str | Path,
                   data_dir: str | os.PathLike | None = None,
                   log: Callable[[str], None] = print) -> dict:
    """Train a verifier on whole digits, pieces of digits and things that are not digits
    (`config.photos` of each photographed too); choose its threshold on held-out digits and
    measure it on held-out non-digits (other fonts, other drawings, other clothes); write it as
    ONNX to `out`. Returns what was measured."""
    start = time.perf_counter()
    digits = real_digits(data_dir, list(config.add_data), config.holdout, config.seed)
    clothes = load_split("fashion-mnist", "train", data_dir)[0]
    fonts = font_files(TRAIN_FONTS)
    others = others_of(config.others, config.seed, fonts, clothes[HELD_OUT_CLOTHES:])
    x, y = examples(digits.train, others, config.count, config.seed, config.photos)
    log(f"training the verifier on {len(x)} examples: {(y == WHOLE).sum()} whole digits of "
        f"{len(digits.sources)} sources, {config.count} pieces, {(y == OTHER).sum()} non-digits "
        f"({config.photos} each photographed)")
    model = fit(x, y, config.epochs, config.seed)
    model_bytes = to_onnx(model)
    runtime = OnnxBackend.from_bytes(model_bytes)
    rng = np.random.default_rng(config.seed + 2)
    held_digits = np.concatenate([normalised(digits.held_out),
                                  photographed(digits.held_out[:HELD_OUT_PHOTOS], rng)])
    rendered = held_out_nondigits(HELD_OUT_OTHERS, config.seed + 1)
    held_others = np.concatenate([rendered, photographed(rendered[:HELD_OUT_PHOTOS], rng),
                                  normalised(clothes[:HELD_OUT_CLOTHES])])
    test_x, test_y = cut_examples(digits.held_out, HELD_OUT_PIECES, config.seed + 1)
    cut_accuracy = float((runtime.logits(test_x[:, None])[:, :2].argmax(1) == test_y).mean())
    digit_scores = digit_likeness(runtime.probabilities(held_digits))
    threshold = choose_threshold(digit_scores)
    rejection = refusal(digit_scores, digit_likeness(runtime.probabilities(held_others)),
                        threshold)
    report = {"path": str(out), "architecture": "fast", "width": WIDTH, "examples": len(x),
              "photos": config.photos, "epochs": config.epochs, "batch_size": BATCH_SIZE,
              "lr": LR,
              "seed": config.seed, "sources": digits.sources,
              "holdout": config.holdout, "train_fonts": [f.name for f in fonts],
              "test_examples": len(test_x), "test_accuracy": cut_accuracy,
              "rejection": rejection, "train_seconds": round(time.perf_counter() - start, 1)}
    metadata = {"digitrec_version": __version__, "labels": VERIFIER_LABELS, "verifier": report,
                "threshold": threshold, "test_accuracy": cut_accuracy}
    write_bytes(out, with_metadata(model_bytes, metadata))
    log(f"wrote {out}: tells whole digits from pieces in {cut_accuracy:.2%} of "
        f"{len(test_x)} held-out examples; threshold {threshold:.3f} refuses "
        f"{rejection['digits_refused']:.2%} of {len(held_digits)} held-out digits and "
        f"{rejection['others_refused']:.2%} of {len(held_others)} held-out non-digits (other "
        f"fonts, drawings and clothes) ({report['train_seconds']} s)")
    return report
