"""Firing schedules: each due slot becomes an async event, once, even across servers.

Every server runs a Scheduler. It reads the enabled schedules from the store (so it sees
changes made through other servers), and hands each due slot to the durable async queue
with the idempotency key ``schedule:<id>:<slot time>``: whichever servers fire a slot, the
queue keeps one event, and retries, destinations and the dead-letter queue apply to it.

A slot is *missed* when it came due before this server's scheduler started, or is more
than ``grace_s`` overdue (no server was running then). Missed slots follow the schedule's
``missed_runs``: ``fire_once`` sends one event for all of them (for the latest one), ``skip``
sends none. A slot that came due just before this server started is left alone for
``grace_s`` under ``skip``: another server sharing the database may be firing it on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyfaas.events.queue import Enqueuer
from pyfaas.events.schedule_expressions import ScheduleExpression, parse
from pyfaas.model import FunctionNotFound, FunctionVersion, PyfaasError, new_request_id
from pyfaas.model.schedules import FIRE_ONCE, Schedule
from pyfaas.store.events import NewEvent
from pyfaas.store.schedules import Handled, ScheduleStore

log = logging.getLogger("pyfaas.schedules")

Resolve = Callable[[str], Awaitable[FunctionVersion]]
# Event ids derive from the idempotency key: a slot's event has the same id on every server.
_EVENT_IDS = uuid.UUID("6d1f0f6c-5c1e-4c53-9a55-707966616173")


@dataclass(frozen=True, slots=True)
class Due:
    """What to do about a schedule now: fire the slot at ``fire`` (None: fire nothing) and
    count every slot up to ``until`` as handled. ``missed``: some slot came due while no
    server ran."""

    fire: float | None
    until: float
    missed: bool


def due(
    expression: ScheduleExpression,
    schedule: Schedule,
    now: float,
    *,
    grace_s: float,
    started_at: float,
) -> Due | None:
    """What to do about the slots of ``schedule`` due at ``now`` and not handled yet; None
    when nothing is due (or, under ``skip``, when the latest slot came due shortly before
    ``started_at``: it is decided once it is ``grace_s`` old). A pure function."""
    first = expression.next_after(schedule.handled_until, schedule.anchor)
    if first is None or first > now:
        return None
    latest = expression.latest_until(now, schedule.anchor)
    if latest is None or latest < first:  # cannot happen for a consistent expression
        latest = first
    late = now - latest > grace_s
    before_start = latest < started_at
    missed = latest != first or late or before_start
    if not missed or schedule.missed_runs == FIRE_ONCE:
        return Due(fire=latest, until=latest, missed=missed)
    if not late and not before_start:
        return Due(fire=latest, until=latest, missed=True)  # the older ones are skipped
    if not late:
        return None
    return Due(fire=None, until=latest, missed=True)


def scheduled_event(schedule: Schedule, fv: FunctionVersion, slot: float) -> dict[str, Any]:
    """EventBridge's Scheduled Event for ``slot`` of ``schedule``."""
    return {
        "version": "0",
        "id": str(uuid.uuid5(_EVENT_IDS, idempotency_key(schedule, slot))),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": fv.account_id,
        "time": slot_time(slot),
        "region": fv.region,
        "resources": [schedule_arn(schedule, fv)],
        "detail": {},
    }


def schedule_arn(schedule: Schedule, fv: FunctionVersion) -> str:
    return f"arn:aws:events:{fv.region}:{fv.account_id}:rule/{schedule.id}"


def slot_time(slot: float) -> str:
    return datetime.fromtimestamp(slot, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def idempotency_key(schedule: Schedule, slot: float) -> str:
    return f"schedule:{schedule.id}:{slot_time(slot)}"


class Scheduler:
    """Fires the due slots of every enabled schedule into the async queue."""

    def __init__(
        self,
        store: ScheduleStore,
        enqueuer: Enqueuer,
        *,
        resolve: Resolve,
        poll_s: float,
    ) -> None:
        self._store = store
        self._enqueuer = enqueuer
        self._resolve = resolve
        self._poll_s = poll_s
        self.grace_s = max(0.25, 3 * poll_s)
        self.started_at = math.inf
        self.queued = 0  # slots this server put in the queue
        self.already_queued = 0  # slots it found queued by another server (same key)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.started_at = time.time()
        self._task = asyncio.create_task(self._loop(), name="pyfaas-scheduler")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            log.info(
                "scheduler stopped: %d slots queued here, %d found queued by another server",
                self.queued,
                self.already_queued,
            )

    def wake(self) -> None:
        """Look at the schedules now (one was created or changed)."""
        self._wakeup.set()

    async def _loop(self) -> None:
        while True:
            upcoming = math.inf
            try:
                upcoming = await self.tick(time.time())
            except Exception:
                log.exception("firing schedules failed; retrying")
            # Sleep to the next slot, but look again every poll_s for other servers' changes.
            wait = min(self._poll_s, max(0.0, upcoming - time.time()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wakeup.wait()
            self._wakeup.clear()

    async def tick(self, now: float) -> float:
        """Fire what is due at ``now``; return the time of the next slot of any schedule."""
        work: list[tuple[Schedule, Due]] = []
        upcoming = math.inf
        for schedule in await self._store.enabled():
            try:
                expression = parse(schedule.expression, schedule.timezone)
            except PyfaasError as exc:  # stored before a rule changed: leave it be, say why
                log.error("schedule %s cannot run: %s", schedule.id, exc.message)
                continue
            decision = due(
                expression, schedule, now, grace_s=self.grace_s, started_at=self.started_at
            )
            if decision is not None:
                work.append((schedule, decision))
            nxt = expression.next_after(max(now, schedule.handled_until), schedule.anchor)
            if nxt is not None:
                upcoming = min(upcoming, nxt)
        if work:
            # Submitted together, the events share one group commit.
            handled = await asyncio.gather(*(self._fire(s, d) for s, d in work))
            await self._store.handled([h for h in handled if h is not None])
        return upcoming

    async def _fire(self, schedule: Schedule, decision: Due) -> Handled | None:
        if decision.missed:
            log.info(
                "schedule %s of %s missed slots up to %s: %s",
                schedule.id,
                schedule.function,
                slot_time(decision.until),
                "one catch-up run" if decision.fire is not None else "skipped",
            )
        if decision.fire is None:
            return Handled(schedule.id, decision.until)
        try:
            fv = await self._resolve(schedule.function)
        except FunctionNotFound:
            return None  # deleted meanwhile: its schedules went with it
        if schedule.input is not None:
            payload = schedule.input.encode()
        else:
            payload = json.dumps(scheduled_event(schedule, fv, decision.fire)).encode()
        request_id, new = await self._enqueuer.submit(
            NewEvent(
                request_id=new_request_id(),
                function=schedule.function,
                payload=payload,
                idempotency_key=idempotency_key(schedule, decision.fire),
                enqueued_at=time.time(),
                qualifier=schedule.qualifier,
            )
        )
        if new:
            self.queued += 1
        else:
            self.already_queued += 1
        return Handled(schedule.id, decision.until, decision.fire, request_id)
