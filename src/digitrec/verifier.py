"""Is a piece of ink one whole digit? The small classifier that judges where a number is cut.

The digit classifier alone is a poor judge of cuts: it has only ever seen whole digits, so it
reads two touching digits ("13") as one ("8") with high confidence. The verifier is the `fast`
CNN with two outputs, trained on MNIST digits (whole) against what a wrong cut produces
(pieces): two touching or overlapping digits, part of a digit, and a digit with part of its
neighbour, each normalised the way a cut-out digit is (`preprocess.normalise_digit`).
`Predictor.predict_number` multiplies the classifier's confidence in a cut-out digit by the
verifier's probability that it is one whole digit. `digitrec train-verifier` trains one in
about 50 s on 2 CPU cores; the package ships one (`assets/digit-verifier.onnx`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import __version__
from .checkpoint import write_bytes
from .data import load_split
from .export import to_onnx, with_metadata
from .models import create_model
from .predict import VERIFIER_LABELS, OnnxBackend
from .preprocess import normalise_digit
from .train import SCHEDULES

INK = 30  # a column with a value above this (of 255) holds ink
MIN_HALVED = 8  # digits narrower than this (a 1) are not halved: each half looks like a 1
BATCH_SIZE, LR = 128, 2e-3


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


def examples(images: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` whole digits and `count` pieces made from uint8 MNIST `images`, normalised like
    cut-out digits: float32 [2 * count, 28, 28] and labels (1 = one whole digit)."""
    rng = np.random.default_rng(seed)
    whole = [normalise_digit(images[i] / np.float32(255))
             for i in rng.integers(len(images), size=count)]
    pieces: list[np.ndarray] = []
    while len(pieces) < count:
        normalised = normalise_digit(piece(images, rng) / np.float32(255))
        if normalised is not None:  # a sliver too small to be read is no example
            pieces.append(normalised)
    labels = np.repeat(np.array([1, 0], dtype=np.int64), count)
    return np.stack(whole + pieces).astype(np.float32), labels


def fit(x: np.ndarray, y: np.ndarray, epochs: int, seed: int,
        batch_size: int = BATCH_SIZE, lr: float = LR) -> torch.nn.Module:
    """Train the verifier network (Adam, cosine-decayed learning rate)."""
    torch.manual_seed(seed)
    model = create_model("fast", num_classes=len(VERIFIER_LABELS))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    images, labels = torch.from_numpy(x)[:, None], torch.from_numpy(y)
    steps, step = epochs * math.ceil(len(x) / batch_size), 0
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(batch_size):
            for group in optimizer.param_groups:
                group["lr"] = lr * SCHEDULES["cosine"](step / steps)
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    return model.eval()


def train_verifier(out: str | Path, data_dir: str | os.PathLike | None = None,
                   count: int = 60_000, epochs: int = 3,
                   seed: int = 0, log: Callable[[str], None] = print) -> dict:
    """Train a verifier on pieces of MNIST training digits, measure it on pieces of test digits
    it has never seen, and write it as ONNX to `out`. Returns what was measured."""
    start = time.perf_counter()
    x, y = examples(load_split("mnist", "train", data_dir)[0], count, seed)
    log(f"training the verifier on {len(x)} examples ({count} whole digits, {count} pieces)")
    model = fit(x, y, epochs, seed)
    model_bytes = to_onnx(model)
    test_x, test_y = examples(load_split("mnist", "test", data_dir)[0], 5_000, seed + 1)
    runtime = OnnxBackend.from_bytes(model_bytes)
    accuracy = float((runtime.logits(test_x[:, None]).argmax(1) == test_y).mean())
    report = {"path": str(out), "architecture": "fast", "examples": len(x), "epochs": epochs,
              "batch_size": BATCH_SIZE, "lr": LR, "seed": seed,
              "test_examples": len(test_x), "test_accuracy": accuracy,
              "train_seconds": round(time.perf_counter() - start, 1)}
    metadata = {"digitrec_version": __version__, "labels": VERIFIER_LABELS, "verifier": report,
                "test_accuracy": accuracy}
    write_bytes(out, with_metadata(model_bytes, metadata))
    log(f"wrote {out}: tells whole digits from pieces in {accuracy:.2%} of "
        f"{len(test_x)} unseen examples ({report['train_seconds']} s)")
    return report
