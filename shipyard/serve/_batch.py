"""Adaptive micro-batching: concurrent requests share one model call.

A request's inputs (already checked against the signature) join a queue. The
batcher takes what is queued, up to ``max_batch_size`` rows, concatenates it
along the batch axis, runs the model once in its own thread and hands each
request its slice of the outputs. It adapts to the load:

* idle, the first request waits at most ``max_wait`` for company (0: none);
* while a batch runs, new requests queue, and the next batch takes them
  at once, without waiting: the busier the model, the larger the batches.

One model call serves the whole batch, so a model error fails every request in
it (each gets the error); requests whose shapes cannot be concatenated (a
tensor with a free non-batch dimension) run one by one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = ["Batcher"]

Arrays = dict[str, np.ndarray[Any, Any]]


class Batcher:
    def __init__(
        self,
        run: Callable[[Arrays], Arrays],
        *,
        max_batch_size: int,
        max_wait_s: float,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._run = run
        self._max = max_batch_size
        self._wait = max_wait_s
        self._on_batch = on_batch
        self._queue: list[tuple[Arrays, int, asyncio.Future[Arrays]]] = []
        self._rows = 0
        self._full: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="shipyard-batch")

    async def submit(self, arrays: Arrays, rows: int) -> Arrays:
        """The model's outputs for these inputs, computed in a shared batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Arrays] = loop.create_future()
        self._queue.append((arrays, rows, future))
        self._rows += rows
        if self._full is None:
            self._full = asyncio.Event()
        if self._rows >= self._max:
            self._full.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await future

    def close(self) -> None:
        """Stop the model thread once its queue is done (at server shutdown). A hot
        swap does not call this: requests still holding the old version may submit
        to it, and its thread ends when the batcher is garbage collected."""
        self._pool.shutdown(wait=False)

    async def _drain(self) -> None:
        assert self._full is not None
        idle = True
        while self._queue:
            batch: list[tuple[Arrays, int, asyncio.Future[Arrays]]] = []
            try:
                if idle and self._wait > 0 and self._rows < self._max:
                    await self._gather()
                rows = 0
                while self._queue and (not batch or rows + self._queue[0][1] <= self._max):
                    item = self._queue.pop(0)
                    batch.append(item)
                    rows += item[1]
                self._rows -= rows
                await self._call(batch, rows)
            except BaseException as e:  # never leave a request without an answer
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(e if isinstance(e, Exception) else RuntimeError(e))
                if not isinstance(e, Exception):
                    raise
            idle = False  # whatever queued meanwhile goes at once

    async def _gather(self) -> None:
        """Wait until ``max_batch_size`` rows are queued or ``max_wait`` has passed."""
        assert self._full is not None
        deadline = time.monotonic() + self._wait
        self._full.clear()
        while self._rows < self._max:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self._full.wait(), left)
            except TimeoutError:
                return

    async def _call(
        self, batch: list[tuple[Arrays, int, asyncio.Future[Arrays]]], rows: int
    ) -> None:
        loop = asyncio.get_running_loop()
        merged: Arrays | None = None
        if len(batch) > 1:
            keys = set(batch[0][0])
            try:
                if any(set(b[0]) != keys for b in batch):
                    raise ValueError("requests with different inputs")
                merged = {k: np.concatenate([b[0][k] for b in batch]) for k in batch[0][0]}
            except (ValueError, TypeError):  # shapes or inputs that do not stack: one each
                for item in batch:
                    await self._call([item], item[1])
                return
        try:
            out = await loop.run_in_executor(self._pool, self._run, merged or batch[0][0])
        except BaseException as e:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(e if isinstance(e, Exception) else RuntimeError(e))
            if not isinstance(e, Exception):
                raise
            return
        if self._on_batch is not None:
            self._on_batch(rows)
        start = 0
        for _, n, future in batch:
            if not future.done():
                future.set_result(
                    {
                        k: v[start : start + n] if v.ndim and len(v) == rows else v
                        for k, v in out.items()
                    }
                    if len(batch) > 1
                    else out
                )
            start += n
