"""What decides a training run: `TrainConfig` (each field a `digitrec train` flag), the
optimizers and learning-rate schedules it names, the recipes per model, and the command line
that reproduces a configuration."""

from __future__ import annotations

import math
import shlex
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch

from .augment import Augmentation
from .data import get_dataset
from .errors import ConfigError
from .models import list_models
from .options import option


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run's result; each field is a `digitrec train` flag."""

    model: str = option("baseline", "architecture name")
    dataset: str = option("mnist", "dataset name")
    add_data: tuple[str, ...] = option((), "an image folder (DIR/<digit>/*.png) of more training "
                                         "digits, DIR or DIR:WEIGHT (its images drawn WEIGHT "
                                         "times as often); repeat for several")
    holdout: float = option(0.1, "fraction of each --add-data folder held out for validation and "
                               "the temperature (whole writers where file names name them)")
    init: str = option("", "start from the weights of this run directory, or `shipped` for the "
                         "shipped model (fine-tuning)")
    epochs: int = option(3, "passes over the training set")
    batch_size: int = option(128, "images per optimizer step")
    optimizer: str = option("adam", "adam, or sgd (Nesterov momentum)")
    lr: float = option(1e-3, "peak learning rate")
    momentum: float = option(0.9, "SGD momentum")
    weight_decay: float = option(0.0, "weight decay")
    schedule: str = option("cosine", "learning-rate schedule: constant, cosine or onecycle")
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy loss")
    ema: float = option(0.0, "decay of an exponential moving average of the weights (0 = off); "
                           "the average is what gets evaluated and saved")
    freeze_norm: bool = option(False, "keep the BatchNorm statistics as trained (fine-tuning: "
                                      "batches full of a few new images would shift them)")
    rotate: float = option(0.0, "augmentation: max rotation in degrees")
    scale: float = option(0.0, "augmentation: max relative zoom in or out")
    shear: float = option(0.0, "augmentation: max shear in degrees")
    translate: float = option(0.0, "augmentation: max shift in pixels")
    elastic_alpha: float = option(0.0, "augmentation: elastic distortion strength in pixels")
    elastic_sigma: float = option(4.0, "augmentation: elastic distortion smoothness in pixels")
    thickness: float = option(0.0, "augmentation: strokes up to this much thicker or thinner "
                                 "(1 = a pixel each side), as pens differ")
    fill: float = option(0.0, "augmentation: share of the images stretched towards filling a "
                              "square box, as some digit sets store every digit")
    coarse: float = option(0.0, "augmentation: share of the images rendered as a small binary "
                                "bitmap (14-24 px), as some digit sets store them")
    seed: int = option(0, "random seed (same seed, same result)")
    val_size: int = option(5000, "training images held out for per-epoch validation (0 = none)")
    train_size: int = option(0, "use only this many training images (0 = all)")
    device: str = option("auto", "auto (the accelerator torch finds: cuda, mps, xpu, ...; else cpu) "
                                  "or a torch device")
    precision: str = option("auto", "fp32, bf16 (autocast), or auto: bf16 where the device "
                                  "supports it natively")
    compile: bool = option(False, "compile the model with torch.compile")
    threads: int = option(0, "CPU threads (0 = PyTorch's default)")
    sync_bn: bool = option(False, "distributed, CUDA: BatchNorm statistics over all processes' batches")
    scale_lr: bool = option(False, "distributed: lr times the number of processes (linear "
                                 "scaling rule for the larger global batch)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "add_data", tuple(self.add_data))  # a list from JSON or a state
        choices = {"model": list_models(), "optimizer": OPTIMIZERS, "schedule": SCHEDULES,
                   "precision": ("auto", "fp32", "bf16")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"unknown {name} {getattr(self, name)!r}; choose one of: "
                                 f"{', '.join(allowed)}")
        get_dataset(self.dataset)
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("epochs and batch_size must be at least 1, lr above 0")
        if min(self.val_size, self.train_size, self.threads) < 0 or not 0 <= self.ema < 1:
            raise ConfigError("val_size, train_size and threads must be >= 0, ema in [0, 1)")
        if self.optimizer == "sgd" and self.momentum <= 0:
            raise ConfigError("sgd uses Nesterov momentum: momentum must be above 0")
        if self.weight_decay < 0 or not 0 <= self.label_smoothing < 1:
            raise ConfigError("weight_decay must be >= 0 and label_smoothing in [0, 1)")
        if not (0 <= self.rotate < 90 and 0 <= self.shear < 90 and 0 <= self.scale < 1
                and 0 <= self.translate <= 14 and self.elastic_alpha >= 0
                and 0 < self.elastic_sigma <= 6 and 0 <= self.thickness <= 1
                and 0 <= self.fill <= 1 and 0 <= self.coarse <= 1):
            raise ConfigError("augmentation out of range: rotate and shear in [0, 90) degrees, "
                              "scale in [0, 1), translate in [0, 14] px, elastic_alpha >= 0, "
                              "elastic_sigma in (0, 6] px, thickness, fill and coarse in [0, 1]")
        if not 0 <= self.seed < 2**40:
            raise ConfigError("seed must be in [0, 2**40)")
        if not 0 <= self.holdout < 1:
            raise ConfigError("holdout must be in [0, 1)")
        for spec in self.add_data:
            parse_source(spec)

    def as_json(self) -> dict:
        """The configuration as JSON writes and reads it (lists, not tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def sources(self) -> list[tuple[Path, float]]:
        """The --add-data folders with their sampling weights."""
        return [parse_source(spec) for spec in self.add_data]

    @property
    def augmentation(self) -> Augmentation:
        return Augmentation(self.rotate, self.scale, self.shear, self.translate,
                            self.elastic_alpha, self.elastic_sigma, self.thickness, self.fill,
                            self.coarse)


def parse_source(spec: str) -> tuple[Path, float]:
    """`DIR` or `DIR:WEIGHT` -> (folder, weight); the weight must be above 0."""
    path, sep, weight = spec.rpartition(":")
    if not sep:
        return Path(spec), 1.0
    try:
        value = float(weight)
    except ValueError:
        return Path(spec), 1.0  # a colon in the folder's own name
    if not 0 < value <= 100:
        raise ConfigError(f"--add-data {spec}: the weight must be above 0 and at most 100")
    return Path(path), value


def _one_cycle(progress: float, warmup: float = 0.25) -> float:
    if progress < warmup:
        return 0.04 + 0.96 * progress / warmup
    return 0.5 * (1 + math.cos(math.pi * (progress - warmup) / (1 - warmup)))


SCHEDULES = {
    "constant": lambda progress: 1.0,
    "cosine": lambda progress: 0.5 * (1 + math.cos(math.pi * progress)),
    "onecycle": _one_cycle,
}

OPTIMIZERS = {
    "adam": lambda params, c: torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay),
    "sgd": lambda params, c: torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, nesterov=True,
                                             weight_decay=c.weight_decay),
}

RECIPES = {
    # the original notebook's network and optimizer, in full precision
    "baseline": TrainConfig(model="baseline", epochs=3, batch_size=128, lr=1e-3,
                            schedule="cosine", precision="fp32"),
    # least wall time to 99% on a CPU: one epoch, one-cycle SGD, label smoothing, bf16
    "fast": TrainConfig(model="fast", epochs=1, batch_size=64, optimizer="sgd", lr=0.1,
                        weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1, val_size=0),
    # best single model within a 15-minute budget on 2 cores: augmentation, weight averaging
    "accurate": TrainConfig(model="accurate", epochs=40, batch_size=128, lr=3e-3,
                            schedule="onecycle", label_smoothing=0.1, ema=0.999, rotate=10,
                            scale=0.1, shear=8, translate=2.5, elastic_alpha=1.5,
                            elastic_sigma=4.0, val_size=0),
}


def recipe(model: str) -> TrainConfig:
    """The default configuration for a model (`digitrec train --model NAME` uses it)."""
    return RECIPES.get(model, replace(TrainConfig(), model=model))


def fine_tune_recipe(init: str, model: str) -> TrainConfig:
    """The default configuration for `--init RUN` (fine-tuning on a few samples of one's own
    handwriting): the model's recipe at a thirtieth of its learning rate, five short epochs,
    2,000 images of the dataset replayed beside the new ones, and the BatchNorm statistics kept
    as trained, so the model moves towards the new writing without forgetting the rest. Give
    the new folder a weight (`--add-data DIR:20`) so that it fills a good part of each batch."""
    base = recipe(model)
    return replace(base, init=init, epochs=5, lr=base.lr / 30, train_size=2000, val_size=0,
                   ema=0.0, schedule="cosine", freeze_norm=True)


def changed_flags(config, base, skip: tuple[str, ...] = ()) -> list[str]:
    """The command-line flags of every field of a config dataclass that differs from `base`
    (a tuple field gives its flag once per item)."""
    words = []
    for f in fields(config):
        value, flag = getattr(config, f.name), "--" + f.name.replace("_", "-")
        if f.name in skip or value == getattr(base, f.name):
            continue
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, tuple):
            words += [word for item in value for word in (flag, str(item))]
        else:
            words += [flag, str(value)]
    return words


def train_command(config: TrainConfig) -> str:
    """The `digitrec train` command line that reproduces a configuration: the model, then
    every option that differs from the model's recipe (the data directory is not part of it;
    the card's data checksums name the data)."""
    return shlex.join(["digitrec", "train", "--model", config.model,
                       *changed_flags(config, recipe(config.model), skip=("model",))])
