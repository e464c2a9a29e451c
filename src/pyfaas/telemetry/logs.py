"""Invocation logs: written in batches, off the invoke hot path."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from pyfaas.model import FunctionVersion, InvocationResult, LogRecord, LogStats
from pyfaas.store.batches import WRITE_INTERVAL_S, BatchWriter
from pyfaas.store.logs import LogRow, log_row
from pyfaas.telemetry.feed import LogFeed
from pyfaas.telemetry.lines import dropped_marker, truncated_bytes
from pyfaas.telemetry.report import invocation_log_row

_Invocation = tuple[FunctionVersion, InvocationResult, float]

# While someone follows: lines reach a follower within ~100 ms (else WRITE_INTERVAL_S, the
# usage writer's too, so that the two share a transaction).
FOLLOWED_INTERVAL_S = 0.05


def _size(item: LogRecord | _Invocation) -> int:
    """The handler output an item holds (what the pending bound counts)."""
    return len(item.text) if isinstance(item, LogRecord) else len(item[1].logs)


def _as_row(item: LogRecord | _Invocation) -> LogRow:
    if isinstance(item, LogRecord):
        return log_row(item.function, item.request_id, item.timestamp, item.text)
    return invocation_log_row(*item)


class LogSink(Protocol):
    """Where batched log records go (the store implements it)."""

    async def append_log_rows(self, rows: Sequence[LogRow]) -> Sequence[int]:
        """Store rows (store.logs.LogRow); return their ids, in the same order."""
        ...


class LogWriter:
    """Collects log records and writes them to a sink in batches.

    ``submit`` never blocks and never awaits: the invoke path only appends to a list. A
    background task writes a batch when ``max_batch`` records are waiting or ``interval_s``
    has passed since the first one; ``followed_interval_s`` while someone follows a function's
    records (they reach followers once stored). Fewer, larger batches cost the store less per
    record (bench/store_rows.py). If the server crashes, at most the pending batch is lost.

    The pending batch is bounded: handler output beyond ``max_pending_bytes`` is replaced by
    a marker line (the invocation keeps its START/END/REPORT lines), and beyond
    ``max_pending_records`` whole invocation logs are dropped; both are counted per function
    (``stats``). Stored records go to ``feed``, where followers pick them up.
    """

    def __init__(
        self,
        sink: LogSink,
        *,
        interval_s: float = WRITE_INTERVAL_S,
        followed_interval_s: float = FOLLOWED_INTERVAL_S,
        max_batch: int = 10_000,
        max_pending_bytes: int = 64 * 1024 * 1024,
        max_pending_records: int = 50_000,
        feed: LogFeed | None = None,
    ) -> None:
        self._sink = sink
        self._max_pending_bytes = max_pending_bytes
        self.feed = feed or LogFeed()
        self._pending_bytes = 0
        self._losses: dict[str, LogStats] = {}
        self._batches: BatchWriter[LogRecord | _Invocation] = BatchWriter(
            self._write,
            name="pyfaas-log-writer",
            interval_s=lambda: followed_interval_s if self.feed.followed() else interval_s,
            max_batch=max_batch,
            max_pending=max_pending_records,
        )
        self.feed.on_followed = self._batches.retime

    def submit(self, record: LogRecord) -> None:
        """Queue one record for the next batch (dropped, and counted, when the pending
        batch is full)."""
        if self._batches.submit(record):
            self._pending_bytes += _size(record)
        else:
            self._count_loss(record.function, 0, len(record.text), record=True)

    def submit_invocation(
        self, fv: FunctionVersion, result: InvocationResult, started: float
    ) -> None:
        """Queue an invocation's log; its row is made at flush time (and its START/END/REPORT
        lines when it is read)."""
        logs = result.logs
        if not logs:  # the usual call: nothing to bound but the number of records
            if not self._batches.submit((fv, result, started)):
                self._count_loss(fv.name, 0, 0, record=True)
            return
        truncated = truncated_bytes(logs)
        dropped = 0
        if self._pending_bytes + len(logs) > self._max_pending_bytes:
            dropped = len(logs)
            result = dataclasses.replace(result, logs=dropped_marker(dropped))
        if not self._batches.submit((fv, result, started)):
            self._count_loss(fv.name, truncated, len(logs), record=True)
            return
        if truncated or dropped:
            self._count_loss(fv.name, truncated, dropped)
        self._pending_bytes += len(result.logs)

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

    async def _write(self, items: list[LogRecord | _Invocation]) -> None:
        # A failed write is logged by the BatchWriter: losing logs must not fail invocations.
        # The BatchWriter hands over everything pending: none of it is pending any more.
        self._pending_bytes = 0
        rows = [_as_row(item) for item in items]
        ids = await self._sink.append_log_rows(rows)
        self.feed.publish_rows(rows, ids)

    async def flush(self) -> None:
        """Write everything submitted so far; returns when it is stored."""
        await self._batches.flush()

    async def start(self) -> None:
        await self._batches.start()

    async def close(self) -> None:
        """Stop the background task and write what is pending."""
        await self._batches.close()
