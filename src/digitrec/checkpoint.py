"""Run directory I/O: safetensors weights, the JSON model card, resumable state.

A run directory holds `model.safetensors` (final weights), `card.json` (architecture, config,
data checksums, metrics, versions, command line), `metrics.jsonl` (one line per epoch) and
`state.pt` (weights + optimizer, for `--resume`), each written atomically (`files`). torch is
imported only where it is needed.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .card import ModelCard, parse_card
from .errors import RunDirError
from .files import atomic_write, write_bytes, write_json

if TYPE_CHECKING:
    import torch

WEIGHTS = "model.safetensors"
CARD = "card.json"
METRICS = "metrics.jsonl"
STATE = "state.pt"


def read_card(run_dir: str | os.PathLike) -> ModelCard:
    """The model card of a finished run (checked, and brought to the current version)."""
    path = Path(run_dir) / CARD
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a finished digitrec run: {CARD} is missing")
    try:
        return parse_card(json.loads(path.read_text()), str(path), RunDirError)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirError(f"{path} is not valid JSON ({e})") from None


def save_run(run_dir: str | os.PathLike, model: torch.nn.Module, card: ModelCard) -> None:
    """Write final weights and the card (card last: its presence marks a finished run)."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_bytes(Path(run_dir) / WEIGHTS, save(state, metadata={"model": card["model"]}))
    write_json(Path(run_dir) / CARD, card)


def load_model(run_dir: str | os.PathLike) -> tuple[torch.nn.Module, ModelCard]:
    """Rebuild a trained model from its run directory alone; returns (model in eval mode, card)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .models import create_model

    card = read_card(run_dir)
    try:
        model = create_model(card["model"], **card["model_kwargs"])
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


MOVED_TO_FILES = ("read_jsonl", "remove_stale_temporaries", "write_jsonl")


def __getattr__(name: str):
    """The atomic-write helpers also import from here, as deprecated aliases of `files`."""
    if name in MOVED_TO_FILES:
        import warnings

        from . import files

        warnings.warn(f"digitrec.checkpoint.{name} moved to digitrec.files.{name}",
                      DeprecationWarning, stacklevel=2)
        return getattr(files, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
