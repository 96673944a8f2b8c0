"""Micro-batching: concurrent requests for single digits share one trip to a worker thread.

Each request puts its item (an image to read) on a queue and awaits a future. One worker takes
the first waiting item, gathers more until `max_batch` items or `max_wait_ms` have passed, and
runs the batch function once on the list in a thread, so the event loop keeps accepting
requests: reading the images and one model call for all of them. Each caller gets its own
answer, or its own exception when the batch function returns one in that item's place. While a
batch runs, new requests queue up and form the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

RunBatch = Callable[[list[Any]], list[Any]]  # items -> answers (an Exception: that item failed)


class MicroBatcher:
    """Groups concurrent `submit` calls into batches for `run_batch` (N items -> N answers).
    With `max_batch=1` there is no queue: each call runs on its own."""

    def __init__(self, run_batch: RunBatch, max_batch: int = 64, max_wait_ms: float = 2.0,
                 on_batch: Callable[[int], None] | None = None) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError("max_batch must be at least 1 and max_wait_ms at least 0")
        self.run_batch, self.max_batch, self.max_wait = run_batch, max_batch, max_wait_ms / 1000
        self.on_batch = on_batch or (lambda size: None)
        self.queue: asyncio.Queue[tuple[Any, asyncio.Future]] = asyncio.Queue()
        self.worker: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self.max_batch == 1 or (self.worker is not None and not self.worker.done())

    def start(self) -> None:
        """Start the worker (call from the running event loop)."""
        if self.max_batch > 1 and self.worker is None:
            self.worker = asyncio.create_task(self._work())

    async def submit(self, item: Any) -> Any:
        """The answer for one item, computed together with whatever else is waiting."""
        if self.max_batch == 1:
            return await self.run_alone(item)
        if not self.running:
            raise RuntimeError("the batcher is not running")
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((item, future))
        return await future

    async def run_alone(self, item: Any) -> Any:
        """The answer for one item, computed on its own in a thread (no queue, no waiting)."""
        self.on_batch(1)
        answer = (await asyncio.to_thread(self.run_batch, [item]))[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def close(self) -> None:
        """Answer everything already queued, then stop the worker."""
        if self.worker is None:
            return
        await self.queue.join()
        self.worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.worker
        self.worker = None

    async def _gather(self) -> list[tuple[Any, asyncio.Future]]:
        """The next batch: the first waiting item, then more until full or out of time."""
        items = [await self.queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while len(items) < self.max_batch:
            if not self.queue.empty():  # what already waits joins without a timer
                items.append(self.queue.get_nowait())
                continue
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                items.append(await asyncio.wait_for(self.queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return items

    async def _work(self) -> None:
        while True:
            items = await self._gather()
            live = [(item, future) for item, future in items if not future.cancelled()]
            try:
                if live:
                    self.on_batch(len(live))
                    answers = await asyncio.to_thread(self.run_batch, [i for i, _ in live])
                    for (_, future), answer in zip(live, answers, strict=True):
                        if future.done():
                            continue
                        if isinstance(answer, Exception):
                            future.set_exception(answer)
                        else:
                            future.set_result(answer)
            except Exception as e:  # the batch failed: every caller in it hears why
                for _, future in live:
                    if not future.done():
                        future.set_exception(e)
            finally:
                for _ in items:
                    self.queue.task_done()
