"""Wall seconds to reach 99.0% and 99.5% MNIST test accuracy: digitrec's `fast` and `accurate`
recipes against the classic PyTorch MNIST example, all trained in this one run.

The reference is a faithful re-implementation of pytorch/examples `mnist/main.py`: the 2-conv +
2-FC network with dropout, Adadelta (lr 1.0), StepLR (gamma 0.7), batch 64, and a per-sample
DataLoader pipeline (PIL image -> ToTensor -> Normalize). Every run's test accuracy is measured
every `--check-every` fraction of an epoch with the clock stopped; a run ends when it reaches
99.5% (the reference: 99.0%) or its budget. Medians over seeds; the last line is one JSON object.

    python benchmarks/time_to_accuracy.py --seeds 3
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from common import machine, run_benchmark
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from digitrec.config import recipe
from digitrec.data import load_split
from digitrec.devices import select_device
from digitrec.evaluate import predict_logits
from digitrec.train import Tensors, load_tensors, start_session, train_epoch

THRESHOLDS = (0.990, 0.995)
TARGET_SPEEDUP = 30.0


class Stopwatch:
    """Training time with evaluation pauses left out; records when each threshold is crossed."""

    def __init__(self, evaluate, steps_per_epoch: int, check_every: float,
                 thresholds: tuple[float, ...] = THRESHOLDS) -> None:
        self.evaluate, self.reached, self.thresholds = evaluate, {}, thresholds
        self.interval = max(1, round(steps_per_epoch * check_every))
        self.steps, self.paused, self.start = 0, 0.0, time.perf_counter()

    @property
    def trained(self) -> float:
        """Seconds of training so far, evaluation pauses left out."""
        return time.perf_counter() - self.start - self.paused

    def step(self) -> bool:
        """Count a step; at each check, measure accuracy. True once every threshold is reached."""
        self.steps += 1
        if self.steps % self.interval:
            return False
        trained, now = self.trained, time.perf_counter()
        accuracy = self.evaluate()
        for threshold in self.thresholds:
            if accuracy >= threshold and threshold not in self.reached:
                self.reached[threshold] = trained
        self.paused += time.perf_counter() - now
        return len(self.reached) == len(self.thresholds)


class Finished(Exception):
    """Raised from a step callback to stop training early."""


def accuracy_of(model: nn.Module, test: Tensors) -> float:
    logits = predict_logits(model, test.images)
    return (logits.argmax(1) == test.labels).float().mean().item()


def run_digitrec(name: str, seed: int, check_every: float, data_dir) -> dict:
    """Train a digitrec recipe, checking test accuracy as it goes."""
    config = replace(recipe(name), seed=seed)
    device = select_device(config.device)
    data = load_tensors(config, data_dir, device)
    session = start_session(config, device)
    steps = math.ceil(len(data["train"]) / config.batch_size)

    def evaluate() -> float:
        accuracy = accuracy_of(session.evaluated, data["test"])
        session.model.train()
        return accuracy

    watch = Stopwatch(evaluate, steps, check_every)

    def on_step(_step: int) -> None:
        if watch.step():
            raise Finished

    try:
        for epoch in range(config.epochs):
            train_epoch(session, data["train"], epoch, on_step)
    except Finished:
        pass
    return {**watch.reached, "trained": watch.trained}


class ReferenceNet(nn.Module):
    """pytorch/examples mnist/main.py `Net`."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


class ReferenceDataset(Dataset):
    """torchvision.datasets.MNIST with ToTensor + Normalize((0.1307,), (0.3081,)), per sample."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = Image.fromarray(self.images[index], mode="L")
        tensor = torch.from_numpy(np.array(image, dtype=np.uint8)).float().div(255).unsqueeze(0)
        return (tensor - 0.1307) / 0.3081, int(self.labels[index])


def run_reference(seed: int, check_every: float, max_epochs: int, data_dir) -> dict:
    """The classic example's recipe, checking test accuracy as it goes, until 99.0% only (its
    per-sample epochs are slow, and it cannot be counted on to reach 99.5% in its budget)."""
    torch.manual_seed(seed)
    train_set = ReferenceDataset(*load_split("mnist", "train", data_dir))
    test_images, test_labels = load_split("mnist", "test", data_dir)
    test_x = (torch.from_numpy(test_images).unsqueeze(1).float().div(255) - 0.1307) / 0.3081
    test_y = torch.from_numpy(test_labels)
    model = ReferenceNet()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    loader = DataLoader(train_set, batch_size=64, shuffle=True)

    def evaluate() -> float:
        model.eval()
        with torch.inference_mode():
            predictions = torch.cat([model(x).argmax(1) for x in test_x.split(1000)])
        model.train()
        return (predictions == test_y).float().mean().item()

    watch = Stopwatch(evaluate, len(loader), check_every, thresholds=THRESHOLDS[:1])
    model.train()
    for _ in range(max_epochs):
        for x, y in loader:
            optimizer.zero_grad()
            F.nll_loss(model(x), y).backward()
            optimizer.step()
            if watch.step():
                return {**watch.reached, "trained": watch.trained}
        scheduler.step()
    return {**watch.reached, "trained": watch.trained}


def median_time(results: list[dict], threshold: float) -> float | None:
    """Median seconds to a threshold; None unless every seed reached it."""
    times = [r.get(threshold) for r in results]
    return None if None in times else statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--check-every", type=float, default=0.05,
                        help="fraction of an epoch between accuracy checks")
    parser.add_argument("--reference-seeds", type=int, default=1,
                        help="seeds for the reference (each costs minutes)")
    parser.add_argument("--reference-epochs", type=int, default=3,
                        help="budget of the reference run (it rarely reaches 99.5%%)")
    parser.add_argument("--models", nargs="+", default=["fast", "accurate", "reference"],
                        choices=["fast", "accurate", "reference"])
    parser.add_argument("--data-dir")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 unless fast reaches 99%% {TARGET_SPEEDUP:.0f}x sooner")
    args = parser.parse_args()

    results: dict[str, list[dict]] = {name: [] for name in args.models}
    for name in args.models:
        for seed in range(args.reference_seeds if name == "reference" else args.seeds):
            run = (run_reference(seed, args.check_every, args.reference_epochs, args.data_dir)
                   if name == "reference" else
                   run_digitrec(name, seed, args.check_every, args.data_dir))
            results[name].append(run)
            print(f"{name} seed {seed}: " + ", ".join(
                f"{t:.1%} at {s:.1f} s" for t, s in run.items() if t != "trained")
                + f" (trained {run['trained']:.1f} s)", flush=True)
    summary = {f"{name}_s_to_{str(t * 100).rstrip('0').rstrip('.').replace('.', '_')}":
               median_time(runs, t) for name, runs in results.items() for t in THRESHOLDS}
    fast, reference = summary.get("fast_s_to_99"), summary.get("reference_s_to_99")
    summary["speedup"] = reference / fast if fast and reference else None
    if fast and "reference" in results and reference is None:
        # the reference never reached 99.0% in its budget: its time is at least that budget
        budget = statistics.median(r["trained"] for r in results["reference"])
        summary.update(reference_trained_s=budget, speedup_at_least=budget / fast)
    summary.update(seeds=args.seeds, check_every=args.check_every, **machine())
    print(f"to 99.0%: fast {fast} s, reference {reference} s, speedup {summary['speedup']}"
          + (f" (at least {summary['speedup_at_least']:.0f}x)" if "speedup_at_least" in summary
             else ""))
    print(json.dumps(summary))
    speedup = summary["speedup"] or summary.get("speedup_at_least")
    passed = speedup is not None and speedup >= TARGET_SPEEDUP
    return 0 if passed or not args.check else 1


if __name__ == "__main__":
    run_benchmark(main)
