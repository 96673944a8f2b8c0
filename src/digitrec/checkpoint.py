"""Run directory I/O: atomic writes, safetensors weights, the JSON model card, resumable state.

A run directory holds `model.safetensors` (final weights), `card.json` (architecture, config,
data checksums, metrics, versions, command line), `metrics.jsonl` (one line per epoch) and
`state.pt` (weights + optimizer, for `--resume`). torch is imported only where it is needed, so
the atomic-write helpers serve torch-free modules too.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import RunDirError

if TYPE_CHECKING:
    import torch

WEIGHTS = "model.safetensors"
CARD = "card.json"
METRICS = "metrics.jsonl"
STATE = "state.pt"


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success rename it over `path`, else remove it.

    Readers see either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(directory: str | os.PathLike) -> int:
    """Delete what atomic writes killed mid-way left in `directory` (`.NAME.XXXX.tmp` files);
    how many there were. Only for a directory no one is writing to."""
    stale = list(Path(directory).glob(".*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically write bytes."""
    with atomic_write(path) as f:
        f.write(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write an indented JSON document."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def write_jsonl(path: str | os.PathLike, rows: list[dict]) -> None:
    """Atomically write one JSON object per line."""
    with atomic_write(path, "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON-lines file; a missing file is an empty list."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirError(f"{path} is damaged: {e}") from None


def read_card(run_dir: str | os.PathLike) -> dict:
    """The model card of a finished run."""
    path = Path(run_dir) / CARD
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a finished digitrec run: {CARD} is missing")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirError(f"{path} is not valid JSON ({e})") from None


def save_run(run_dir: str | os.PathLike, model: torch.nn.Module, card: dict) -> None:
    """Write final weights and the card (card last: its presence marks a finished run)."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_bytes(Path(run_dir) / WEIGHTS, save(state, metadata={"model": card["model"]}))
    write_json(Path(run_dir) / CARD, card)


def load_model(run_dir: str | os.PathLike) -> tuple[torch.nn.Module, dict]:
    """Rebuild a trained model from its run directory alone; returns (model in eval mode, card)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .models import create_model

    card = read_card(run_dir)
    try:
        model = create_model(card["model"], **card.get("model_kwargs", {}))
    except (KeyError, TypeError, ValueError) as e:
        raise RunDirError(f"{run_dir}: cannot rebuild the model its card describes ({e})") from None
    path = Path(run_dir) / WEIGHTS
    try:
        weights = load_file(path)
    except (FileNotFoundError, SafetensorError, OSError) as e:
        raise RunDirError(f"cannot read weights {path}: {e}") from None
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise RunDirError(f"{path} does not match architecture {card['model']!r}: {e}") from None
    return model.eval(), card


@contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Let a block finish before a Ctrl-C (SIGINT) that arrives during it takes effect.

    torch.save turns an interrupt in the middle of its zip writer into a RuntimeError; with the
    interrupt deferred, the save completes and KeyboardInterrupt is raised right after it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and callable(previous):
        previous(signal.SIGINT, None)  # Python's default handler raises KeyboardInterrupt


def save_state(run_dir: str | os.PathLike, state: dict) -> None:
    """Atomically write the resumable training state (tensors and plain values only)."""
    import torch

    with ctrl_c_deferred(), atomic_write(Path(run_dir) / STATE) as f:
        torch.save(state, f)


def load_state(run_dir: str | os.PathLike) -> dict:
    """Read the training state written by `save_state`; never unpickles arbitrary objects."""
    import torch

    path = Path(run_dir) / STATE
    if not path.is_file():
        raise RunDirError(f"cannot resume {run_dir}: no {STATE} (not a digitrec run directory?)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for damaged or foreign files
        raise RunDirError(f"cannot read {path}: {e}") from None
