"""Adapting a model to one person's handwriting with a few samples (`digitrec train --init`).

    python benchmarks/adapt_writer.py --run bench/shipped-mix
    python benchmarks/adapt_writer.py --run RUN --folders DIR DIR --samples 5 --weight 20

The writers are those the run held out of its CVL folders (file names `<digit>-<writer>-...`),
so the run never saw them. For each writer: fine-tune the run on `--samples` images per digit
of that writer (`digitrec train --init RUN --add-data THEM:WEIGHT`, the fine-tuning recipe),
then read the writer's other digits before and after, and the other held-out writers' digits
before and after (a model adapted to one person must not get worse for everyone else).
With `--replay W`, the run's own training folders (their training part only, as links to the
files) are replayed beside the samples at weight W, as a practitioner with the data would.
One line per writer, a summary, then one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import machine, run_benchmark
from PIL import Image

from digitrec.checkpoint import load_model, read_card
from digitrec.config import fine_tune_recipe
from digitrec.evaluate import predict_logits
from digitrec.folders import FolderData, holdout_mask, load_folder
from digitrec.train import train


def held_out_writers(run: Path, folders: list[Path]) -> list[tuple[FolderData, np.ndarray]]:
    """Each folder with the mask of the images its held-out writers wrote."""
    card = read_card(run)
    out = []
    for folder in folders:
        data = load_folder(folder)
        mask = holdout_mask(data, card["config"]["holdout"])
        if not data.has_writers or not mask.any():
            raise SystemExit(f"{folder}: the run held out no writers of it")
        out.append((data, mask))
    return out


def replay_folders(run: Path, directory: Path) -> list[Path]:
    """The training part of each folder the run trained on, as a folder of links."""
    card = read_card(run)
    out = []
    for source in card["data"]["sources"]:
        if source["kind"] != "folder":
            continue
        data = load_folder(source["path"])
        held = holdout_mask(data, card["config"]["holdout"])
        target = directory / source["name"]
        for file, h in zip(data.files, held, strict=True):
            if not h:
                (target / file).parent.mkdir(parents=True, exist_ok=True)
                (target / file).symlink_to((Path(source["path"]) / file).resolve())
        out.append(target)
    return out


def accuracy(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    logits = predict_logits(model, torch.from_numpy(images).unsqueeze(1))
    return float((logits.argmax(1).numpy() == labels).mean())


def write_samples(directory: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """The fine-tuning samples as an image folder, the way a user would give them."""
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        path = directory / str(label) / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run directory to adapt")
    data_dir = os.environ.get("DIGITREC_DATA", "../shared/data")
    parser.add_argument("--folders", nargs="+", type=Path,
                        default=[Path(data_dir) / "cvl-digits/train", Path(data_dir) / "cvl-digits/valid"])
    parser.add_argument("--data-dir", default=data_dir)
    parser.add_argument("--samples", type=int, default=5, help="samples per digit to adapt on")
    parser.add_argument("--weight", type=float, default=20.0, help="the samples' sampling weight")
    parser.add_argument("--writers", type=int, default=0, help="at most this many (0 = all)")
    parser.add_argument("--replay", type=float, default=0.0, metavar="W",
                        help="replay the run's own training folders at this weight (0 = none)")
    args = parser.parse_args()
    run = Path(args.run)
    replay_dir = tempfile.TemporaryDirectory()
    replay = [f"{p}:{args.replay}" for p in replay_folders(run, Path(replay_dir.name))] \
        if args.replay else []
    base, card = load_model(run)
    held = held_out_writers(run, args.folders)
    writers = [(data, w) for data, mask in held
               for w in sorted({w for w, m in zip(data.writers, mask, strict=True) if m})]
    writers = writers[:args.writers or None]
    pool_images = np.concatenate([data.images[mask] for data, mask in held])
    pool_labels = np.concatenate([data.labels[mask] for data, mask in held])
    pool_writers = [(data.name, w) for data, mask in held
                    for w, m in zip(data.writers, mask, strict=True) if m]
    rng = np.random.default_rng(0)
    rows = []
    print(f"{run}: {len(writers)} held-out writers, {args.samples} samples per digit, "
          f"weight {args.weight}; {machine()}")
    for data, writer in writers:
        mine = np.flatnonzero(np.array(data.writers) == writer)
        counts = np.bincount(data.labels[mine], minlength=10)
        if counts.min() < args.samples or len(mine) == 10 * args.samples:
            print(f"writer {writer} ({data.name}): skipped, {len(mine)} digits "
                  f"(fewer than {args.samples} of some digit, or none left to test on)")
            continue
        tune = np.concatenate([rng.permutation(mine[data.labels[mine] == d])[:args.samples]
                               for d in range(10)])
        rest = np.setdiff1d(mine, tune)
        others = np.array([key != (data.name, writer) for key in pool_writers])
        other_images, other_labels = pool_images[others], pool_labels[others]
        with tempfile.TemporaryDirectory() as tmp:
            write_samples(Path(tmp) / "mine", data.images[tune], data.labels[tune])
            config = replace(fine_tune_recipe(str(run), card["model"]),
                             add_data=(f"{Path(tmp) / 'mine'}:{args.weight}", *replay),
                             holdout=0.0)
            train(config, Path(tmp) / "tuned", args.data_dir, log=lambda *_: None,
                  progress=False)
            tuned, _ = load_model(Path(tmp) / "tuned")
        row = {"writer": writer, "source": data.name, "tuned_on": len(tune), "tested_on": len(rest),
               "before": accuracy(base, data.images[rest], data.labels[rest]),
               "after": accuracy(tuned, data.images[rest], data.labels[rest]),
               "others_before": accuracy(base, other_images, other_labels),
               "others_after": accuracy(tuned, other_images, other_labels)}
        rows.append(row)
        print(f"writer {writer} ({data.name}): own digits {row['before']:.2%} -> {row['after']:.2%} "
              f"({len(rest)}), other writers {row['others_before']:.2%} -> {row['others_after']:.2%}",
              flush=True)
    mean = {k: float(np.mean([r[k] for r in rows]))
            for k in ("before", "after", "others_before", "others_after")}
    better = sum(r["after"] > r["before"] for r in rows)
    worse = sum(r["after"] < r["before"] for r in rows)
    print(f"mean over {len(rows)} writers: own digits {mean['before']:.2%} -> {mean['after']:.2%} "
          f"({better} better, {worse} worse), other writers {mean['others_before']:.2%} -> "
          f"{mean['others_after']:.2%}")
    replay_dir.cleanup()
    print(json.dumps({"run": str(run), "samples_per_digit": args.samples, "weight": args.weight,
                      "replay": args.replay,
                      "mean": mean, "writers": rows}))
    return 0


if __name__ == "__main__":
    run_benchmark(main)
