"""Writing to the store in batches, off the invoke hot path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("pyfaas.store")

# How often the server's usage and log writers write a batch. Half a second makes ~4,000 rows
# a batch at 8,000 invocations/s, which the store writes for ~20% less CPU per row than batches
# of 400 (bench/store_rows.py); a crash of the server loses at most that long's records.
WRITE_INTERVAL_S = 0.5


class BatchWriter(Generic[T]):
    """Collects items and hands them to ``write`` in batches, from a background task.

    ``submit`` never blocks and never awaits: the caller only appends to a list, so any work
    on an item (formatting, conversion) belongs in ``write``. A batch goes when
    ``max_batch`` items wait or at most ``interval_s`` after the first one (at the next
    multiple of ``interval_s`` on the loop's clock, the same for every writer). A failed write is
    logged and its batch dropped (the invoke path must not fail for it); a crash of the
    server loses at most what had not been written yet: about ``interval_s`` worth.

    ``interval_s`` may be a function, asked before each wait (say, shorter while someone
    follows what is written); call :meth:`retime` when its answer changes, so that a wait
    under way is cut to the new interval.
    """

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[None]],
        *,
        name: str,
        interval_s: float | Callable[[], float] = 0.05,
        max_batch: int = 500,
        max_pending: int | None = None,
    ) -> None:
        """``max_pending``: how many items may wait at most (None: no bound); ``submit``
        refuses more."""
        self._write = write
        self._name = name
        self._interval = interval_s if callable(interval_s) else lambda: interval_s
        self._retimed = asyncio.Event()
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._pending: list[T] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()

    def __len__(self) -> int:
        """Items waiting for a batch."""
        return len(self._pending)

    def submit(self, item: T) -> bool:
        """Queue one item for the next batch; False (and nothing queued) when
        ``max_pending`` items wait already."""
        pending = self._pending
        waiting = len(pending)
        if waiting == self._max_pending:
            return False
        pending.append(item)
        if waiting == 0 or waiting + 1 >= self._max_batch:
            self._wakeup.set()
        return True

    async def flush(self) -> None:
        """Write everything submitted so far; returns once it is written (or dropped)."""
        async with self._write_lock:
            while self._pending:
                await self._write_one_batch()

    async def _write_one_batch(self) -> None:
        batch, self._pending = self._pending, []
        try:
            await self._write(batch)
        except Exception:
            log.exception("%s: could not write a batch of %d", self._name, len(batch))

    def retime(self) -> None:
        """The interval has changed: a wait under way ends at the new one's next multiple."""
        self._retimed.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def close(self) -> None:
        """Stop the background task and write what is pending."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _until_next_tick(self) -> None:
        # Up to the next multiple of the interval on the loop's clock, not an interval from
        # now: writers with the same interval (usage records, logs) then flush in the same
        # turn of the loop, and share a transaction (Transactions.in_thread). A retime()
        # meanwhile: the wait is worked out again with the interval asked anew.
        loop = asyncio.get_running_loop()
        while True:
            self._retimed.clear()
            interval = self._interval()
            try:
                await asyncio.wait_for(self._retimed.wait(), interval - loop.time() % interval)
            except TimeoutError:
                return
            if len(self._pending) >= self._max_batch:
                return

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if len(self._pending) < self._max_batch:
                await self._until_next_tick()
            # One batch, not flush(): what arrives while it is written waits for the next
            # tick. Draining back to back would make a busy server write a small batch (a
            # transaction and an fsync) as soon as the last one is stored.
            async with self._write_lock:
                if self._pending:
                    await self._write_one_batch()
