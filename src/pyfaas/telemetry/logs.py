"""Invocation logs: written in batches, off the invoke hot path."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Protocol

from pyfaas.model import FunctionVersion, InvocationResult, LogRecord, LogStats
from pyfaas.telemetry.feed import LogFeed
from pyfaas.telemetry.lines import dropped_marker, truncated_bytes
from pyfaas.telemetry.report import format_invocation_log
from pyfaas.telemetry.tasks import cancel_and_wait

log = logging.getLogger("pyfaas.telemetry")

_Invocation = tuple[FunctionVersion, InvocationResult, float]


def _as_record(item: LogRecord | _Invocation) -> LogRecord:
    if isinstance(item, LogRecord):
        return item
    fv, result, started = item
    return LogRecord(
        function=fv.name,
        request_id=result.request_id,
        timestamp=started,
        text=format_invocation_log(fv, result),
    )


class LogSink(Protocol):
    """Where batched log records go (the store implements it)."""

    async def append_logs(self, records: Sequence[LogRecord]) -> Sequence[LogRecord]:
        """Store ``records``; return them with their ids, in the same order."""
        ...


class LogWriter:
    """Collects log records and writes them to a sink in batches.

    ``submit`` never blocks and never awaits: the invoke path only appends to a list. A
    background task writes a batch when ``max_batch`` records are waiting or ``interval_s``
    has passed since the first one. If the server crashes, at most the pending batch is lost.

    The pending batch is bounded: handler output beyond ``max_pending_bytes`` is replaced by
    a marker line (the invocation keeps its START/END/REPORT lines), and beyond
    ``max_pending_records`` whole invocation logs are dropped; both are counted per function
    (``stats``). Stored records go to ``feed``, where followers pick them up.
    """

    def __init__(
        self,
        sink: LogSink,
        *,
        interval_s: float = 0.05,
        max_batch: int = 500,
        max_pending_bytes: int = 64 * 1024 * 1024,
        max_pending_records: int = 20_000,
        feed: LogFeed | None = None,
    ) -> None:
        self._sink = sink
        self._interval_s = interval_s
        self._max_batch = max_batch
        self._max_pending_bytes = max_pending_bytes
        self._max_pending_records = max_pending_records
        self.feed = feed or LogFeed()
        self._pending: list[LogRecord | _Invocation] = []
        self._pending_bytes = 0
        self._losses: dict[str, LogStats] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()

    def submit(self, record: LogRecord) -> None:
        """Queue one record for the next batch."""
        self._queue(record, len(record.text))

    def submit_invocation(
        self, fv: FunctionVersion, result: InvocationResult, started: float
    ) -> None:
        """Queue an invocation's log; its START/END/REPORT text is made at flush time."""
        truncated = truncated_bytes(result.logs) if result.logs else 0
        dropped = 0
        if len(self._pending) >= self._max_pending_records:
            self._count_loss(fv.name, truncated, len(result.logs), record=True)
            return
        if self._pending_bytes + len(result.logs) > self._max_pending_bytes:
            dropped = len(result.logs)
            result = dataclasses.replace(result, logs=dropped_marker(dropped))
        if truncated or dropped:
            self._count_loss(fv.name, truncated, dropped)
        self._queue((fv, result, started), len(result.logs))

    def stats(self, function: str) -> LogStats:
        """What this server lost of ``function``'s log output since it started."""
        return self._losses.get(function) or LogStats()

    def _count_loss(
        self, function: str, truncated: int, dropped: int, record: bool = False
    ) -> None:
        was = self.stats(function)
        self._losses[function] = LogStats(
            truncated_bytes=was.truncated_bytes + truncated,
            dropped_bytes=was.dropped_bytes + dropped,
            dropped_records=was.dropped_records + record,
            invocations_with_loss=was.invocations_with_loss + 1,
        )

    def _queue(self, item: LogRecord | _Invocation, size: int) -> None:
        self._pending.append(item)
        self._pending_bytes += size
        if len(self._pending) == 1 or len(self._pending) >= self._max_batch:
            self._wakeup.set()

    async def flush(self) -> None:
        """Write everything submitted so far; returns when it is stored."""
        async with self._write_lock:
            while self._pending:
                items, self._pending = self._pending, []
                self._pending_bytes = 0
                batch = [_as_record(item) for item in items]
                try:
                    stored = await self._sink.append_logs(batch)
                except Exception:
                    # Losing logs must not take invocations down; say so loudly.
                    log.exception("could not store %d log records", len(batch))
                    continue
                self.feed.publish(stored)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pyfaas-log-writer")

    async def close(self) -> None:
        """Stop the background task and write what is pending."""
        await cancel_and_wait(self._task)
        self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if len(self._pending) < self._max_batch:
                await asyncio.sleep(self._interval_s)
            await self.flush()
