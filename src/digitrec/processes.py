"""Work that is pure Python and numpy per item (preprocessing a folder of images, rendering
synthetic lines) spread over the machine's cores in forked worker processes. The results are
those of a plain loop, in the same order, however many workers there are."""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

_WORK: Callable | None = None  # what a forked worker calls: inherited from the parent


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _call(item):
    return _WORK(item)


def forked_map(work: Callable[[Item], Result], items: Sequence[Item], workers: int = 0,
               chunksize: int = 1) -> Iterator[Result]:
    """`work(item)` for each item, in order: in `workers` forked processes (0: one per
    available core), `chunksize` items per task; here where there is one worker, at most one
    task's items, or no `fork` (Windows). `work` need not be picklable (the workers inherit
    it); items and results are pickled. `work` must not use PyTorch, whose threads a forked
    child does not inherit."""
    workers = min(workers or available_cores(), math.ceil(len(items) / chunksize))
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield from map(work, items)
        return
    global _WORK
    _WORK = work
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            yield from pool.map(_call, items, chunksize=chunksize)
    finally:
        _WORK = None
