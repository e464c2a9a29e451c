"""Delivering queued events: leases, retries with backoff and jitter, maximum event age,
destinations and the dead-letter queue."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyfaas.events.queue import Enqueuer, GroupCommit
from pyfaas.model import (
    AsyncEvent,
    FunctionNotFound,
    FunctionVersion,
    InvocationRequest,
    InvocationResult,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    WorkerLost,
    new_request_id,
)
from pyfaas.model.events import DEAD, FAILED, QUEUED, SUCCEEDED
from pyfaas.store.events import EventStore, NewEvent, Settlement

log = logging.getLogger("pyfaas.events")

Resolve = Callable[[str], Awaitable[FunctionVersion]]
Run = Callable[[FunctionVersion, InvocationRequest], Awaitable[InvocationResult]]


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    """``retry_base_s``: the wait before the first retry (Lambda: about a minute), doubled
    for each further one, with +-50% jitter. ``lease_s``: how long a claimed event is ours
    without renewal; the dispatcher renews running ones every third of it. ``max_in_flight``:
    deliveries at once (admission still applies per function). ``poll_s``: how often the
    queue is looked at when nothing new was committed (retries that come due, other servers'
    events)."""

    retry_base_s: float = 60.0
    lease_s: float = 30.0
    max_in_flight: int = 64
    poll_s: float = 0.25
    throttle_backoff_s: float = 0.5


class Dispatcher:
    """Claims due events and runs them through the same scaler as synchronous calls."""

    def __init__(
        self,
        store: EventStore,
        enqueuer: Enqueuer,
        *,
        resolve: Resolve,
        run: Run,
        settings: DispatchSettings,
        release_on_start: bool,
    ) -> None:
        self._store = store
        self._enqueuer = enqueuer
        self._resolve = resolve
        self._run = run
        self._settings = settings
        self._release_on_start = release_on_start
        self.owner = secrets.token_hex(8)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._per_function: dict[str, int] = {}
        self._reserved: dict[str, int | None] = {}
        self._held_back: dict[str, float] = {}  # function -> monotonic time it may go again
        # Function with no room -> monotonic time to look for its expired events again.
        self._expiry_check_at: dict[str, float] = {}
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        enqueuer.on_commit = self._wakeup.set
        # Outcomes are written in batches too: one transaction for many deliveries.
        self._settler: GroupCommit[Settlement, bool] = GroupCommit(
            store.settle, name="pyfaas-settler"
        )

    async def start(self) -> None:
        await self._settler.start()
        if self._release_on_start:
            released = await self._store.release_running(time.time())
            if released:
                log.info(
                    "%d async events were running when the server stopped: queued again", released
                )
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="pyfaas-dispatcher"),
            asyncio.create_task(self._renew_loop(), name="pyfaas-lease-renewer"),
        ]

    async def close(self) -> None:
        """Stop claiming; cancel deliveries under way (their events are queued again by the
        next start, or by lease expiry on a shared database)."""
        for task in [*self._tasks, *self._running.values()]:
            task.cancel()
        for task in [*self._tasks, *self._running.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self._settler.close()

    def wake(self) -> None:
        self._wakeup.set()

    # --- claiming ---------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while True:
            full = False
            try:
                full = await self._claim_round()
            except Exception:
                log.exception("claiming async events failed; retrying")
            if not full:
                # Nothing more due now: sleep until a commit, a finished delivery or a poll.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.poll_s):
                        await self._wakeup.wait()
                self._wakeup.clear()

    async def _claim_round(self) -> bool:
        """Claim due events function by function, oldest due first, each up to what its
        reservation leaves: a deep queue of one function (or of one that is stopped, with
        reservation 0) never stands in front of another's. True if there may be more."""
        room = self._settings.max_in_flight - len(self._running)
        if room <= 0:
            return False
        now = time.time()
        held = {name for name, until in self._held_back.items() if until > time.monotonic()}
        more = False
        for name in await self._store.due_functions(now=now, limit=100):
            if name in held:
                continue
            fv = await self._function(name)
            share = min(room, 100, self._room_of(name))
            older_than = None
            if share <= 0:
                if fv is None or self._expiry_check_at.get(name, 0.0) > time.monotonic():
                    continue
                # Its reservation is taken (or 0): only events too old to run may go, to
                # the failure destination and the DLQ. Looked for once per poll, not on
                # every commit: a stopped function's backlog costs the others nothing.
                share, older_than = min(room, 100), now - fv.maximum_event_age_s
            claimed = await self._store.claim(
                now=now,
                limit=share,
                lease_s=self._settings.lease_s,
                owner=self.owner,
                function=name,
                enqueued_before=older_than,
            )
            if older_than is not None and len(claimed) < share:
                self._expiry_check_at[name] = time.monotonic() + self._settings.poll_s
            for event in claimed:
                self._start_delivery(event)
            room -= len(claimed)
            more = more or len(claimed) == share
            if room <= 0:
                return True
        return more

    async def _function(self, name: str) -> FunctionVersion | None:
        """``name``'s current version (cached by the resolver), None if it was deleted."""
        try:
            fv = await self._resolve(name)
        except FunctionNotFound:
            return None  # its events are claimed anyway: delivery marks them dead
        self._reserved[name] = fv.reserved_concurrency
        return fv

    def _room_of(self, name: str) -> int:
        """How many more of ``name``'s events may run now, by its reservation."""
        reserved = self._reserved.get(name)
        if reserved is None:
            return self._settings.max_in_flight
        return reserved - self._per_function.get(name, 0)

    def _start_delivery(self, event: AsyncEvent) -> None:
        self._per_function[event.function] = self._per_function.get(event.function, 0) + 1
        task = asyncio.create_task(self._deliver(event))
        self._running[event.request_id] = task
        task.add_done_callback(lambda _: self._delivered(event))

    def _delivered(self, event: AsyncEvent) -> None:
        self._running.pop(event.request_id, None)
        left = self._per_function[event.function] - 1
        if left:
            self._per_function[event.function] = left
        else:
            del self._per_function[event.function]
        # Claim again once a quarter of the room is free (a claim round per delivery would
        # cost more than the delivery), or at once when the function's own reservation is
        # what holds its events back.
        if (
            len(self._running) <= self._settings.max_in_flight * 3 // 4
            or self._reserved.get(event.function) is not None
        ):
            self._wakeup.set()

    async def _renew_loop(self) -> None:
        period = self._settings.lease_s / 3
        while True:
            await asyncio.sleep(period)
            try:
                await self._store.renew(
                    list(self._running),
                    owner=self.owner,
                    until=time.time() + self._settings.lease_s,
                )
            except Exception:
                log.exception("renewing leases failed; retrying")

    # --- one delivery -----------------------------------------------------------------------

    async def _deliver(self, event: AsyncEvent) -> None:
        now = time.time()
        try:
            fv = await self._resolve(event.qualified_function)
        except NotFound as exc:  # the function, or the version or alias it was sent to
            await self._settle(event, DEAD, condition="FunctionNotFound", last_error=_reason(
                "ResourceNotFoundException", exc.message
            ))  # fmt: skip
            return
        self._reserved[fv.name] = fv.reserved_concurrency
        if now - event.enqueued_at > fv.maximum_event_age_s:
            await self._fail_for_good(fv, event, "EventAgeExceeded", None, uncount=True)
            return
        request = InvocationRequest(
            request_id=event.request_id, payload=event.payload, invoked_function_arn=fv.arn
        )
        try:
            result = await self._run(fv, request)
        except TooManyRequests:
            # Not the function's failure: try again shortly, without spending a retry.
            delay = self._settings.throttle_backoff_s * random.uniform(0.5, 1.5)
            self._held_back[fv.name] = time.monotonic() + delay
            await self._settle(event, QUEUED, next_attempt_at=time.time() + delay, uncount=True)
            return
        except WorkerLost as exc:
            # The platform lost the worker (a Ray actor or node died), not the function's
            # failure: queued again at once for a surviving worker, without spending one of
            # its retries (the attempt still counts: the handler may have run in part). A
            # handler that keeps killing its own actor is bounded by the maximum event age.
            await self._settle(
                event,
                QUEUED,
                next_attempt_at=time.time(),
                last_error=_reason("WorkerLost", exc.message),
            )
            self._wakeup.set()
            return
        except ServiceUnavailable:
            return  # shutting down: the lease lapses and the event is delivered again
        if result.function_error is None:
            if fv.on_success:
                await self._send_record(fv, event, "Success", result)
            await self._settle(event, SUCCEEDED, result=result.body)
            return
        failures = event.failures + 1
        error = result.body.decode("utf-8", errors="replace")
        if failures > fv.maximum_retry_attempts:
            await self._fail_for_good(fv, event, "RetriesExhausted", result, error=error)
            return
        backoff = self._settings.retry_base_s * 2 ** (failures - 1) * random.uniform(0.5, 1.5)
        await self._settle(
            event, FAILED, next_attempt_at=time.time() + backoff, failed=True, last_error=error
        )

    async def _fail_for_good(
        self,
        fv: FunctionVersion,
        event: AsyncEvent,
        condition: str,
        result: InvocationResult | None,
        *,
        error: str | None = None,
        uncount: bool = False,
    ) -> None:
        """Into the dead-letter queue, and a record to the on-failure destination."""
        if fv.on_failure:
            await self._send_record(fv, event, condition, result)
        if error is None:
            error = _reason(condition, f"the event is older than {fv.maximum_event_age_s} s")
        await self._settle(
            event,
            DEAD,
            failed=result is not None,
            uncount=uncount,
            last_error=error,
            condition=condition,
        )

    async def _send_record(
        self,
        fv: FunctionVersion,
        event: AsyncEvent,
        condition: str,
        result: InvocationResult | None,
    ) -> None:
        """Enqueue Lambda's destination record for the destination function, durably. The
        idempotency key makes a redelivered event send its record once."""
        target = fv.on_success if condition == "Success" else fv.on_failure
        assert target is not None
        record = destination_record(fv, event, condition, result)
        await self._enqueuer.submit(
            NewEvent(
                request_id=new_request_id(),
                function=target,
                payload=json.dumps(record).encode(),
                idempotency_key=f"destination:{event.request_id}",
                enqueued_at=time.time(),
            )
        )

    async def _settle(
        self,
        event: AsyncEvent,
        status: str,
        *,
        next_attempt_at: float | None = None,
        failed: bool = False,
        uncount: bool = False,
        last_error: str | None = None,
        condition: str | None = None,
        result: bytes | None = None,
    ) -> None:
        kept = await self._settler.submit(
            Settlement(
                request_id=event.request_id,
                owner=self.owner,
                status=status,
                now=time.time(),
                next_attempt_at=next_attempt_at,
                failed=failed,
                uncount_attempt=uncount,
                last_error=last_error,
                condition=condition,
                result=result,
            )
        )
        if not kept:
            log.warning("event %s: lease lost before it was settled", event.request_id)


def destination_record(
    fv: FunctionVersion, event: AsyncEvent, condition: str, result: InvocationResult | None
) -> dict[str, Any]:
    """The record Lambda sends to a destination, for one outcome of ``event``."""
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": event.request_id,
            "functionArn": f"{fv.arn}:{fv.version}",
            "condition": condition,
            "approximateInvokeCount": event.attempts,
        },
        "requestPayload": _json_or_text(event.payload),
    }
    if result is not None:
        context: dict[str, Any] = {"statusCode": 200, "executedVersion": result.version}
        if result.function_error:
            context["functionError"] = result.function_error
        record["responseContext"] = context
        record["responsePayload"] = _json_or_text(result.body)
    return record


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def _reason(error_type: str, message: str) -> str:
    return json.dumps({"errorType": error_type, "errorMessage": message})
