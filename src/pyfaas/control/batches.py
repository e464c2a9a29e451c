"""Batch invocations: many events in one request, each run as an invocation of its own.

A batch saves the HTTP work of one request per event (what ``Function.map`` over tiny items
spends most of its time on), and nothing else: every event gets its own request id, passes
admission on its own (it may be throttled while the others run), has its own timeout, log
and usage record, exactly as if it had been sent to ``/invoke`` alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

from pyfaas.control.invocations import InvocationService
from pyfaas.model import InvalidPayload, InvalidRequest, InvocationResult, PyfaasError

log = logging.getLogger("pyfaas.control")


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What became of the event at ``index`` (0-based, in the order sent): the invocation's
    result (a handler error is a result too), or why it did not run (``refusal``)."""

    index: int
    result: InvocationResult | None = None
    refusal: PyfaasError | None = None


def split_batch(body: bytes, max_items: int) -> list[bytes]:
    """The events of a batch body: one JSON value per line (NDJSON; a last newline is
    optional). Checks them all before any runs, so a bad batch runs nothing.

    Raises InvalidRequest (empty_batch, too_many_batch_items) and InvalidPayload (an empty
    line or one that is not JSON; the message names its line).
    """
    lines = body.split(b"\n")
    if lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise InvalidRequest(
            "the batch has no events: send one JSON event per line", code="empty_batch"
        )
    if len(lines) > max_items:
        raise InvalidRequest(
            f"the batch has {len(lines)} events; the limit is {max_items}: split it",
            code="too_many_batch_items",
        )
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise InvalidPayload(f"line {number} of the batch is empty; send {{}} for no event")
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidPayload(f"line {number} of the batch is not valid JSON: {exc}") from None
    return lines


class BatchRun:
    """Runs the events of one batch, ``concurrency`` at a time, as invocations of ``name``
    (a weighted alias is drawn for each event, as for single invokes).

    The invocations run in a task of their own, not in the caller's: when the caller stops
    listening (the client went away), the invocations already running finish normally
    (their logs and usage are recorded) and no further event starts.
    """

    def __init__(
        self,
        invocations: InvocationService,
        name: str,
        payloads: list[bytes],
        *,
        concurrency: int = 1,
        traceparent: str | None = None,
    ) -> None:
        self._invocations = invocations
        self._name = name
        self._payloads = payloads
        self._concurrency = max(1, min(concurrency, len(payloads)))
        self._traceparent = traceparent
        self._next = 0
        self._stopped = False
        self._finished: asyncio.Queue[BatchOutcome | None] = asyncio.Queue()

    async def outcomes(self) -> AsyncIterator[list[BatchOutcome]]:
        """The outcomes in the order they finish, in groups (those that finished while the
        previous group was being handled: one write for them all)."""
        runner = asyncio.create_task(self._run_all())
        running = self._concurrency
        try:
            while running:
                group: list[BatchOutcome] = []
                item: BatchOutcome | None = await self._finished.get()
                while True:
                    if item is None:
                        running -= 1
                    else:
                        group.append(item)
                    if self._finished.empty():
                        break
                    item = self._finished.get_nowait()
                if group:
                    yield group
        finally:
            self._stopped = True
            _detached.add(runner)
            runner.add_done_callback(_detached.discard)

    async def _run_all(self) -> None:
        await asyncio.gather(*(self._lane() for _ in range(self._concurrency)))

    async def _lane(self) -> None:
        try:
            while not self._stopped and self._next < len(self._payloads):
                index = self._next
                self._next += 1
                self._finished.put_nowait(await self._invoke(index))
        finally:
            self._finished.put_nowait(None)

    async def _invoke(self, index: int) -> BatchOutcome:
        try:
            result = await self._invocations.invoke(
                self._name,
                self._payloads[index],
                traceparent=self._traceparent,
                payload_checked=True,
            )
        except PyfaasError as exc:
            return BatchOutcome(index, refusal=exc)
        except Exception:  # one event's bug in the platform must not lose the others
            log.exception("batch event %d of %s failed", index, self._name)
            refusal = PyfaasError("internal error; the server log has details")
            return BatchOutcome(index, refusal=refusal)
        return BatchOutcome(index, result=result)


# Runs whose listener went away: referenced until they finish (the loop keeps weak ones).
_detached: set[asyncio.Task[None]] = set()
