"""Micro-batching: concurrent requests for single digits share one model call.

Each request puts its 28x28 digit on a queue and awaits a future. One worker takes the first
waiting digit, gathers more until `max_batch` digits or `max_wait_ms` have passed, runs the model
once on the stack (in a thread, so the event loop keeps accepting requests) and hands each
caller its own answer. While a batch runs, new requests queue up and form the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

RunBatch = Callable[[np.ndarray], list[Any]]


class MicroBatcher:
    """Groups concurrent `submit` calls into batches for `run_batch` (digits [N, 28, 28] -> N
    answers). With `max_batch=1` there is no queue: each call runs the model on its own."""

    def __init__(self, run_batch: RunBatch, max_batch: int = 64, max_wait_ms: float = 2.0,
                 on_batch: Callable[[int], None] | None = None) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError("max_batch must be at least 1 and max_wait_ms at least 0")
        self.run_batch, self.max_batch, self.max_wait = run_batch, max_batch, max_wait_ms / 1000
        self.on_batch = on_batch or (lambda size: None)
        self.queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future]] = asyncio.Queue()
        self.worker: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self.max_batch == 1 or (self.worker is not None and not self.worker.done())

    def start(self) -> None:
        """Start the worker (call from the running event loop)."""
        if self.max_batch > 1 and self.worker is None:
            self.worker = asyncio.create_task(self._work())

    async def submit(self, digit: np.ndarray) -> Any:
        """The answer for one digit, computed together with whatever else is waiting."""
        if self.max_batch == 1:
            self.on_batch(1)
            return (await asyncio.to_thread(self.run_batch, digit[None]))[0]
        if not self.running:
            raise RuntimeError("the batcher is not running")
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((digit, future))
        return await future

    async def close(self) -> None:
        """Answer everything already queued, then stop the worker."""
        if self.worker is None:
            return
        await self.queue.join()
        self.worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.worker
        self.worker = None

    async def _gather(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        """The next batch: the first waiting item, then more until full or out of time."""
        items = [await self.queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while len(items) < self.max_batch:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                items.append(self.queue.get_nowait() if remaining <= 0 else
                             await asyncio.wait_for(self.queue.get(), remaining))
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
        return items

    async def _work(self) -> None:
        while True:
            items = await self._gather()
            live = [(digit, future) for digit, future in items if not future.cancelled()]
            try:
                if live:
                    self.on_batch(len(live))
                    answers = await asyncio.to_thread(self.run_batch,
                                                      np.stack([d for d, _ in live]))
                    for (_, future), answer in zip(live, answers, strict=True):
                        if not future.done():
                            future.set_result(answer)
            except Exception as e:  # the model failed: every caller in the batch hears why
                for _, future in live:
                    if not future.done():
                        future.set_exception(e)
            finally:
                for _ in items:
                    self.queue.task_done()
