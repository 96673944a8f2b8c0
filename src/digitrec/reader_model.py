"""Train the number reader: a convolutional line recogniser with CTC, on synthetic and real lines.

The network reads a HEIGHT x WIDTH line (`digitrec.reader`) as WIDTH / STEP columns: four
convolution blocks bring the height to one row, two 1-D convolutions over the columns give each
its context (a fully convolutional recogniser, as DenseNet + CTC without a recurrent layer:
Zhan et al. 2018), and a linear layer scores the ten digits and "nothing" per column. It is
trained with the CTC loss (Graves et al. 2006) on

- synthetic lines (`digitrec.lines`) composed from the training digits of MNIST and of every
  image folder given (USPS, CVL, ARDIS...), rendered as scans and read through `line_of`;
- real lines from number folders (`digitrec.number_folders`), each with a sampling weight,
  less a fixed held-out part (whole pages where the names give them), which is read every
  epoch and reported per folder.

Training starts from a new network or, with `--init`, from an exported reader (fine-tuning).
Batches are augmented as a batch (small random affine maps and contrast). `train_reader`
writes one ONNX file whose metadata card names the sources, the held-out parts and what was
measured on them.
"""

from __future__ import annotations

import functools
import hashlib
import math
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import __version__, lines, preprocess, reader
from .config import SCHEDULES, changed_flags, parse_source
from .data import load_split
from .errors import ModelError
from .export import to_onnx, with_metadata
from .files import write_bytes
from .folders import HOLDOUT_SEED, cached_arrays, code_fingerprint, held_out, load_folder
from .lines import DigitPool, random_number, render_line
from .number_folders import NumberFolder, load_numbers
from .processes import forked_map
from .reader import (
    BATCH,
    BLANK,
    HEIGHT,
    INPUT,
    KIND,
    OUTPUT,
    STEP,
    WIDTH,
    NumberReader,
    ReaderConfig,
    decode,
    line_of,
    number_of,
)

CHANNELS = (32, 64, 96, 128)
CHUNK = 500  # synthetic lines rendered per task


def _block(inputs: int, outputs: int, pool: tuple[int, int]) -> list[nn.Module]:
    return [nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs),
            nn.ReLU(inplace=True), nn.MaxPool2d(pool)]


class ReaderNet(nn.Module):
    """[N, 1, HEIGHT, WIDTH] in [0, 1] -> [N, WIDTH / STEP, 11] log-probabilities."""

    def __init__(self, channels: tuple[int, ...] = CHANNELS) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels
        self.features = nn.Sequential(
            *_block(1, c1, (2, 2)), *_block(c1, c2, (2, 2)),  # 8 x 40
            *_block(c2, c3, (2, 1)), *_block(c3, c4, (2, 1)),  # 2 x 40
            nn.Conv2d(c4, c4, (HEIGHT // 16, 1), bias=False), nn.BatchNorm2d(c4),
            nn.ReLU(inplace=True))
        self.context = nn.Sequential(
            nn.Conv1d(c4, c4, 3, padding=1, bias=False), nn.BatchNorm1d(c4), nn.ReLU(inplace=True),
            nn.Conv1d(c4, c4, 3, padding=2, dilation=2, bias=False), nn.BatchNorm1d(c4),
            nn.ReLU(inplace=True))
        self.classify = nn.Linear(c4, BLANK + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        columns = self.features(x).squeeze(2)  # [N, C, WIDTH / STEP]
        columns = columns + self.context(columns)
        return F.log_softmax(self.classify(columns.transpose(1, 2)), dim=-1)


# ---- starting from an exported reader -------------------------------------------------------

CALIBRATION = 1024  # training lines whose statistics set the batch norms of a warm start


def reader_path(init: str) -> Path:
    """The reader file that `--init` names: a path, or `shipped`."""
    from .predict import DEFAULT_READER, shipped

    return shipped(DEFAULT_READER) if init == "shipped" else Path(init)


def initial_reader(init: str, sample: np.ndarray) -> ReaderNet:
    """The network of an exported reader, ready to train on. Export folds each batch norm into
    the convolution before it; each is set again from the convolutions' statistics on `sample`
    (uint8 training lines), so that the network, in training as in evaluation, computes what
    the file computes."""
    model = ReaderNet()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d | nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    kernels, biases, classify = _folded_weights(reader_path(init), model, convs)
    with torch.no_grad():
        for conv, norm, kernel, bias in zip(convs, norms, kernels, biases, strict=True):
            conv.weight.copy_(kernel)  # with the norm adding the bias: the folded network
            norm.weight.fill_(1)
            norm.bias.copy_(bias)
            norm.running_mean.zero_()
            norm.running_var.fill_(1 - norm.eps)
        model.classify.weight.copy_(classify[0])
        model.classify.bias.copy_(classify[1])
        statistics = _conv_statistics(model.eval(), convs, sample)
        for norm, bias, (mean, var) in zip(norms, biases, statistics, strict=True):
            norm.weight.copy_((var + norm.eps).sqrt())
            norm.bias.copy_(mean + bias)
            norm.running_mean.copy_(mean)
            norm.running_var.copy_(var)
    return model


def _folded_weights(path: Path, model: ReaderNet, convs: list[nn.Module]
                    ) -> tuple[list[torch.Tensor], list[torch.Tensor], tuple[torch.Tensor, ...]]:
    """An exported reader's convolution kernels and biases, in order, and its last layer's
    weight and bias; a ModelError for a file that is not a reader of this architecture."""
    import onnx
    from onnx.numpy_helper import to_array

    NumberReader(str(path))  # a clear error for a file that is not a reader
    graph = onnx.load(str(path)).graph
    weights = {t.name: torch.from_numpy(to_array(t).copy()) for t in graph.initializer}
    nodes = [n for n in graph.node if n.op_type == "Conv" and len(n.input) == 3]
    matmul = next((n for n in graph.node if n.op_type == "MatMul"), None)
    kernels = [weights.get(n.input[1]) for n in nodes]
    biases = [weights.get(n.input[2]) for n in nodes]
    linear = weights.get(matmul.input[1]) if matmul is not None else None
    if [None if k is None else k.shape for k in kernels] != [c.weight.shape for c in convs] \
            or any(b is None for b in biases) or "classify.bias" not in weights \
            or linear is None or linear.T.shape != model.classify.weight.shape:
        raise ModelError(f"{path} is a reader of another architecture than this version's")
    return kernels, biases, (linear.T, weights["classify.bias"])


@torch.no_grad()
def _conv_statistics(model: ReaderNet, convs: list[nn.Module], sample: np.ndarray
                     ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each convolution's per-channel mean and variance of its outputs on `sample`."""
    outputs: list[torch.Tensor] = []
    hooks = [c.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for c in convs]
    model(torch.from_numpy(sample[:CALIBRATION]).float().div(255)[:, None])
    for hook in hooks:
        hook.remove()
    dims = [[0, *range(2, out.dim())] for out in outputs]
    return [(out.mean(d), out.var(d, unbiased=False)) for out, d in zip(outputs, dims, strict=True)]


# ---- synthetic lines -------------------------------------------------------------------

def _render_chunk(pool: DigitPool, task: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """`count` synthetic lines as reader inputs (uint8), drawn with their own seed."""
    seed, count = task
    rng = np.random.default_rng(seed)
    inputs, numbers = [], []
    while len(numbers) < count:
        number = random_number(rng)
        line = line_of(render_line(number, pool, rng))
        if line is not None:
            inputs.append(np.round(line.input * 255).astype(np.uint8))
            numbers.append(number)
    return np.stack(inputs), numbers


def synthetic_lines(pool: DigitPool, count: int, seed: int, workers: int = 0
                    ) -> tuple[np.ndarray, list[str]]:
    """`count` synthetic lines (uint8 inputs, numbers): the same for the same seed, however
    many worker processes (0: one per core) render them."""
    seeds = [(seed, k) for k in range(math.ceil(count / CHUNK))]
    sizes = [min(CHUNK, count - k * CHUNK) for k in range(len(seeds))]
    chunk_seeds = [int(np.random.SeedSequence(s).generate_state(1)[0]) for s in seeds]
    parts = list(forked_map(functools.partial(_render_chunk, pool),
                            list(zip(chunk_seeds, sizes, strict=True)), workers))
    return np.concatenate([p[0] for p in parts]), [n for p in parts for n in p[1]]


def cached_synthetic_lines(pool: DigitPool, count: int, seed: int, workers: int = 0
                           ) -> tuple[np.ndarray, list[str]]:
    """`synthetic_lines`, cached in the decoded cache under the digits, the count, the seed and
    the code that renders and reads them (a second run with the same data starts at once)."""
    digest = hashlib.sha256(code_fingerprint(lines, preprocess, reader).encode())
    digest.update(pool.images.tobytes())
    digest.update(pool.labels.tobytes())
    digest.update(f"{count} {seed}".encode())

    def compute() -> dict[str, np.ndarray]:
        inputs, numbers = synthetic_lines(pool, count, seed, workers)
        return {"inputs": inputs, "numbers": np.array(numbers, dtype=str)}

    arrays = cached_arrays(f"lines-{digest.hexdigest()}", compute)
    return arrays["inputs"], [str(n) for n in arrays["numbers"]]


def digit_pool(add_data: tuple[str, ...], data_dir, log: Callable[[str], None]
               ) -> tuple[DigitPool, list[dict]]:
    """MNIST's training digits and those of every digit folder given (uint8, white on black;
    a folder's weight repeats its images), and a card entry for each source."""
    images, labels = load_split("mnist", "train", data_dir)
    parts, part_labels = [images], [labels]
    sources = [{"name": "mnist", "split": "train", "images": len(labels)}]
    for spec in add_data:
        path, weight = parse_source(spec)
        folder = load_folder(path, warn=log)
        repeat = max(1, round(weight))
        parts += [folder.images] * repeat
        part_labels += [folder.labels] * repeat
        sources.append({"name": folder.name, "path": str(path), "images": len(folder),
                        "fingerprint": folder.fingerprint, "weight": repeat})
    return DigitPool(np.concatenate(parts), np.concatenate(part_labels)), sources


# ---- real lines ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RealLines:
    """A number folder split into its training and held-out parts."""

    folder: NumberFolder
    weight: float
    held: np.ndarray  # which images are held out

    def card(self) -> dict:
        return {"name": self.folder.name, "path": str(self.folder.root),
                "images": len(self.folder), "fingerprint": self.folder.fingerprint,
                "weight": self.weight, "held_out": int(self.held.sum()),
                "held_out_by": "page" if all(self.folder.pages) else "image",
                "left_out": len(self.folder.left_out),
                "left_out_files": list(self.folder.left_out)}

    def held_part(self) -> tuple[np.ndarray, list[str]]:
        """The held-out lines: uint8 inputs and their numbers."""
        held = np.flatnonzero(self.held)
        return self.folder.inputs[held], [self.folder.numbers[i] for i in held]

    def training_size(self) -> int:
        """Lines of the training part in one epoch (its size times the weight)."""
        train = int((~self.held).sum())
        whole, fraction = divmod(self.weight, 1)
        return int(whole) * train + round(fraction * train)


def real_lines(specs: tuple[str, ...], holdout: float, log: Callable[[str], None]
               ) -> list[RealLines]:
    parts = []
    for spec in specs:
        path, weight = parse_source(spec)
        folder = load_numbers(path, warn=log)
        parts.append(RealLines(folder, weight, held_out(folder.pages, holdout, HOLDOUT_SEED)))
    return parts


# ---- training -----------------------------------------------------------------------------

def targets(numbers: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenated digit targets and their lengths, as the CTC loss takes them."""
    flat = torch.tensor([int(c) for n in numbers for c in n], dtype=torch.long)
    return flat, torch.tensor([len(n) for n in numbers], dtype=torch.long)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Small random affine maps (scale, shift, shear) and contrast, per line of the batch."""
    n = len(x)
    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)
    sx, sy = uniform(0.9, 1.12), uniform(0.92, 1.12)
    shear = uniform(-0.15, 0.15)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 1] = sx, shear, sy
    theta[:, 0, 2] = uniform(-0.05, 0.05) + (sx - 1)  # keep the writing's left edge in place
    theta[:, 1, 2] = uniform(-0.08, 0.08)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    return (out * uniform(0.7, 1.15).view(n, 1, 1, 1)).clamp(0, 1)


def exact_fraction(read: list[str], numbers: list[str]) -> float:
    """The fraction of lines read exactly."""
    return sum(r == n for r, n in zip(read, numbers, strict=True)) / max(1, len(numbers))


@torch.no_grad()
def exact(model: nn.Module, inputs: np.ndarray, numbers: list[str]) -> float:
    """The fraction of uint8 lines the network reads exactly."""
    model.eval()
    read = []
    for start in range(0, len(inputs), BATCH):
        batch = torch.from_numpy(inputs[start:start + BATCH]).float().div(255)[:, None]
        read += [number_of(decode(row)) for row in model(batch).numpy()]
    return exact_fraction(read, numbers)


def epoch_data(synthetic: tuple[np.ndarray, list[str]], real: list[RealLines],
               rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """One epoch's lines, shuffled: every synthetic line, and each folder's training part
    repeated by its weight (a fractional weight draws that share at random)."""
    inputs, numbers = [synthetic[0]], list(synthetic[1])
    for part in real:
        train = np.flatnonzero(~part.held)
        whole, fraction = divmod(part.weight, 1)
        picks = np.concatenate([np.tile(train, int(whole)),
                                rng.choice(train, round(fraction * len(train)), replace=False)])
        inputs.append(part.folder.inputs[picks])
        numbers += [part.folder.numbers[i] for i in picks]
    order = rng.permutation(len(numbers))
    return np.concatenate(inputs)[order], [numbers[i] for i in order]


def training_sample(synthetic: tuple[np.ndarray, list[str]], real: list[RealLines]
                    ) -> np.ndarray:
    """Up to CALIBRATION training lines (uint8): synthetic ones first, then real ones."""
    parts = [synthetic[0], *(part.folder.inputs[~part.held] for part in real)]
    return np.concatenate(parts)[:CALIBRATION]


def fit(config: ReaderConfig, synthetic: tuple[np.ndarray, list[str]], real: list[RealLines],
        log: Callable[[str], None]) -> tuple[ReaderNet, list[dict]]:
    """Train the network (AdamW, one-cycle learning rate); held-out parts read every epoch."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = initial_reader(config.init, training_sample(synthetic, real)) if config.init \
        else ReaderNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    per_epoch = len(synthetic[1]) + sum(part.training_size() for part in real)
    steps, step = config.epochs * math.ceil(per_epoch / config.batch_size), 0
    history = []
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        inputs, numbers = epoch_data(synthetic, real, rng)
        model.train()
        total = 0.0
        for first in range(0, len(numbers), config.batch_size):
            for group in optimizer.param_groups:
                group["lr"] = config.lr * SCHEDULES["onecycle"](step / steps)
            batch = torch.from_numpy(inputs[first:first + config.batch_size]).float().div(255)
            flat, lengths = targets(numbers[first:first + config.batch_size])
            log_probs = model(augment(batch[:, None], generator))
            columns = torch.full((len(batch),), log_probs.shape[1], dtype=torch.long)
            loss = F.ctc_loss(log_probs.transpose(0, 1), flat, columns, lengths, blank=BLANK,
                              zero_infinity=True)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
            step += 1
        row = {"epoch": epoch, "loss": total / len(numbers),
               "seconds": round(time.perf_counter() - start, 1)}
        for part in real:
            row[part.folder.name] = exact(model, *part.held_part())
        history.append(row)
        log(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in row.items()))
    return model.eval(), history


def train_reader(config: ReaderConfig, out: str | Path, data_dir=None,
                 log: Callable[[str], None] = print) -> dict:
    """Train a reader, measure it through ONNX Runtime on the held-out real lines and on
    synthetic lines of MNIST test digits, and write it to `out`. Returns its card."""
    started = time.perf_counter()
    init = initial_card(config)  # a clear error at once for an --init that is not a reader
    real = real_lines(config.lines, config.holdout, log)
    pool, digit_sources = digit_pool(config.add_data, data_dir, log)
    log(f"rendering {config.synthetic} synthetic lines from {len(pool.labels)} digits")
    synthetic = cached_synthetic_lines(pool, config.synthetic, config.seed)
    model, history = fit(config, synthetic, real, log)
    model_bytes = to_onnx(model, torch.rand(2, 1, HEIGHT, WIDTH), (INPUT, OUTPUT))
    card = {"kind": KIND, "digitrec_version": __version__,
            "input": {"height": HEIGHT, "width": WIDTH, "step": STEP},
            "config": asdict(config), "command": reader_command(config, out),
            "sources": [part.card() for part in real], "digit_sources": digit_sources,
            "history": history, **init,
            "train_seconds": round(time.perf_counter() - started, 1)}
    reader = NumberReader(with_metadata(model_bytes, {"card": card}), "(in memory)")
    card["metrics"] = measure(reader, real, data_dir, config.seed)
    write_bytes(out, with_metadata(model_bytes, {"card": card}))
    return card


def measure(reader: NumberReader, real: list[RealLines], data_dir, seed: int) -> dict:
    """Exact reads of the exported file on each held-out part and on synthetic lines."""
    metrics = {part.folder.name: _onnx_exact(reader, *part.held_part()) for part in real}
    images, labels = load_split("mnist", "test", data_dir)
    inputs, numbers = cached_synthetic_lines(DigitPool(images, labels), 2000, seed + 1)
    metrics["synthetic (MNIST test digits)"] = _onnx_exact(reader, inputs, numbers)
    return metrics


def _onnx_exact(reader: NumberReader, inputs: np.ndarray, numbers: list[str]) -> dict:
    read = [number_of(row) for row in reader.decode_all(inputs.astype(np.float32) / 255)]
    return {"lines": len(numbers), "exact": exact_fraction(read, numbers)}


def initial_card(config: ReaderConfig) -> dict:
    """For a fine-tuned reader, what it started from: the file's digest and the command that
    trained it."""
    if not config.init:
        return {}
    path = reader_path(config.init)
    started = NumberReader(str(path)).card
    entry = {"reader": config.init, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
             "command": started.get("command")}
    if "init" in started:  # the chain back to a reader trained from scratch
        entry["init"] = started["init"]
    return {"init": entry}


def reader_command(config: ReaderConfig, out: str | Path) -> str:
    """The command line that trains this reader again."""
    return shlex.join(["digitrec", "train-reader", "--out", str(out),
                       *changed_flags(config, ReaderConfig())])
