"""Distributed training under torchrun: two CPU processes (gloo) on a subset of MNIST."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from digitrec.checkpoint import read_card
from digitrec.config import recipe, train_command
from digitrec.distributed import Cluster, rank_slice
from digitrec.errors import ConfigError
from digitrec.evaluate import evaluate_runs
from digitrec.train import start_session, train

CONFIG = replace(recipe("fast"), epochs=2, train_size=20000)


def digitrec_train(*args: str, data_root: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "digitrec", "train", *args, "--data-dir",
                             str(data_root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_two_processes_learn_as_well_as_one(data_root: Path, tmp_path: Path):
    single = train(CONFIG, tmp_path / "one", data_root, log=lambda *_: None)
    flags = train_command(CONFIG).split()[2:]
    job = digitrec_train(*flags, "--nproc", "2", "--out", str(tmp_path / "two"), data_root=data_root)
    out, err = job.communicate(timeout=600)
    assert job.returncode == 0, err
    assert out.count("test accuracy") == 1  # rank 0 alone reports
    card = read_card(tmp_path / "two")
    assert card["distributed"] == {"processes": 2, "backend": "gloo", "global_batch": 128,
                                   "lr": CONFIG.lr}
    accuracy = card["metrics"]["test_accuracy"]
    assert abs(accuracy - single["metrics"]["test_accuracy"]) <= 0.005  # the same, within noise
    assert evaluate_runs([tmp_path / "two"], data_dir=data_root)["accuracy"] == accuracy
    rows = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2  # one line per epoch, from rank 0


def rank_processes(marker: str) -> dict[int, int]:
    """{rank: pid} of the torchrun workers whose command line contains `marker`."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        ranks = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"RANK=")]
        if marker in command and ranks:
            found[int(ranks[0])] = int(entry.name)
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes in /proc")
def test_a_dead_rank_ends_the_job_and_the_run_resumes(data_root: Path, tmp_path: Path):
    run = tmp_path / "interrupted"
    flags = ["--model", "fast", "--epochs", "6", "--train-size", "10000"]
    job = digitrec_train(*flags, "--nproc", "2", "--out", str(run), data_root=data_root)
    deadline = time.monotonic() + 120
    while not (run / "metrics.jsonl").exists():  # the first epoch is done
        assert time.monotonic() < deadline and job.poll() is None, job.stderr.read()
        time.sleep(0.05)
    os.kill(rank_processes(str(run))[1], signal.SIGKILL)
    killed = time.monotonic()
    _, err = job.communicate(timeout=120)
    assert time.monotonic() - killed < 60  # no hang
    assert job.returncode == 1
    assert "a training process failed" in err and f"--resume {run} --nproc 2" in err

    resumed = digitrec_train("--resume", str(run), "--nproc", "2", data_root=data_root)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"resuming {run} after epoch" in out
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, 7)) and read_card(run)["distributed"]["processes"] == 2


def test_cluster_reads_torchrun_environment(monkeypatch: pytest.MonkeyPatch):
    assert Cluster.from_env() == Cluster(0, 1, 0)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    cluster = Cluster.from_env()
    assert cluster == Cluster(3, 4, 1) and not cluster.leader


def test_ranks_take_disjoint_equal_shares_of_each_permutation():
    order = torch.randperm(103)
    shares = [rank_slice(order, Cluster(rank, 4, rank)) for rank in range(4)]
    assert [len(share) for share in shares] == [25] * 4
    assert len(set(torch.cat(shares).tolist())) == 100  # each image at most once per epoch
    assert rank_slice(order, Cluster()) is order


def test_sync_bn_on_cpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="sync-bn needs CUDA"):
        start_session(replace(recipe("fast"), sync_bn=True), torch.device("cpu"), Cluster(0, 2, 0))


def test_bad_options_fail_before_any_process_starts(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "digitrec", "train", "--resume", str(tmp_path),
                             "--lr", "0.1", "--nproc", "2"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1 and "give no other training options" in result.stderr
    assert "training process failed" not in result.stderr and "Traceback" not in result.stderr
