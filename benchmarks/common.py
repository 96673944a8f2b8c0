"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from digitrec.errors import DigitrecError


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    import torch  # here, so the benchmarks that run on ONNX Runtime alone need no torch

    return {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d")}


def run_benchmark(main: Callable[[], int | None]) -> NoReturn:
    """Exit with a benchmark's `main`: digitrec's own errors (no MNIST files, an unusable run
    directory or model) end it with their one-line message and status 1, as the CLI does."""
    try:
        status = main()
    except DigitrecError as e:
        sys.exit(f"{Path(sys.argv[0]).name}: error: {e}")
    sys.exit(status)
