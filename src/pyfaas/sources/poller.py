"""One mapping's loop: receive a batch, invoke through the scaler, ack what succeeded, retry
what failed, dead-letter what keeps failing; reconnect with backoff when the broker goes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pyfaas.brokers import BrokerError, Message, Source
from pyfaas.events.dispatcher import Resolve, Run, destination_record
from pyfaas.model import (
    AsyncEvent,
    FunctionNotFound,
    FunctionVersion,
    InvocationRequest,
    InvocationResult,
    TooManyRequests,
    new_request_id,
)
from pyfaas.model.events import DEAD
from pyfaas.model.sources import EventSourceMapping
from pyfaas.store.events import NewEvent

log = logging.getLogger("pyfaas.sources")

Enqueue = Callable[[NewEvent], Awaitable[tuple[str, bool]]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Where a batch that failed for good goes: ``write`` puts it into the dead-letter queue
    (the store's ``dead_letter``), ``enqueue`` sends the on-failure record (the Enqueuer)."""

    write: Callable[..., Awaitable[None]]
    enqueue: Enqueue


@dataclass(frozen=True, slots=True)
class PollSettings:
    """``backoff_s``: the wait before the first retry of a failed batch and before the first
    reconnect, doubled each time up to ``backoff_max_s``. ``wait_s``: how long one receive
    waits for a first message. ``lease_s``: how long a received message is ours unrenewed."""

    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    wait_s: float = 1.0
    lease_s: float = 30.0
    throttle_backoff_s: float = 0.5
    max_payload_bytes: int = 6 * 1024 * 1024  # as on Lambda: a batch never passes it


@dataclass(slots=True)
class Health:
    """What a mapping's poller reports (Lambda's State, StateTransitionReason and
    LastProcessingResult, plus counters since this server started)."""

    connected_once: bool = False
    healthy: bool | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    last_processing_result: str = "No records processed"
    batches: int = 0
    records: int = 0
    retries: int = 0
    dead_lettered: int = 0

    def problem(self, message: str) -> None:
        self.healthy, self.last_error, self.last_error_at = False, message, time.time()

    def to_dict(self) -> dict[str, Any]:
        return {
            "health": {None: "unknown", True: "healthy", False: "unhealthy"}[self.healthy],
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "last_processing_result": self.last_processing_result,
            "batches": self.batches,
            "records": self.records,
            "retries": self.retries,
            "dead_lettered": self.dead_lettered,
        }


class Poller:
    """Feeds one enabled mapping's messages to its function, at least once."""

    def __init__(
        self,
        mapping: EventSourceMapping,
        source: Source,
        *,
        resolve: Resolve,
        run: Run,
        dead_letter: DeadLetter,
        settings: PollSettings,
    ) -> None:
        self.mapping = mapping
        self.health = Health()
        self._source = source
        self._resolve = resolve
        self._run = run
        self._dead_letter = dead_letter
        self._settings = settings
        self._held: list[Message] = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def in_flight(self) -> int:
        """Messages received and not yet acked (being processed or waiting for a retry)."""
        return len(self._held)

    def start(self) -> None:
        name = f"pyfaas-source-{self.mapping.uuid[:8]}"
        self._tasks = [
            asyncio.create_task(self._loop(), name=name),
            asyncio.create_task(self._keep_loop(), name=f"{name}-lease"),
        ]

    async def stop(self) -> None:
        """Stop polling; messages held and not acked are given back to the broker."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        held, self._held = self._held, []
        with contextlib.suppress(BrokerError):
            await self._source.release(held)
        await self._source.close()

    async def _loop(self) -> None:
        delay = self._settings.backoff_s
        while True:
            try:
                await self._source.connect()
                self.health.connected_once, self.health.healthy = True, True
                delay = self._settings.backoff_s
                while True:
                    for part in split(await self._gather(), self._settings.max_payload_bytes):
                        await self._process(part)
            except BrokerError as exc:
                self.health.problem(str(exc))
                log.warning("event source %s: %s", self.mapping.uuid, exc)
            except FunctionNotFound as exc:
                self.health.problem(exc.message)
            except Exception as exc:  # never let one mapping's trouble end its poller
                self.health.problem(f"{type(exc).__name__}: {exc}")
                log.exception("event source %s failed; reconnecting", self.mapping.uuid)
            held, self._held = self._held, []
            with contextlib.suppress(BrokerError):
                await self._source.release(held)
            await self._source.close()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._settings.backoff_max_s)

    async def _keep_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.lease_s / 3)
            with contextlib.suppress(BrokerError):
                await self._source.keep(list(self._held))

    async def _gather(self) -> list[Message]:
        """Up to a batch: wait for a first message, then for more until the batch is full
        or the batching window (from the first message) has passed."""
        m = self.mapping
        batch = await self._source.receive(m.batch_size, self._settings.wait_s)
        self._held = list(batch)
        deadline = time.monotonic() + m.maximum_batching_window_s
        while batch and len(batch) < m.batch_size and (left := deadline - time.monotonic()) > 0:
            batch += await self._source.receive(m.batch_size - len(batch), left)
            self._held = list(batch)
        return batch

    async def _process(self, batch: list[Message]) -> None:
        """Invoke until every message succeeded or failed for good; ack as they finish."""
        m, pending, attempts = self.mapping, batch, 0
        self.health.batches += 1
        while pending:
            fv = await self._resolve(m.function)
            event = {"Records": [message.record for message in pending]}
            request = InvocationRequest(
                request_id=new_request_id(),
                payload=json.dumps(event).encode(),
                invoked_function_arn=fv.arn,
            )
            try:
                result = await self._run(fv, request)
            except TooManyRequests:
                # Its concurrency is taken: wait without spending a retry.
                await asyncio.sleep(self._settings.throttle_backoff_s * random.uniform(0.5, 1.5))
                continue
            attempts += 1
            failed, error = failures(result, pending, m.report_batch_item_failures)
            failed_ids = {id(message) for message in failed}
            done = [message for message in pending if id(message) not in failed_ids]
            await self._source.ack(done)
            self.health.records += len(done)
            self._held = list(failed)
            if not failed:
                self.health.last_processing_result = "OK"
                return
            self.health.last_processing_result = f"PROBLEM: {error[:200]}"
            if 0 <= m.maximum_retry_attempts < attempts:
                await self._fail_for_good(fv, failed, attempts, error, result)
                await self._source.ack(failed)
                self._held = []
                return
            self.health.retries += 1
            backoff = self._settings.backoff_s * 2 ** (attempts - 1)
            await asyncio.sleep(min(backoff, self._settings.backoff_max_s))
            pending = failed

    async def _fail_for_good(
        self,
        fv: FunctionVersion,
        failed: Sequence[Message],
        attempts: int,
        error: str,
        result: InvocationResult,
    ) -> None:
        """The failed messages into the dead-letter queue (as an async event of the function,
        which `pyfaas dlq redrive` runs again), and a record to the on-failure function.
        Keyed by their ids: a batch delivered again after a crash lands there once."""
        m, now = self.mapping, time.time()
        payload = json.dumps({"Records": [message.record for message in failed]}).encode()
        ids = "\n".join(message.identifier for message in failed)
        digest = hashlib.sha256(f"{m.uuid}\n{ids}".encode()).hexdigest()
        await self._dead_letter.write(
            request_id=new_request_id(),
            function=m.function,
            payload=payload,
            key=f"source:{digest}",
            attempts=attempts,
            last_error=error,
            now=now,
        )
        self.health.dead_lettered += len(failed)
        if m.on_failure is None:
            return
        dead = AsyncEvent(result.request_id, m.function, payload, DEAD, attempts, attempts, now,
                          now, now)  # fmt: skip
        record = destination_record(fv, dead, "RetryAttemptsExhausted", result)
        record["batchInfo"] = {
            "eventSourceMappingUuid": m.uuid,
            "eventSourceArn": failed[0].record.get("eventSourceARN"),
            "batchSize": len(failed),
            "firstIdentifier": failed[0].identifier,
            "lastIdentifier": failed[-1].identifier,
        }
        await self._dead_letter.enqueue(
            NewEvent(
                request_id=new_request_id(),
                function=m.on_failure,
                payload=json.dumps(record).encode(),
                idempotency_key=f"source-failure:{digest}",
                enqueued_at=now,
            )
        )


def split(batch: list[Message], max_bytes: int) -> list[list[Message]]:
    """``batch`` in order, in parts whose records fit in ``max_bytes`` of payload (a record
    bigger than that alone goes in a part of its own)."""
    parts: list[list[Message]] = []
    size = max_bytes
    for message in batch:
        record_size = len(json.dumps(message.record)) + 2
        if size + record_size > max_bytes:
            parts.append([])
            size = len('{"Records": []}')
        parts[-1].append(message)
        size += record_size
    return parts


def failures(
    result: InvocationResult, pending: Sequence[Message], partial: bool
) -> tuple[list[Message], str]:
    """The messages of ``pending`` that failed in ``result``, and why.

    A function error fails them all. With ``partial`` (ReportBatchItemFailures), the
    response's ``batchItemFailures`` names the failed ones by ``itemIdentifier``; as on
    Lambda, a response that is not JSON or names an unknown or empty identifier fails the
    whole batch, and a null or empty response or list is a complete success.
    """
    body = result.body.decode("utf-8", errors="replace")
    if result.function_error is not None:
        return list(pending), body
    if not partial:
        return [], ""
    try:
        response = json.loads(body) if body.strip() else None
    except ValueError:
        return list(pending), f"the response is not JSON: {body[:200]}"
    if response is None:
        return [], ""
    if not isinstance(response, dict):
        return list(pending), "the response is not a JSON object with batchItemFailures"
    items = response.get("batchItemFailures")
    if not items:
        return [], ""
    if not isinstance(items, list):
        return list(pending), "batchItemFailures is not a list"
    known = {message.identifier for message in pending}
    named: set[str] = set()
    for item in items:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or ident not in known:
            return list(pending), f"batchItemFailures names an unknown itemIdentifier {ident!r}"
        named.add(ident)
    failed = [message for message in pending if message.identifier in named]
    reason = f"{len(failed)} of {len(pending)} records reported as failed (batchItemFailures)"
    return failed, reason
