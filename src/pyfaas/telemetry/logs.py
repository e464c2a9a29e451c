"""Invocation logs: written in batches, off the invoke hot path."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pyfaas.model import FunctionVersion, InvocationResult, LogRecord
from pyfaas.store.batches import BatchWriter
from pyfaas.telemetry.report import format_invocation_log

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
    """Collects log records and writes them to a sink in batches (a BatchWriter).

    ``submit`` never blocks and never awaits: the invoke path only appends to a list. A
    background task writes a batch when ``max_batch`` records are waiting or ``interval_s``
    has passed since the first one. If the server crashes, at most the pending batch is lost.
    """

    def __init__(self, sink: LogSink, *, interval_s: float = 0.05, max_batch: int = 500) -> None:
        self._sink = sink
        self._batches: BatchWriter[LogRecord | _Invocation] = BatchWriter(
            self._write, name="pyfaas-log-writer", interval_s=interval_s, max_batch=max_batch
        )

    def submit(self, record: LogRecord) -> None:
        """Queue one record for the next batch."""
        self._batches.submit(record)

    def submit_invocation(
        self, fv: FunctionVersion, result: InvocationResult, started: float
    ) -> None:
        """Queue an invocation's log; its START/END/REPORT text is made at flush time."""
        self._batches.submit((fv, result, started))

    async def _write(self, items: list[LogRecord | _Invocation]) -> None:
        # A failed write is logged by the BatchWriter: losing logs must not fail invocations.
        await self._sink.append_logs([_as_record(item) for item in items])

    async def flush(self) -> None:
        """Write everything submitted so far; returns when it is stored."""
        await self._batches.flush()

    async def start(self) -> None:
        await self._batches.start()

    async def close(self) -> None:
        """Stop the background task and write what is pending."""
        await self._batches.close()
