"""The training loop: data in memory, per-epoch validation, resumable runs.

The whole dataset lives on the training device as uint8; each step indexes a random batch and
converts it to float there. Every source of randomness in an epoch is seeded from (seed, epoch),
and the state is checkpointed at each epoch end, so a run killed at any point resumes with
`--resume` and finishes exactly where an uninterrupted run would. What a run does is a
`config.TrainConfig`; the device is chosen in `devices`, the processes of a torchrun job are
`distributed.Cluster`, the weight average is `averaging.WeightAverage`.
"""

from __future__ import annotations

import math
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from . import __version__
from . import config as config_module
from .augment import augment
from .averaging import WeightAverage, unwrap
from .calibration import fit_temperature, negative_log_likelihood, reliability, softmax
from .card import CARD_VERSION, DataFacts, ModelCard
from .checkpoint import CARD, METRICS, STATE, load_state, read_card, save_run, save_state
from .config import OPTIMIZERS, SCHEDULES, TrainConfig, train_command
from .data import file_checksums, get_dataset, load_split
from .devices import autocast_dtype, select_device
from .distributed import Cluster, rank_slice
from .errors import ConfigError, RunDirError
from .evaluate import predict_logits
from .files import read_jsonl, remove_stale_temporaries, write_jsonl
from .folders import FolderData, holdout_mask, load_folder
from .models import create_model
from .predict import run_dir_of

PROGRESS_EVERY = 25  # steps between progress-bar refreshes (each one syncs with the device)
SPLIT_SEED = 20240  # the validation split is the same for every run, so runs compare fairly
RANK_SEED_STRIDE = 1_000_003  # distributed: rank r augments with the epoch's seed + r * this


def _silent(*_) -> None:
    pass


@dataclass(frozen=True)
class Part:
    """A stretch of the training tensors that came from one source, and how often its images
    are drawn per epoch (1 = each once)."""

    name: str
    size: int
    weight: float = 1.0


@dataclass
class Tensors:
    """Images held in memory: uint8 (N, 1, 28, 28) and int64 labels (N); training tensors
    also know which stretch came from which source."""

    images: torch.Tensor
    labels: torch.Tensor
    parts: tuple[Part, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Splits:
    """A run's data: the training images of every source, each source's held-out part (by
    source name), the test split, and what the card records of each source."""

    train: Tensors
    test: Tensors
    val: dict[str, Tensors]
    sources: list[dict]

    def pooled_val(self) -> Tensors | None:
        """Every source's held-out images together (None when nothing is held out)."""
        if not self.val:
            return None
        parts = list(self.val.values())
        return Tensors(torch.cat([t.images for t in parts]), torch.cat([t.labels for t in parts]))


def load_tensors(config: TrainConfig, data_dir, device: torch.device, log=_silent) -> Splits:
    """The dataset's train (less its validation images) and test splits, and each --add-data
    folder less its held-out part, as tensors on `device`."""
    def tensors(images: np.ndarray, labels: np.ndarray, parts: tuple[Part, ...] = ()) -> Tensors:
        return Tensors(torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1).to(device),
                       torch.from_numpy(np.ascontiguousarray(labels)).to(device), parts)

    images, labels = load_split(config.dataset, "train", data_dir)
    if config.val_size >= len(labels):
        raise ConfigError(f"val_size {config.val_size} leaves no training images")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    val_idx, train_idx = order[:config.val_size].numpy(), order[config.val_size:].numpy()
    if config.train_size:
        train_idx = train_idx[:config.train_size]
    train_images, train_labels = [images[train_idx]], [labels[train_idx]]
    parts = [Part(config.dataset, len(train_idx))]
    val = {config.dataset: tensors(images[val_idx], labels[val_idx])} if config.val_size else {}
    sources = [{"name": config.dataset, "kind": "idx", "sha256": file_checksums(config.dataset),
                "train_images": len(train_idx), "val_images": len(val_idx), "weight": 1.0}]
    for path, weight in config.sources:
        folder = load_folder(path, get_dataset(config.dataset).classes,
                             warn=lambda text: log(f"warning: {text}"))
        if folder.name in {p.name for p in parts}:
            raise ConfigError(f"two training sources are named {folder.name!r}: rename a folder")
        held = holdout_mask(folder, config.holdout)
        train_images.append(folder.images[~held])
        train_labels.append(folder.labels[~held])
        parts.append(Part(folder.name, int((~held).sum()), weight))
        if held.any():
            val[folder.name] = tensors(folder.images[held], folder.labels[held])
        sources.append(folder_card(folder, held, weight))
    return Splits(tensors(np.concatenate(train_images), np.concatenate(train_labels), tuple(parts)),
                  tensors(*load_split(config.dataset, "test", data_dir)), val, sources)


def folder_card(folder: FolderData, held: np.ndarray, weight: float) -> dict:
    """What a model card records of an image folder: where, how many, which writers were held
    out, and a fingerprint of its contents."""
    card = {"name": folder.name, "kind": "folder", "path": str(folder.root),
            "fingerprint": folder.fingerprint, "images": len(folder) + len(folder.problems),
            "left_out": len(folder.problems), "train_images": int((~held).sum()),
            "val_images": int(held.sum()), "weight": weight}
    if folder.has_writers:
        card["writers"] = len(set(folder.writers))
        card["val_writers"] = sorted({w for w, h in zip(folder.writers, held, strict=True) if h})
    return card


def epoch_order(data: Tensors) -> torch.Tensor:
    """The training images of one epoch in random order: each source's images drawn as often
    as its weight says (whole passes, then a random part of one), under the current seed."""
    device = data.labels.device
    if all(part.weight == 1 for part in data.parts):
        return torch.randperm(len(data), device=device)
    pieces, start = [], 0
    for part in data.parts:
        count = round(part.weight * part.size)
        passes = torch.cat([torch.randperm(part.size, device=device)
                            for _ in range(-(-count // part.size))])
        pieces.append(passes[:count] + start)
        start += part.size
    order = torch.cat(pieces)
    return order[torch.randperm(len(order), device=device)]


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed for everything random in one epoch (shuffle order, augmentation, dropout)."""
    return seed * 100_003 + epoch


@dataclass
class Session:
    """What a training run holds while it runs."""

    config: TrainConfig
    model: torch.nn.Module  # what is trained (possibly wrapped in DDP and compiled)
    optimizer: torch.optim.Optimizer
    ema: WeightAverage | None
    dtype: torch.dtype | None
    cluster: Cluster = Cluster()

    @property
    def lr(self) -> float:
        """Peak learning rate, scaled by the number of processes if asked."""
        return self.config.lr * (self.cluster.world if self.config.scale_lr else 1)

    @property
    def evaluated(self) -> torch.nn.Module:
        """The model that is evaluated and saved: the weight average when there is one."""
        return self.ema.module if self.ema is not None else unwrap(self.model)

    def state(self, epoch: int, elapsed: float) -> dict:
        return {"model": unwrap(self.model).state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else {},
                "config": asdict(self.config), "epoch": epoch, "elapsed": elapsed}

    def restore(self, state: dict) -> None:
        unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])


def start_session(config: TrainConfig, device: torch.device,
                  cluster: Cluster = Cluster()) -> Session:
    """Build the model (seeded: the same on every rank), optimizer and weight average."""
    torch.manual_seed(config.seed)
    model = create_model(config.model)
    if config.init:
        model.load_state_dict(initial_weights(config).state_dict())
    model = model.to(device, memory_format=torch.channels_last)
    if cluster.world > 1:
        if config.sync_bn:
            if device.type != "cuda":
                raise ConfigError("--sync-bn needs CUDA devices: PyTorch's SyncBatchNorm works "
                                  "only on GPUs")
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    # only rank 0 evaluates and saves, so only rank 0 keeps the weight average
    ema = WeightAverage(model, config.ema) if config.ema and cluster.leader else None
    optimizer = OPTIMIZERS[config.optimizer](model.parameters(), config)
    if config.compile:
        model = torch.compile(model)
    return Session(config, model, optimizer, ema, autocast_dtype(config, device), cluster)


def initial_weights(config: TrainConfig) -> torch.nn.Module:
    """The trained model that `--init` fine-tunes; its architecture must be the run's."""
    from .checkpoint import load_model

    model, card = load_model(run_dir_of(config.init))
    if card["model"] != config.model:
        raise ConfigError(f"--init {config.init} holds a {card['model']!r} model, not "
                          f"{config.model!r}: give --model {card['model']}")
    return model


def train_epoch(session: Session, data: Tensors, epoch: int,
                on_step: Callable[[int], None] | None = None, progress: bool | None = None) -> dict:
    """One pass over the training data; returns mean loss, accuracy and throughput.
    `on_step(step)` runs after each optimizer step (benchmarks use it to measure accuracy);
    `progress` shows the progress bar (default: only on a terminal)."""
    config, model, optimizer, cluster = (session.config, session.model, session.optimizer,
                                         session.cluster)
    device = data.labels.device
    torch.manual_seed(epoch_seed(config.seed, epoch))
    model.train()
    if config.freeze_norm:
        freeze_norm_statistics(model)
    order = rank_slice(epoch_order(data), cluster)
    if cluster.world > 1:  # every rank augments its own images differently
        torch.manual_seed(epoch_seed(config.seed, epoch) + RANK_SEED_STRIDE * cluster.rank)
    steps = math.ceil(len(order) / config.batch_size)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    start = time.perf_counter()
    bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
               disable=(None if progress is None else not progress) if cluster.leader else True)
    for step in range(steps):
        done = (epoch * steps + step) / (config.epochs * steps)
        for group in optimizer.param_groups:
            group["lr"] = session.lr * SCHEDULES[config.schedule](done)
        idx = order[step * config.batch_size:(step + 1) * config.batch_size]
        x, y = augment(data.images[idx].float().div_(255), config.augmentation), data.labels[idx]
        with torch.autocast(device.type, dtype=session.dtype or torch.bfloat16,
                            enabled=session.dtype is not None):
            logits = model(x.contiguous(memory_format=torch.channels_last)).float()
        loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if session.ema is not None:
            session.ema.update(model)
        if on_step is not None:
            on_step(step)
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        bar.update()
        if not bar.disable and (step % PROGRESS_EVERY == 0 or step == steps - 1):
            seen = min((step + 1) * config.batch_size, len(order))
            bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}",
                            acc=f"{correct.item() / seen:.2%}",
                            img_s=f"{seen * cluster.world / (time.perf_counter() - start):.0f}")
    bar.close()
    totals = torch.stack([loss_sum.float(), correct.float(),
                          torch.tensor(float(len(order)), device=device)])
    if cluster.world > 1:
        dist.all_reduce(totals)  # every rank's images count
    loss, right, seen = totals.tolist()
    seconds = time.perf_counter() - start
    return {"train_loss": loss / seen, "train_accuracy": right / seen, "seconds": seconds,
            "images_per_s": seen / seconds}


def freeze_norm_statistics(model: torch.nn.Module) -> None:
    """Put every BatchNorm layer in eval mode: it normalises with its stored statistics and
    stops updating them, while its scale and shift still learn."""
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d,
                               torch.nn.SyncBatchNorm)):
            module.eval()


def score(model, data: Tensors) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of a model on a split."""
    logits = predict_logits(model, data.images)
    labels = data.labels.to(logits.device)
    correct = (logits.argmax(1) == labels).sum().item()
    return F.cross_entropy(logits, labels).item(), correct / len(labels)


def validate(model, data: Splits) -> dict:
    """Loss and accuracy on every held-out image (`val_loss`, `val_accuracy`) and, with more
    than one source, on each source's own (`val_sources`)."""
    scores = {name: (*score(model, part), len(part)) for name, part in data.val.items()}
    total = sum(n for *_, n in scores.values())
    row = {"val_loss": sum(loss * n for loss, _, n in scores.values()) / total,
           "val_accuracy": sum(acc * n for _, acc, n in scores.values()) / total}
    if len(data.sources) > 1:
        row["val_sources"] = {name: {"loss": loss, "accuracy": acc, "images": n}
                              for name, (loss, acc, n) in scores.items()}
    return row


def calibrate(model, data: Tensors) -> dict | None:
    """Temperature scaling fitted on held-out images (every source's held-out part); predictors
    divide the logits by it. None when those images do not determine a temperature."""
    logits = predict_logits(model, data.images).cpu().numpy()
    labels = data.labels.cpu().numpy()
    temperature = fit_temperature(logits, labels)
    if temperature is None:
        return None
    return {"temperature": temperature, "fitted_on": "held-out images", "images": len(labels),
            "nll_before": negative_log_likelihood(logits, labels),
            "nll_after": negative_log_likelihood(logits, labels, temperature),
            "ece_before": reliability(softmax(logits), labels)["ece"],
            "ece_after": reliability(softmax(logits, temperature), labels)["ece"]}


def _check_new_run_dir(run_dir: Path) -> None:
    if (run_dir / STATE).exists() or (run_dir / CARD).exists():
        raise RunDirError(f"{run_dir} already holds a run: continue it with "
                          f"`digitrec train --resume {run_dir}` or choose another --out")


def versions() -> dict[str, str]:
    """Library versions recorded in a model card."""
    return {"digitrec": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def train(config: TrainConfig | None, run_dir, data_dir=None, resume: bool = False,
          log=tqdm.write, progress: bool | None = None) -> dict:
    """Train (or resume) a run in `run_dir`; returns its model card.

    Under torchrun every process trains its share of each epoch (DistributedDataParallel);
    rank 0 alone logs, evaluates and writes the run directory, and other ranks return {}.
    """
    run_dir = Path(run_dir)
    cluster = Cluster.from_env()
    if not cluster.leader:
        log = _silent
    state = None
    if resume:
        if cluster.leader and (stale := remove_stale_temporaries(run_dir)):
            log(f"removed {stale} unfinished file(s) that an interrupted write left in {run_dir}")
        state = load_state(run_dir)
        try:
            config = TrainConfig(**state["config"])
        except (KeyError, TypeError) as e:
            raise RunDirError(f"{run_dir}: the saved configuration does not fit this version "
                              f"of digitrec ({e})") from None
        if (run_dir / CARD).exists() and state["epoch"] >= config.epochs:
            log(f"{run_dir} is already finished")
            return read_card(run_dir) if cluster.leader else {}
    elif cluster.leader:
        _check_new_run_dir(run_dir)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = cluster.start(select_device(config.device))
    try:
        return _train(start_session(config, device, cluster), run_dir, data_dir, state, log,
                      progress)
    finally:
        cluster.stop()


def _train(session: Session, run_dir: Path, data_dir, state: dict | None, log,
           progress: bool | None) -> ModelCard | dict:
    """The epochs of a run, from `state` if resuming; the card (rank 0) or {} (other ranks)."""
    config, cluster = session.config, session.cluster
    device = next(session.evaluated.parameters()).device
    data = load_tensors(config, data_dir, device, log)
    start_epoch, elapsed = 0, 0.0
    if state is not None:
        session.restore(state)
        start_epoch, elapsed = state["epoch"], state["elapsed"]
        log(f"resuming {run_dir} after epoch {start_epoch}/{config.epochs}")
    elif cluster.leader:
        save_state(run_dir, session.state(0, 0.0))
    history = [row for row in read_jsonl(run_dir / METRICS) if row["epoch"] <= start_epoch]
    held_out = data.pooled_val()
    log(f"training {config.model} on {' + '.join(p.name for p in data.train.parts)} "
        f"({len(data.train)} images, {len(held_out) if held_out else 0} for validation) on {device}"
        f"{' with bf16 autocast' if session.dtype else ''}"
        f"{f' in {cluster.world} processes' if cluster.world > 1 else ''}")
    for epoch in range(start_epoch, config.epochs):
        row = {"epoch": epoch + 1, **train_epoch(session, data.train, epoch, progress=progress)}
        elapsed += row["seconds"]
        if not cluster.leader:
            continue
        if data.val:
            row.update(validate(session.evaluated, data))
        history.append(row)
        write_jsonl(run_dir / METRICS, history)
        save_state(run_dir, session.state(epoch + 1, elapsed))
        log(format_epoch(row, config.epochs))
    if not cluster.leader:
        return {}
    test_loss, test_accuracy = score(session.evaluated, data.test)
    metrics = {"test_accuracy": test_accuracy, "test_loss": test_loss,
               **{k: v for k, v in history[-1].items() if k.startswith("val_")}}
    card = ModelCard(
        version=CARD_VERSION, model=config.model, model_kwargs={}, config=config.as_json(),
        data=DataFacts(dataset=config.dataset, sha256=file_checksums(config.dataset),
                       train_images=len(data.train), val_images=len(held_out) if held_out else 0,
                       sources=data.sources),
        metrics=metrics, train_seconds=round(elapsed, 2), device=str(device),
        versions=versions(), command=train_command(config))
    if config.init:
        card["init"] = {"run": config.init,
                        "command": read_card(run_dir_of(config.init)).get("command")}
    calibration = calibrate(session.evaluated, held_out) if held_out else None
    if calibration is not None:
        card["calibration"] = calibration
    if cluster.world > 1:
        card["distributed"] = {"processes": cluster.world, "backend": dist.get_backend(),
                               "global_batch": config.batch_size * cluster.world, "lr": session.lr}
    save_run(run_dir, session.evaluated, card)
    if calibration is not None:
        log(f"temperature {calibration['temperature']:.3f} (fitted on the {len(held_out)} "
            "held-out images: predictors divide the logits by it)")
    elif held_out:
        log("no temperature: the validation images hold no mistakes to fit one on "
            "(a larger --val-size helps)")
    log(f"test accuracy {test_accuracy:.2%} (loss {test_loss:.4f}); run saved in {run_dir}")
    return card


def format_epoch(row: dict, epochs: int) -> str:
    """One human-readable line per finished epoch."""
    text = (f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f} "
            f"acc {row['train_accuracy']:.2%}")
    if "val_accuracy" in row:
        text += f"  val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.2%}"
    if "val_sources" in row:
        text += " (" + ", ".join(f"{name} {v['accuracy']:.2%}"
                                 for name, v in row["val_sources"].items()) + ")"
    return text + f"  {row['seconds']:.1f} s  {row['images_per_s']:.0f} img/s"


MOVED = {"recipe": config_module, "fine_tune_recipe": config_module, "parse_source": config_module,
         "changed_flags": config_module, "RECIPES": config_module}


def __getattr__(name: str):
    """Deprecated aliases: the names of MOVED import from the module they map to, with a
    DeprecationWarning."""
    if name in MOVED:
        warnings.warn(f"digitrec.train.{name} moved to {MOVED[name].__name__}.{name}",
                      DeprecationWarning, stacklevel=2)
        return getattr(MOVED[name], name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
