"""Training runs on a small subset of real MNIST: determinism, resume, interruption, errors."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from digitrec.checkpoint import load_model, load_state
from digitrec.cli import build_parser, main, train_config
from digitrec.config import TrainConfig, recipe, train_command
from digitrec.errors import ConfigError, RunDirError
from digitrec.files import read_jsonl
from digitrec.models import create_model
from digitrec.train import freeze_norm_statistics, train

TINY = TrainConfig(epochs=2, batch_size=100, train_size=2000, val_size=500)
TIMING_KEYS = {"seconds", "images_per_s"}


def weights(run_dir: Path) -> dict:
    return load_file(run_dir / "model.safetensors")


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def quiet(*_args) -> None:
    pass


def test_run_directory_contents(data_root: Path, tmp_path: Path):
    card = train(TINY, tmp_path / "run", data_root, log=quiet)
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert files == {"model.safetensors", "card.json", "metrics.jsonl", "state.pt"}
    assert json.loads((tmp_path / "run" / "card.json").read_text()) == card
    assert card["model"] == "baseline" and card["config"]["epochs"] == 2
    assert card["data"]["dataset"] == "mnist" and len(card["data"]["sha256"]) == 4
    assert 0.8 < card["metrics"]["test_accuracy"] <= 1.0
    assert {"torch", "digitrec", "python"} <= set(card["versions"])
    assert card["command"] == train_command(TINY)
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2] and all("val_accuracy" in r for r in rows)


def test_same_seed_same_result_other_seed_other_result(data_root: Path, tmp_path: Path):
    first = train(TINY, tmp_path / "a", data_root, log=quiet)
    second = train(TINY, tmp_path / "b", data_root, log=quiet)
    third = train(replace(TINY, seed=1), tmp_path / "c", data_root, log=quiet)
    assert same_weights(tmp_path / "a", tmp_path / "b")
    assert first["metrics"] == second["metrics"]
    assert not same_weights(tmp_path / "a", tmp_path / "c")
    assert third["metrics"]["test_loss"] != first["metrics"]["test_loss"]


def test_recipes_are_the_defaults_and_flags_override_them():
    assert recipe("fast").model == "fast" and recipe("fast").epochs == 1
    assert recipe("accurate").ema > 0 and recipe("accurate").augmentation.warps
    assert recipe("baseline").precision == "fp32" and recipe("baseline").optimizer == "adam"
    with pytest.raises(ValueError, match="unknown optimizer"):
        replace(recipe("fast"), optimizer="lbfgs")


def test_weight_average_is_what_gets_saved(data_root: Path, tmp_path: Path):
    config = replace(EVERYTHING_ON, epochs=2, train_size=4000, batch_size=50, precision="fp32")
    card = train(config, tmp_path / "ema", data_root, log=quiet)
    plain = train(replace(config, ema=0.0), tmp_path / "plain", data_root, log=quiet)
    assert not same_weights(tmp_path / "ema", tmp_path / "plain")
    assert card["metrics"]["test_accuracy"] > 0.9 and plain["metrics"]["test_accuracy"] > 0.9


def test_val_size_zero_trains_on_everything_it_is_given(data_root: Path, tmp_path: Path):
    card = train(replace(TINY, val_size=0, epochs=1), tmp_path / "run", data_root, log=quiet)
    assert card["data"]["val_images"] == 0 and "val_accuracy" not in card["metrics"]


EVERYTHING_ON = replace(TINY, model="fast", epochs=3, optimizer="sgd", lr=0.05,
                        schedule="onecycle", label_smoothing=0.1, ema=0.99, rotate=10,
                        scale=0.1, shear=5, translate=2, elastic_alpha=1.5, precision="bf16")


@pytest.mark.parametrize("config", [replace(TINY, epochs=3), EVERYTHING_ON],
                         ids=["baseline", "sgd-onecycle-ema-augment-bf16"])
def test_interrupted_run_resumes_to_the_uninterrupted_result(data_root: Path, tmp_path: Path,
                                                             config: TrainConfig):
    train(config, tmp_path / "whole", data_root, log=quiet)

    def interrupt_after_first_epoch(line: str) -> None:
        if line.startswith("epoch 1/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", data_root, log=interrupt_after_first_epoch)
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    train(None, tmp_path / "cut", data_root, resume=True, log=quiet)
    assert same_weights(tmp_path / "whole", tmp_path / "cut")
    assert (without_timing(read_jsonl(tmp_path / "whole" / "metrics.jsonl"))
            == without_timing(read_jsonl(tmp_path / "cut" / "metrics.jsonl")))


def test_existing_run_is_never_overwritten(data_root: Path, tmp_path: Path):
    train(replace(TINY, epochs=1), tmp_path / "run", data_root, log=quiet)
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    with pytest.raises(RunDirError, match="--resume"):
        train(TINY, tmp_path / "run", data_root, log=quiet)
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "digitrec", *args]


def saved_epoch(run: Path) -> int:
    """The last finished epoch in a run's resumable state (0 before there is one)."""
    return load_state(run)["epoch"] if (run / "state.pt").exists() else 0


def test_sigkill_mid_epoch_then_resume_finishes(data_root: Path, tmp_path: Path):
    run = tmp_path / "run"
    args = ["train", "--epochs", "4", "--train-size", "6000", "--val-size", "500",
            "--data-dir", str(data_root), "--out", str(run)]
    process = subprocess.Popen(cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while saved_epoch(run) < 1 and time.monotonic() < deadline:  # epoch 2 has begun
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not (run / "card.json").exists()
    done = saved_epoch(run)
    assert 1 <= done < 4
    assert len(read_jsonl(run / "metrics.jsonl")) >= done
    (run / ".state.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")  # a kill inside a write
    result = subprocess.run(cli("train", "--resume", str(run), "--data-dir", str(data_root)),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"resuming {run} after epoch {done}/4" in result.stdout + result.stderr
    assert "removed 1 unfinished file(s)" in result.stdout + result.stderr
    assert not list(run.glob(".*.tmp"))
    assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3, 4]
    assert json.loads((run / "card.json").read_text())["metrics"]["test_accuracy"] > 0.9


def test_ctrl_c_saves_finished_epochs_and_says_how_to_resume(data_root: Path, tmp_path: Path):
    run = tmp_path / "run"
    args = ["train", "--epochs", "3", "--train-size", "6000", "--val-size", "500",
            "--data-dir", str(data_root), "--out", str(run)]
    process = subprocess.Popen(cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 120
    while not read_jsonl(run / "metrics.jsonl") and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert f"digitrec train --resume {run}" in stderr and "Traceback" not in stderr
    assert len(read_jsonl(run / "metrics.jsonl")) >= 1 and (run / "state.pt").exists()


def test_compiled_training_saves_a_plain_model(data_root: Path, tmp_path: Path):
    config = replace(EVERYTHING_ON, epochs=1, train_size=1000, compile=True)
    card = train(config, tmp_path / "run", data_root, log=quiet)
    model, _ = load_model(tmp_path / "run")  # keys carry no torch.compile wrapper prefix
    assert card["config"]["compile"] and model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_validation_split_larger_than_the_data_is_a_clear_error(data_root: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="leaves no training images"):
        train(replace(TINY, val_size=60000), tmp_path / "run", data_root, log=quiet)


def exit_code(argv: list[str]) -> int:
    """What `digitrec ARGV` exits with, run in this process (argparse's errors exit)."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


def test_cli_rejects_bad_options_without_traceback(tmp_path: Path, capsys,
                                                   monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DIGITREC_DATA", str(tmp_path))
    for args in (["--schedule", "sideways"], ["--model", "nope"], ["--epochs", "0"],
                 ["--optimizer", "sgd", "--momentum", "0"], ["--label-smoothing", "1.5"],
                 ["--elastic-sigma", "0"], ["--thickness", "2"], ["--device", "gpu"],
                 ["--device", "cuda:7"]):
        assert exit_code(["train", "--out", str(tmp_path / "r"), *args]) != 0, args
        assert "error" in capsys.readouterr().err
    # the console script says the same, with no traceback
    result = subprocess.run(cli("train", "--resume", str(tmp_path / "missing")),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "cannot resume" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("config", [TINY, recipe("accurate"), replace(recipe("fast"), compile=True, seed=7),
                                    replace(recipe("baseline"), lr=0.0025, rotate=7.5)])
def test_card_command_reproduces_the_configuration(config: TrainConfig):
    words = shlex.split(train_command(config))
    assert words[:2] == ["digitrec", "train"]
    assert train_config(build_parser().parse_args(words[1:])) == config


def test_frozen_norm_layers_keep_their_statistics_while_the_rest_trains():
    model = create_model("accurate").train()
    freeze_norm_statistics(model)
    norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    mean, var = norm.running_mean.clone(), norm.running_var.clone()
    model(torch.rand(8, 1, 28, 28)).sum().backward()
    assert torch.equal(norm.running_mean, mean) and torch.equal(norm.running_var, var)
    assert norm.weight.grad is not None  # its scale still learns
    assert all(m.training for m in model.modules() if isinstance(m, torch.nn.Dropout))
