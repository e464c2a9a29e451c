"""Invocation logs: written in batches, off the invoke hot path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from pyfaas.model import FunctionVersion, InvocationResult, LogRecord
from pyfaas.telemetry.report import format_invocation_log

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

    async def append_logs(self, records: Sequence[LogRecord]) -> None: ...


class LogWriter:
    """Collects log records and writes them to a sink in batches.

    ``submit`` never blocks and never awaits: the invoke path only appends to a list. A
    background task writes a batch when ``max_batch`` records are waiting or ``interval_s``
    has passed since the first one. If the server crashes, at most the pending batch is lost.
    """

    def __init__(self, sink: LogSink, *, interval_s: float = 0.05, max_batch: int = 500) -> None:
        self._sink = sink
        self._interval_s = interval_s
        self._max_batch = max_batch
        self._pending: list[LogRecord | _Invocation] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()

    def submit(self, record: LogRecord) -> None:
        """Queue one record for the next batch."""
        self._queue(record)

    def submit_invocation(
        self, fv: FunctionVersion, result: InvocationResult, started: float
    ) -> None:
        """Queue an invocation's log; its START/END/REPORT text is made at flush time."""
        self._queue((fv, result, started))

    def _queue(self, item: LogRecord | _Invocation) -> None:
        self._pending.append(item)
        if len(self._pending) == 1 or len(self._pending) >= self._max_batch:
            self._wakeup.set()

    async def flush(self) -> None:
        """Write everything submitted so far; returns when it is stored."""
        async with self._write_lock:
            while self._pending:
                items, self._pending = self._pending, []
                batch = [_as_record(item) for item in items]
                try:
                    await self._sink.append_logs(batch)
                except Exception:
                    # Losing logs must not take invocations down; say so loudly.
                    log.exception("could not store %d log records", len(batch))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pyfaas-log-writer")

    async def close(self) -> None:
        """Stop the background task and write what is pending."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if len(self._pending) < self._max_batch:
                await asyncio.sleep(self._interval_s)
            await self.flush()
