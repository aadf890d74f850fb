"""Dynamic batching: concurrent requests that can share one forward pass are run as one batch.

Requests are grouped by a *key* (for AdaIN: the padded content size, since a batch must be one
tensor). A single worker coroutine takes the oldest waiting key, waits until that group is full
(``max_batch``) or ``max_wait_ms`` have passed since its first item arrived or the previous
batch ended (whichever is later), and runs ``run_batch(key, items)``
in an executor thread, so the event loop never blocks. While a batch runs, new requests keep
queueing, so under load batches fill up by themselves; when idle a lone request waits at most
``max_wait_ms``. One batch runs at a time: on a GPU that is what you want, and on a CPU the
intra-op threads already use every core.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("painterly.serve")


class Cancelled(Exception):
    """The request gave up (timed out) before its batch started; its item was dropped."""


class CancelToken:
    """Set when a request times out, so work that has not started yet is skipped."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class _Item:
    payload: Any
    future: asyncio.Future
    token: CancelToken | None
    arrived: float = field(default_factory=time.monotonic)


@dataclass
class BatchStats:
    """Counters exposed by ``GET /v1/stats`` and used by the tests and the load benchmark."""

    batches: int = 0
    items: int = 0
    dropped: int = 0
    sizes: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "items": self.items, "dropped": self.dropped,
                "mean_batch": round(self.items / self.batches, 3) if self.batches else 0.0,
                "batch_sizes": {str(k): v for k, v in sorted(self.sizes.items())}}


class DynamicBatcher:
    """Group concurrent submissions by key and run each group as one call of ``run_batch``.

    ``run_batch(key, payloads) -> results`` runs in ``executor`` and must return one result per
    payload, in order. If a batch of several raises, each item is retried alone so that one bad
    item cannot fail its neighbours; the error of a single item goes to that item's caller.
    """

    def __init__(self, run_batch: Callable[[Hashable, list[Any]], Sequence[Any]],
                 executor: Executor, max_batch: int = 8, max_wait_ms: float = 5.0) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.run_batch = run_batch
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.stats = BatchStats()
        self._pending: OrderedDict[Hashable, list[_Item]] = OrderedDict()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the worker coroutine on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._worker())

    async def stop(self) -> None:
        """Stop the worker; items still waiting fail with :class:`Cancelled`."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for items in self._pending.values():
            for it in items:
                if not it.future.done():
                    it.future.set_exception(Cancelled("server shutting down"))
        self._pending.clear()

    @property
    def waiting(self) -> int:
        """Items queued and not yet started."""
        return sum(len(v) for v in self._pending.values())

    async def submit(self, key: Hashable, payload: Any, token: CancelToken | None = None) -> Any:
        """Queue ``payload`` under ``key`` and wait for its result."""
        result, _ = await self.submit_with_size(key, payload, token)
        return result

    async def submit_with_size(self, key: Hashable, payload: Any,
                               token: CancelToken | None = None) -> tuple[Any, int]:
        """Like :meth:`submit`, also returning the size of the batch the item ran in."""
        self.start()
        fut = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append(_Item(payload, fut, token))
        assert self._wakeup is not None
        self._wakeup.set()
        return await fut

    def _drop_cancelled(self) -> None:
        for key in list(self._pending):
            keep = []
            for it in self._pending[key]:
                if (it.token is not None and it.token.cancelled) or it.future.cancelled():
                    self.stats.dropped += 1
                    if not it.future.done():
                        it.future.set_exception(Cancelled("request cancelled before it ran"))
                else:
                    keep.append(it)
            if keep:
                self._pending[key] = keep
            else:
                del self._pending[key]

    async def _worker(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        free_since = 0.0
        while True:
            self._drop_cancelled()
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # The oldest group first (fairness); wait until it is full or its deadline passes.
            # The collection window starts when the model is free: requests that queued while a
            # batch ran get ``max_wait`` for their neighbours to arrive too, so closed-loop
            # clients settle into full batches instead of alternating partial ones.
            key = min(self._pending, key=lambda k: self._pending[k][0].arrived)
            deadline = max(self._pending[key][0].arrived, free_since) + self.max_wait
            while len(self._pending.get(key, ())) < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            self._drop_cancelled()
            group = self._pending.get(key)
            if not group:
                continue
            batch, rest = group[: self.max_batch], group[self.max_batch:]
            if rest:
                self._pending[key] = rest
            else:
                del self._pending[key]
            self.stats.batches += 1
            self.stats.items += len(batch)
            self.stats.sizes[len(batch)] += 1
            await self._run(loop, key, batch)
            free_since = time.monotonic()

    async def _run(self, loop: asyncio.AbstractEventLoop, key: Hashable, batch: list[_Item]) -> None:
        payloads = [it.payload for it in batch]
        try:
            results = await loop.run_in_executor(self.executor, self.run_batch, key, payloads)
            if len(results) != len(batch):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} items")
        except Exception as exc:  # isolate the failure: retry one by one
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
            log.warning("batch of %d failed (%s); retrying items one by one", len(batch), exc)
            for it in batch:
                await self._run(loop, key, [it])
            return
        for it, res in zip(batch, results):
            if not it.future.done():
                it.future.set_result((res, len(batch)))
