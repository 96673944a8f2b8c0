"""ServeConfig: what `digitrec serve` can set, each field with the flag that sets it.

Kept apart from the app so that the command line can build its flags without FastAPI.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from ..errors import ConfigError
from ..options import option
from ..predict import DEFAULT_TOP_K, READER_HELP, VERIFIER_HELP

MB = 2**20


def available_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def default_workers() -> int:
    """Worker processes when none are asked for: one per available core on Linux (where the
    workers share one port), one elsewhere."""
    return available_cores() if sys.platform.startswith("linux") else 1


@dataclass(frozen=True)
class ServeConfig:
    """Everything `digitrec serve` can set; fields with help text are its flags."""

    model: str | None = option(None, "an .onnx file or a run directory (default: the shipped model)")
    reader: str | None = option(None, READER_HELP)
    verifier: str | None = option(None, VERIFIER_HELP)
    max_batch: int = option(64, "most digits per model call; 1 turns micro-batching off")
    max_wait_ms: float = option(2.0, "how long a batch waits to fill up", unit="ms")
    max_body_bytes: int = option(10 * MB, "largest request body accepted", flag="max-body-mb",
                               unit="MB", scale=MB)
    timeout_s: float = option(10.0, "seconds before a request is answered 503", flag="timeout")
    max_batch_images: int = 256  # images per /v1/predict/batch request
    top_k: int = DEFAULT_TOP_K  # ranked answers in each prediction

    def __post_init__(self) -> None:
        if min(self.max_batch, self.max_batch_images, self.top_k) < 1 or self.max_wait_ms < 0 \
                or self.max_body_bytes <= 0 or self.timeout_s <= 0:
            raise ConfigError("max_batch (--max-batch), max_batch_images and top_k must be at "
                              "least 1, max_wait_ms (--max-wait-ms) at least 0, max_body_bytes "
                              "(--max-body-mb) and timeout_s (--timeout) above 0")
