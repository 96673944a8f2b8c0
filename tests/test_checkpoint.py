"""Run-directory I/O: atomic writes, weights + card round trip, resumable state."""

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from digitrec.checkpoint import ctrl_c_deferred, load_model, load_state, save_run, save_state
from digitrec.errors import RunDirError
from digitrec.files import atomic_write, write_json
from digitrec.models import create_model


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path):
    path = tmp_path / "card.json"
    write_json(path, {"version": 1})
    with pytest.raises(RuntimeError), atomic_write(path, "w") as f:
        f.write('{"version": 2, "half')
        raise RuntimeError("killed mid-write")
    assert path.read_text() == '{\n  "version": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]  # temp file removed


CARD = {"model": "baseline", "data": {"dataset": "mnist"}, "metrics": {"test_accuracy": 0.99}}


def test_run_round_trip_rebuilds_the_model_from_the_directory_alone(tmp_path: Path):
    torch.manual_seed(0)
    model = create_model("baseline").eval()
    save_run(tmp_path, model, {**CARD, "model_kwargs": {}})
    loaded, card = load_model(tmp_path)
    x = torch.rand(4, 1, 28, 28)
    assert card["model"] == "baseline"
    assert torch.equal(loaded(x), model(x))
    assert not loaded.training


def test_load_model_errors_are_clear(tmp_path: Path):
    with pytest.raises(RunDirError, match=r"card\.json is missing"):
        load_model(tmp_path)
    write_json(tmp_path / "card.json", {"model": "baseline"})
    with pytest.raises(RunDirError, match=r"lacks its model, data\.dataset"):
        load_model(tmp_path)
    write_json(tmp_path / "card.json", CARD)
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(RunDirError, match="cannot read weights"):
        load_model(tmp_path)


def test_state_round_trip_uses_safe_loading(tmp_path: Path):
    model = create_model("baseline")
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(2, 1, 28, 28)).sum().backward()
    optimizer.step()
    save_state(tmp_path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "config": {"lr": 0.001}, "epoch": 2, "command": "digitrec train"})
    state = load_state(tmp_path)
    assert state["epoch"] == 2 and state["config"] == {"lr": 0.001}
    for key, value in model.state_dict().items():
        assert torch.equal(state["model"][key], value)


class Payload:
    """An arbitrary object: unpickling it would run code of the file's choosing."""


def test_state_that_is_not_plain_data_is_refused(tmp_path: Path):
    torch.save({"payload": Payload()}, tmp_path / "state.pt")
    with pytest.raises(RunDirError, match="cannot read"):
        load_state(tmp_path)


def test_ctrl_c_during_a_save_lets_the_save_finish_first():
    # Python's own Ctrl-C handler, whatever this process inherited (a shell's background job
    # starts with SIGINT ignored)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    finished = []
    try:
        with pytest.raises(KeyboardInterrupt), ctrl_c_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the signal arrives here, in the middle of the block
            finished.append(True)
        assert finished == [True]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_an_ignored_ctrl_c_stays_ignored_after_a_save():
    inherited = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with ctrl_c_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, inherited)
