"""The `digitrec` command line: parses arguments, calls the library, prints results."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import __version__
from .errors import ConfigError, DigitrecError
from .options import add_flags, from_flags

DATA_DIR_HELP = "directory with dataset files (default: $DIGITREC_DATA, else ~/.cache/digitrec/data)"
FORCE_HELP = ("answer a digit even for what does not look like one (a letter, a shape, a "
              "scribble), and keep every mark in a number")


def cmd_data(args: argparse.Namespace) -> int:
    """Fetch/verify a dataset and print per-split, per-class counts."""
    from .data import data_root, get_dataset, load_split

    spec = get_dataset(args.dataset)
    labels = {split: load_split(spec.name, split, args.data_dir)[1] for split in ("train", "test")}
    print(f"{spec.name}: files verified (SHA-256 of contents) under {data_root(args.data_dir)}")
    print(f"{'split':<6} {'images':>7}  " + " ".join(f"{c[:7]:>7}" for c in spec.classes))
    for split, values in labels.items():
        counts = np.bincount(values, minlength=len(spec.classes))
        print(f"{split:<6} {len(values):>7}  " + " ".join(f"{n:>7}" for n in counts))
    return 0


def torch_installed() -> bool:
    """Whether torch can be imported, without importing it (a broken import of digitrec's own
    training code then fails loudly instead of looking like a light install)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except ImportError:  # an import hook that refuses torch
        return False


def require_torch(*others: str) -> None:
    """Fail with an install hint where the light install (no torch) meets a torch command."""
    for module in ("torch", *others):
        try:
            __import__(module)
        except ImportError:
            raise DigitrecError(f"this command needs {module}: pip install 'digitrec[train]'") from None


def config_overrides(args: argparse.Namespace) -> dict:
    """The training options given on the command line."""
    from .config import TrainConfig

    return from_flags(args, TrainConfig)


def train_config(args: argparse.Namespace):
    """The model's recipe with the command line's options applied."""
    from .config import fine_tune_recipe, recipe

    overrides = config_overrides(args)
    if "init" in overrides:  # fine-tuning: the run's architecture, gentler defaults
        from .checkpoint import read_card
        from .predict import run_dir_of

        model = overrides.setdefault("model", read_card(run_dir_of(overrides["init"]))["model"])
        return replace(fine_tune_recipe(overrides["init"], model), **overrides)
    return replace(recipe(overrides.get("model", "baseline")), **overrides)


def cmd_train(args: argparse.Namespace) -> int:
    """Train a model (or resume a run) and report its test accuracy."""
    require_torch()
    from .train import train

    if args.nproc < 1:
        raise DigitrecError("--nproc must be at least 1")
    if args.resume:
        if config_overrides(args) or args.out:
            raise ConfigError("--resume continues a run with its own configuration; give no "
                              "other training options")
        run_dir, config = args.resume, None
    else:
        config = train_config(args)
        run_dir = args.out or f"runs/{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:  # not yet under torchrun
        return launch_distributed(args, run_dir)
    try:
        train(config, run_dir, data_dir=args.data_dir, resume=bool(args.resume))
    except KeyboardInterrupt:
        print(f"\ninterrupted: {resume_hint(run_dir, args.nproc) or 'nothing was saved'}",
              file=sys.stderr)
        return 130
    return 0


def resume_hint(run_dir: str, nproc: int) -> str | None:
    """How to continue a run whose finished epochs are saved (None if nothing is)."""
    from .checkpoint import STATE

    if not (Path(run_dir) / STATE).exists():
        return None
    return (f"finished epochs are saved; continue with `digitrec train --resume {run_dir}"
            f"{f' --nproc {nproc}' if nproc > 1 else ''}`")


def without_nproc(argv: list[str]) -> list[str]:
    """The command line less its --nproc option (torchrun's own parser would take `--nproc`
    for an abbreviation of its --nproc-per-node, even after the module name)."""
    out, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == "--nproc":
            skip = True
        elif not word.startswith("--nproc="):
            out.append(word)
    return out


def launch_distributed(args: argparse.Namespace, run_dir: str) -> int:
    """`digitrec train --nproc N`: the same command in N processes under torchrun (one node);
    each process sees torchrun's WORLD_SIZE and trains its share."""
    argv = without_nproc(args.argv)
    if not (args.resume or args.out):  # every process must write to the same place
        argv = [*argv, "--out", run_dir]
    status = subprocess.call([sys.executable, "-m", "torch.distributed.run", "--standalone",
                              f"--nproc-per-node={args.nproc}", "-m", "digitrec", *argv])
    if status != 0:
        hint = resume_hint(run_dir, args.nproc)
        raise DigitrecError(f"a training process failed (torchrun exit status {status}; its "
                            f"messages are above){f': {hint}' if hint else ''}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a run (or an ensemble of runs) on the test set; print a table or JSON. With
    --report, write the HTML/JSON report instead (several runs: compared side by side)."""
    require_torch("matplotlib")
    if args.report:
        return write_report(args)
    if args.robustness_images is not None:
        raise DigitrecError("--robustness-images needs --report")
    if args.verifier:
        raise DigitrecError("--verifier needs --report")
    if args.data:
        return evaluate_folders(args)
    from .evaluate import evaluate_runs

    report = evaluate_runs(args.run_dirs, data_dir=args.data_dir, plots_dir=args.plots_dir,
                           tta=args.tta, dataset=args.dataset)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{evaluated(report)} on {report['dataset']} test set ({report['test_images']} images)")
    low, high = report["accuracy_ci95"]
    print(f"accuracy {report['accuracy']:.2%} (95% CI {low:.2%}-{high:.2%})"
          f"{' (test-time augmentation)' if args.tta else ''}\n")
    print(f"{'class':<12} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}")
    for row in report["per_class"]:
        print(f"{row['class']:<12} {row['precision']:>9.4f} {row['recall']:>7.4f} "
              f"{row['f1']:>7.4f} {row['support']:>8}")
    print_confusion("\nconfusion matrix", report["confusion_matrix"])
    if "plots" in report:
        print(f"\nplots: {report['plots']['confusion_matrix']}, {report['plots']['misclassified']}")
    return 0


def evaluate_folders(args: argparse.Namespace) -> int:
    """`digitrec evaluate RUN... --data DIR...`: accuracy per image folder."""
    from .evaluate import evaluate_folders

    if args.plots_dir or args.dataset:
        raise DigitrecError("--data cannot be combined with --plots-dir or --dataset")
    report = evaluate_folders(args.run_dirs, args.data, tta=args.tta, warn=warn)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{evaluated(report)} on {len(report['sources'])} image folder(s)"
          f"{' (test-time augmentation)' if args.tta else ''}")
    print_sources(report["sources"])
    for source in report["sources"]:
        print_confusion(f"\n{source['name']}: confusion matrix", source["confusion_matrix"])
    return 0


def evaluated(report: dict) -> str:
    """What an evaluation report is about: the run (or ensemble) and its model names."""
    runs = report["runs"]
    what = runs[0] if len(runs) == 1 else f"ensemble of {len(runs)}"
    return f"{what}: {', '.join(sorted(set(report['models'])))}"


def warn(text: str) -> None:
    """A warning that does not stop the command (e.g. files of a folder left out)."""
    print(f"warning: {text}", file=sys.stderr)


def print_confusion(title: str, matrix: list[list[int]]) -> None:
    print(f"{title} (rows: true, columns: predicted)")
    for row in matrix:
        print(" ".join(f"{n:>5}" for n in row))


def print_sources(sources: list[dict]) -> None:
    """One line per image folder: images, accuracy with its 95% interval."""
    print(f"{'source':<24} {'images':>7}  {'accuracy (95% CI)':<26}")
    for source in sources:
        low, high = source["accuracy_ci95"]
        note = ("  (trained on: not held out)" if "trained_on" in source else "")
        print(f"{source['name'][:24]:<24} {source['images']:>7}  "
              f"{source['accuracy']:.2%} ({low:.2%}-{high:.2%}){note}")


def write_report(args: argparse.Namespace) -> int:
    """`digitrec evaluate RUN... --report DIR`: write report.html and report.json, print a
    summary line per run."""
    from .report import build_report

    if args.tta or args.plots_dir:
        raise DigitrecError("--report cannot be combined with --tta or --plots-dir")
    report = build_report(args.run_dirs, args.report, data_dir=args.data_dir,
                          dataset=args.dataset, robustness_images=args.robustness_images,
                          folders=args.data, warn=warn, verifier=args.verifier)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{'run':<24} {'accuracy (95% CI)':<26} {'ECE':>6} {'calibrated':>10} "
          f"{'robustness':>10}")
    for run in report["runs"]:
        low, high = run["accuracy_ci95"]
        accuracy = f"{run['accuracy']:.2%} ({low:.2%}-{high:.2%})"
        after = run["calibration"]["after"]
        calibrated = f"{after['ece']:.2%}" if after else "-"
        robust = sum(run["robustness_summary"].values()) / len(run["robustness_summary"])
        print(f"{run['name'][:24]:<24} {accuracy:<26} {run['calibration']['before']['ece']:>6.2%} "
              f"{calibrated:>10} {robust:>10.1%}")
    if "ensemble" in report:
        print(f"{'ensemble':<24} {report['ensemble']['accuracy']:.2%}")
    if "rejection" in report:
        refused = report["rejection"]
        print(f"\nrefusing non-digits at threshold {refused['threshold']:.3f}: "
              f"{refused['digits_refused']:.2%} of test digits, {refused['others_refused']:.2%} "
              f"of {refused['others']} non-digits")
    for run in report["runs"]:
        if run["sources"]:
            print(f"\n{run['name']}:")
            print_sources(run["sources"])
    print(f"\nreport: {Path(args.report) / 'report.html'} (numbers: report.json)")
    return 0


def cmd_train_verifier(args: argparse.Namespace) -> int:
    """Train the verifier that refuses non-digits and judges where numbers are cut."""
    require_torch("onnx", "onnxscript")
    from .rejection import VerifierConfig
    from .verifier import train_verifier

    config = VerifierConfig(**from_flags(args, VerifierConfig))
    check_onnx_out(args.out)
    report = train_verifier(config, args.out, data_dir=args.data_dir, log=progress_log(args))
    if args.json:
        print(json.dumps(report))
    return 0


def check_onnx_out(out: str) -> None:
    """Refuse an --out that is a directory before any training starts."""
    if Path(out).is_dir():
        raise ConfigError(f"--out {out} is a directory: give the .onnx file to write")


def progress_log(args: argparse.Namespace) -> Callable[[str], None]:
    """Where a command's progress goes: stderr when stdout carries --json, else stdout."""
    return (lambda text: print(text, file=sys.stderr)) if args.json else print


def cmd_train_reader(args: argparse.Namespace) -> int:
    """Train the number reader on synthetic lines and real number folders."""
    require_torch("onnx", "onnxscript")
    from .reader_model import ReaderConfig, train_reader

    config = ReaderConfig(**from_flags(args, ReaderConfig))
    check_onnx_out(args.out)
    card = train_reader(config, args.out, data_dir=args.data_dir, log=progress_log(args))
    if args.json:
        print(json.dumps(card))
    else:
        for name, result in card["metrics"].items():
            print(f"{name}: {result['exact']:.2%} of {result['lines']} held-out lines read exactly")
        print(f"wrote {args.out} ({card['train_seconds']} s)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a run to ONNX (checked against PyTorch), optionally with an int8 copy."""
    require_torch("onnx", "onnxscript")
    from .export import export_run

    report = export_run(args.run_dir, args.out, int8=args.int8, data_dir=args.data_dir,
                        log=(lambda text: print(text, file=sys.stderr)) if args.json else print)
    if args.json:
        print(json.dumps(report))
    return 0


def expand_inputs(paths: list[str]) -> list[str]:
    """Files as given, directories as their image files (recursively, sorted), `-` for stdin."""
    from .folders import IMAGE_SUFFIXES

    inputs = []
    for path in paths:
        if path != "-" and Path(path).is_dir():
            inputs.extend(str(p) for p in sorted(Path(path).rglob("*"))
                          if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            inputs.append(path)
    return inputs


def save_preprocessed(directory: str, index: int, path: str, digits: list) -> None:
    """Write the 28x28 images the model saw, as PNG, for debugging."""
    from PIL import Image

    from .files import atomic_write

    stem = "stdin" if path == "-" else Path(path).stem
    for k, digit in enumerate(digits):
        suffix = f"-{k}" if len(digits) > 1 else ""
        with atomic_write(Path(directory) / f"{index:04d}-{stem}{suffix}.png") as f:
            Image.fromarray((digit * 255).round().astype(np.uint8)).save(f, format="PNG")


def describe(result: dict) -> str:
    """One human-readable line for a prediction result."""
    if "error" in result:
        return f"{result['path']}: error: {result['error']}"
    if "number" in result:
        digits = ", ".join(f"{d['digit'] if d['digit'] is not None else '?'} "
                           f"{d['confidence']:.0%}" for d in result["digits"])
        return f"{result['path']}: {result['number'] or '(no digits)'}  [{digits}]"
    if result["status"] == "blank":
        return f"{result['path']}: blank (no ink found)"
    top = ", ".join(f"{t['digit']} {t['probability']:.1%}" for t in result["top_k"])
    if result["status"] == "not_digit":
        return f"{result['path']}: not a digit  best guess: {top}"
    answer = result["digit"] if result["status"] == "ok" else "unknown"
    return f"{result['path']}: {answer} ({result['confidence']:.1%})  top: {top}"


def cmd_predict(args: argparse.Namespace) -> int:
    """Recognise the digit (or, with --multi, the number) in each image."""
    from .errors import ImageDecodeError
    from .predict import Predictor

    if args.top_k < 1 or not 0 <= args.min_confidence <= 1:
        raise DigitrecError("--top-k must be at least 1 and --min-confidence in [0, 1]")
    predictor = Predictor(args.model, top_k=args.top_k, min_confidence=args.min_confidence,
                          verifier=args.verifier, reader=args.reader,
                          force_digit=args.force_digit)
    failed = False
    for index, path in enumerate(expand_inputs(args.paths)):
        try:
            source = sys.stdin.buffer.read() if path == "-" else path
            if args.multi:
                number = predictor.predict_number(source)
                result = number.to_dict()
                seen = [number.image] if number.image is not None else [
                    d.image for d in number.digits]
            else:
                answer = predictor.predict([source])[0]
                result, seen = answer.to_dict(), [answer.image] if answer.image is not None else []
        except ImageDecodeError as e:
            failed = True
            result, seen = {"error": str(e)}, []
        if args.save_preprocessed and seen:
            save_preprocessed(args.save_preprocessed, index, path, seen)
        result = {"path": path, **result}
        text_error = "error" in result and not args.json
        print(json.dumps(result) if args.json else describe(result), flush=True,
              file=sys.stderr if text_error else sys.stdout)
    return 1 if failed else 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the drawing page and the HTTP API."""
    from .predict import Predictor

    try:
        from .serve import run
    except ImportError:
        raise DigitrecError("this command needs the serve extra: pip install 'digitrec[serve]'") from None
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    config = serve_config(args)
    # a bad model is one clear error here, not one per worker
    Predictor(config.model, verifier=config.verifier, reader=config.reader)
    return run(config, host=args.host, port=args.port, workers=args.workers,
               log_level=args.log_level, access_log=args.access_log)


def serve_config(args: argparse.Namespace):
    """The ServeConfig the `digitrec serve` flags give (validated by ServeConfig itself)."""
    from .serve.config import ServeConfig

    return ServeConfig(**from_flags(args, ServeConfig))


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; unset flags keep the model's recipe value."""
    from .config import TrainConfig
    from .models import list_models

    actions = add_flags(parser, TrainConfig, unset="default: the model's recipe")
    list_names(actions["model"], list_models)
    list_names(actions["dataset"], dataset_names)


def dataset_names() -> list[str]:
    """The registered datasets' names (the data module is imported only when they are asked for)."""
    from .data import list_datasets

    return list_datasets()


def list_names(action: argparse.Action, names: Callable[[], list[str]]) -> argparse.Action:
    """Have the help of `action` end with the registered names (built-ins and plug-ins) that
    `names()` returns when the help is printed."""
    action.registered = (action.help, names)
    return action


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help can list registered names: they are looked up only when
    help is printed, since looking for plug-ins takes time that other commands need not spend."""

    def format_help(self) -> str:
        try:
            for action in self._actions:
                if hasattr(action, "registered"):
                    text, names = action.registered
                    action.help = f"{text}; one of: {', '.join(names()).replace('%', '%%')}"
        except DigitrecError as e:  # a plug-in that clashes with another name
            self.exit(1, f"{self.prog}: error: {e}\n")
        return super().format_help()


def build_parser(train_flags: bool = True) -> argparse.ArgumentParser:
    """The argument parser for all subcommands; `train_flags=False` leaves out the training
    options, whose definitions import torch, for commands that do not train."""
    from .reader import ReaderConfig
    from .rejection import VerifierConfig
    from .serve.config import ServeConfig, default_workers

    parser = Parser(
        prog="digitrec", description="Handwritten digit recognition with convolutional networks.")
    parser.add_argument("--version", action="version", version=f"digitrec {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="download/verify a dataset and summarise it")
    list_names(data.add_argument("--dataset", default="mnist", help="dataset (default mnist)"),
               dataset_names)
    data.add_argument("--data-dir", help=DATA_DIR_HELP)
    data.set_defaults(run=cmd_data)

    train = commands.add_parser("train", help="train a model into a run directory")
    train.add_argument("--out", help="run directory to create (default: runs/MODEL-TIMESTAMP)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    train.add_argument("--data-dir", help=DATA_DIR_HELP)
    train.add_argument("--nproc", type=int, default=1, metavar="N",
                       help="train with N processes on this machine (runs torchrun; "
                            "DistributedDataParallel: gloo on CPU, nccl on CUDA)")
    if train_flags and torch_installed():  # light install: `digitrec train` says what to add
        add_config_flags(train)
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser("evaluate", help="evaluate a trained run on the test set")
    evaluate.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                          help="run directory written by `digitrec train`; several make an "
                               "ensemble (probabilities averaged)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--tta", action="store_true",
                          help="test-time augmentation: average over the image and its "
                               "one-pixel shifts")
    evaluate.add_argument("--data-dir", help=DATA_DIR_HELP)
    evaluate.add_argument("--plots-dir",
                          help="where to write PNG plots (default: the run dir; none for ensembles)")
    evaluate.add_argument("--report", metavar="DIR",
                          help="write report.html (self-contained) and report.json to DIR: "
                               "accuracy with 95%% CI, per-class metrics, training curves, "
                               "mistakes, calibration, robustness; several runs are compared "
                               "side by side")
    evaluate.add_argument("--robustness-images", type=int, metavar="N",
                          help="with --report: run the robustness sweep on the first N test "
                               "images (default: all)")
    evaluate.add_argument("--data", action="append", metavar="DIR",
                          help="evaluate on this image folder (DIR/<digit>/*.png, read as "
                               "`predict` reads images) instead of the test set; repeat for "
                               "several, each reported on its own (with --report: added to it)")
    list_names(evaluate.add_argument("--dataset",
                                     help="test on this dataset instead of the one the runs "
                                          "were trained on (same classes)"), dataset_names)
    evaluate.add_argument("--verifier", help="with --report: the verifier whose refusal of "
                                             "non-digits is reported (default: the shipped one)")
    evaluate.set_defaults(run=cmd_evaluate)

    export = commands.add_parser("export", help="export a run to ONNX, checked against PyTorch")
    export.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `digitrec train`")
    export.add_argument("--out", help="ONNX file to write (default: RUN_DIR/model.onnx)")
    export.add_argument("--int8", action="store_true",
                        help="also write an int8-quantized copy (OUT with .int8.onnx), kept only "
                             "if it loses at most 0.1 point of test accuracy")
    export.add_argument("--json", action="store_true", help="print the report as one JSON object")
    export.add_argument("--data-dir", help=DATA_DIR_HELP)
    export.set_defaults(run=cmd_export)

    verifier = commands.add_parser("train-verifier",
                                   help="train the verifier that refuses non-digits and judges "
                                        "where numbers are cut")
    verifier.add_argument("--out", default="digit-verifier.onnx",
                          help="ONNX file to write (default: digit-verifier.onnx)")
    add_flags(verifier, VerifierConfig)
    verifier.add_argument("--json", action="store_true", help="print the report as one JSON object")
    verifier.add_argument("--data-dir", help=DATA_DIR_HELP)
    verifier.set_defaults(run=cmd_train_verifier)

    reader = commands.add_parser("train-reader",
                                 help="train the number reader on synthetic and real lines")
    reader.add_argument("--out", default="number-reader.onnx",
                        help="ONNX file to write (default: number-reader.onnx)")
    add_flags(reader, ReaderConfig)
    reader.add_argument("--json", action="store_true", help="print the card as one JSON object")
    reader.add_argument("--data-dir", help=DATA_DIR_HELP)
    reader.set_defaults(run=cmd_train_reader)

    from .predict import DEFAULT_TOP_K, READER_HELP, VERIFIER_HELP

    predict = commands.add_parser("predict", help="recognise digits in image files")
    predict.add_argument("paths", nargs="+", metavar="PATH",
                         help="image file, directory (searched recursively) or - for stdin")
    predict.add_argument("--model", help="an .onnx file from `digitrec export` or a run directory "
                                         "from `digitrec train` (default: the shipped MNIST model)")
    predict.add_argument("--top-k", type=int, default=DEFAULT_TOP_K,
                         help=f"how many ranked answers to show (default {DEFAULT_TOP_K})")
    predict.add_argument("--multi", action="store_true",
                         help="read a written number (one line of digits) instead of one digit")
    predict.add_argument("--min-confidence", type=float, default=0.0, metavar="P",
                         help="below this probability the answer is 'unknown' (default 0)")
    predict.add_argument("--force-digit", action="store_true", help=FORCE_HELP)
    predict.add_argument("--reader", help=READER_HELP)
    predict.add_argument("--verifier", help=VERIFIER_HELP)
    predict.add_argument("--json", action="store_true", help="one JSON object per input line")
    predict.add_argument("--save-preprocessed", metavar="DIR",
                         help="write the images the models saw, as PNG (28x28 digits; with "
                              "--multi the line the reader saw)")
    predict.set_defaults(run=cmd_predict)

    serve = commands.add_parser("serve", help="serve the drawing page and the HTTP API")
    add_flags(serve, ServeConfig)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=default_workers(),
                       help="worker processes sharing the port (default: one per available "
                            "core on Linux, %(default)s here; 1 elsewhere)")
    serve.add_argument("--log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug"],
                       help="info (default) logs starting, stopping and problems; warning only "
                            "problems")
    serve.add_argument("--access-log", action="store_true",
                       help="also log a line per request (costs answer time under load; "
                            "/metrics counts requests and their latencies either way)")
    serve.set_defaults(run=cmd_serve)
    return parser


def command_of(argv: list[str]) -> str | None:
    """The subcommand a command line names (the first word that is not an option)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `digitrec` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(train_flags=command_of(argv) == "train")
    args, unknown = parser.parse_known_args(argv)
    args.argv = argv
    try:
        if unknown:
            if args.command == "train":
                require_torch()  # without torch the training flags are unknown: say why
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        return args.run(args)
    except DigitrecError as e:
        print(f"digitrec {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a command that stopped reading (e.g. head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:  # unwritable output directory, full disk, ...
        print(f"digitrec {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
