"""TrainConfig and the training loop: data in memory, per-epoch validation, resumable runs.

The whole dataset lives on the training device as uint8; each step indexes a random batch and
converts it to float there. Every source of randomness in an epoch is seeded from (seed, epoch),
and the state is checkpointed at each epoch end, so a run killed at any point resumes with
`--resume` and finishes exactly where an uninterrupted run would.
"""

from __future__ import annotations

import math
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import __version__
from .checkpoint import (
    CARD,
    METRICS,
    STATE,
    load_state,
    read_card,
    read_jsonl,
    save_run,
    save_state,
    write_jsonl,
)
from .data import file_checksums, get_dataset, load_split
from .errors import RunDirError
from .evaluate import predict_logits
from .models import create_model, list_models

PROGRESS_EVERY = 25  # steps between progress-bar refreshes (each one syncs with the device)
SPLIT_SEED = 20240  # the validation split is the same for every run, so runs compare fairly


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run's result; each field is a `digitrec train` flag."""

    model: str = field(default="baseline", metadata={"help": "architecture name"})
    dataset: str = field(default="mnist", metadata={"help": "dataset name"})
    epochs: int = field(default=3, metadata={"help": "passes over the training set"})
    batch_size: int = field(default=128, metadata={"help": "images per optimizer step"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (Adam)"})
    weight_decay: float = field(default=0.0, metadata={"help": "Adam weight decay"})
    schedule: str = field(default="cosine",
                          metadata={"help": "learning-rate schedule: constant or cosine"})
    seed: int = field(default=0, metadata={"help": "random seed (same seed, same result)"})
    val_size: int = field(default=5000, metadata={
        "help": "training images held out for per-epoch validation (0 = train on all)"})
    train_size: int = field(default=0, metadata={
        "help": "use only this many training images (0 = all; for quick experiments)"})
    device: str = field(default="auto", metadata={"help": "auto (cuda, mps, cpu) or a torch device"})

    def __post_init__(self) -> None:
        if self.model not in list_models():
            raise ValueError(f"unknown model {self.model!r}; choose one of: "
                             f"{', '.join(list_models())}")
        get_dataset(self.dataset)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose: {', '.join(SCHEDULES)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.val_size < 0 or self.train_size < 0 or self.lr <= 0:
            raise ValueError("val_size and train_size must be >= 0 and lr > 0")


SCHEDULES = {
    "constant": lambda progress: 1.0,
    "cosine": lambda progress: 0.5 * (1 + math.cos(math.pi * progress)),
}

RECIPES = {"baseline": TrainConfig(model="baseline", epochs=3, batch_size=128, lr=1e-3)}


def recipe(model: str) -> TrainConfig:
    """The default configuration for a model (`digitrec train --model NAME` uses it)."""
    return RECIPES.get(model, replace(TrainConfig(), model=model))


def select_device(name: str = "auto") -> torch.device:
    """cuda, then mps, then cpu, unless a device is named."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class Tensors:
    """One split held in memory: uint8 images (N, 1, 28, 28) and int64 labels (N)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def load_tensors(config: TrainConfig, data_dir, device: torch.device) -> dict[str, Tensors]:
    """Train, validation and test splits as tensors on `device`."""
    def tensors(images: np.ndarray, labels: np.ndarray) -> Tensors:
        return Tensors(torch.from_numpy(images).unsqueeze(1).to(device),
                       torch.from_numpy(labels).to(device))

    images, labels = load_split(config.dataset, "train", data_dir)
    if config.val_size >= len(labels):
        raise ValueError(f"val_size {config.val_size} leaves no training images")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    val_idx, train_idx = order[:config.val_size].numpy(), order[config.val_size:].numpy()
    if config.train_size:
        train_idx = train_idx[:config.train_size]
    splits = {"train": tensors(images[train_idx], labels[train_idx]),
              "test": tensors(*load_split(config.dataset, "test", data_dir))}
    if config.val_size:
        splits["val"] = tensors(images[val_idx], labels[val_idx])
    return splits


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed for everything random in one epoch (shuffle order, dropout)."""
    return seed * 100_003 + epoch


def train_epoch(model, optimizer, data: Tensors, config: TrainConfig, epoch: int) -> dict:
    """One pass over the training data; returns mean loss, accuracy and throughput."""
    torch.manual_seed(epoch_seed(config.seed, epoch))
    model.train()
    steps = math.ceil(len(data) / config.batch_size)
    order = torch.randperm(len(data), device=data.labels.device)
    loss_sum = torch.zeros((), device=data.labels.device)
    correct = torch.zeros((), dtype=torch.long, device=data.labels.device)
    start = time.perf_counter()
    bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, disable=None)
    for step in range(steps):
        progress = (epoch * steps + step) / (config.epochs * steps)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * SCHEDULES[config.schedule](progress)
        idx = order[step * config.batch_size:(step + 1) * config.batch_size]
        x, y = data.images[idx].float().div_(255), data.labels[idx]
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        bar.update()
        if not bar.disable and (step % PROGRESS_EVERY == 0 or step == steps - 1):
            seen = min((step + 1) * config.batch_size, len(data))
            bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct.item() / seen:.2%}",
                            img_s=f"{seen / (time.perf_counter() - start):.0f}")
    bar.close()
    seconds = time.perf_counter() - start
    return {"train_loss": loss_sum.item() / len(data), "train_accuracy": correct.item() / len(data),
            "seconds": seconds, "images_per_s": len(data) / seconds}


def score(model, data: Tensors) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of a model on a split."""
    logits = predict_logits(model, data.images)
    labels = data.labels.to(logits.device)
    correct = (logits.argmax(1) == labels).sum().item()
    return F.cross_entropy(logits, labels).item(), correct / len(labels)


def _snapshot(model, optimizer, config: TrainConfig, epoch: int, elapsed: float,
              command: str) -> dict:
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "config": asdict(config), "epoch": epoch, "elapsed": elapsed, "command": command}


def _check_new_run_dir(run_dir: Path) -> None:
    if (run_dir / STATE).exists() or (run_dir / CARD).exists():
        raise RunDirError(f"{run_dir} already holds a run: continue it with "
                          f"`digitrec train --resume {run_dir}` or choose another --out")


def versions() -> dict[str, str]:
    """Library versions recorded in a model card."""
    return {"digitrec": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def train(config: TrainConfig | None, run_dir, data_dir=None, resume: bool = False,
          log=tqdm.write) -> dict:
    """Train (or resume) a run in `run_dir`; returns its model card."""
    run_dir = Path(run_dir)
    command = shlex.join(["digitrec", *sys.argv[1:]])
    state = None
    if resume:
        state = load_state(run_dir)
        config = TrainConfig(**state["config"])
        command = state["command"]
        if (run_dir / CARD).exists() and state["epoch"] >= config.epochs:
            log(f"{run_dir} is already finished")
            return read_card(run_dir)
    else:
        _check_new_run_dir(run_dir)
    device = select_device(config.device)
    data = load_tensors(config, data_dir, device)
    torch.manual_seed(config.seed)
    model = create_model(config.model).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start_epoch, elapsed = 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, elapsed = state["epoch"], state["elapsed"]
        log(f"resuming {run_dir} after epoch {start_epoch}/{config.epochs}")
    else:
        save_state(run_dir, _snapshot(model, optimizer, config, 0, 0.0, command))
    history = [row for row in read_jsonl(run_dir / METRICS) if row["epoch"] <= start_epoch]
    log(f"training {config.model} on {config.dataset} ({len(data['train'])} images, "
        f"{len(data['val']) if 'val' in data else 0} for validation) on {device}")
    for epoch in range(start_epoch, config.epochs):
        row = {"epoch": epoch + 1, **train_epoch(model, optimizer, data["train"], config, epoch)}
        if "val" in data:
            row["val_loss"], row["val_accuracy"] = score(model, data["val"])
        elapsed += row["seconds"]
        history.append(row)
        write_jsonl(run_dir / METRICS, history)
        save_state(run_dir, _snapshot(model, optimizer, config, epoch + 1, elapsed, command))
        log(format_epoch(row, config.epochs))
    test_loss, test_accuracy = score(model, data["test"])
    metrics = {"test_accuracy": test_accuracy, "test_loss": test_loss,
               **{k: v for k, v in history[-1].items() if k.startswith("val_")}}
    card = {"model": config.model, "model_kwargs": {}, "config": asdict(config),
            "data": {"dataset": config.dataset, "sha256": file_checksums(config.dataset),
                     "train_images": len(data["train"]),
                     "val_images": len(data["val"]) if "val" in data else 0},
            "metrics": metrics, "train_seconds": round(elapsed, 2), "device": str(device),
            "versions": versions(), "command": command}
    save_run(run_dir, model, card)
    log(f"test accuracy {test_accuracy:.2%} (loss {test_loss:.4f}); run saved in {run_dir}")
    return card


def format_epoch(row: dict, epochs: int) -> str:
    """One human-readable line per finished epoch."""
    text = (f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f} "
            f"acc {row['train_accuracy']:.2%}")
    if "val_accuracy" in row:
        text += f"  val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.2%}"
    return text + f"  {row['seconds']:.1f} s  {row['images_per_s']:.0f} img/s"
