"""Async invocations after acceptance: status, the dead-letter queue, redrive."""

from __future__ import annotations

import time

from pyfaas.events import Dispatcher
from pyfaas.model import AsyncEvent, InvalidRequest, NotFound
from pyfaas.model.events import DEAD, STATUSES
from pyfaas.store.events import EventStore


class EventService:
    """What the API offers about accepted async events."""

    def __init__(self, events: EventStore, dispatcher: Dispatcher) -> None:
        self._events = events
        self._dispatcher = dispatcher

    async def status(self, request_id: str) -> AsyncEvent:
        """Raises NotFound (code invocation_not_found)."""
        event = await self._events.get(request_id)
        if event is None:
            raise NotFound(
                f"no asynchronous invocation has request id {request_id!r}",
                code="invocation_not_found",
            )
        return event

    async def counts(self, function: str) -> dict[str, int]:
        """``function``'s async events by status (queued, running, ..., dead)."""
        return await self._events.counts(function)

    async def backlog(self) -> dict[str, tuple[int, float | None, int]]:
        """Per function with any: (events not finished, the oldest one's enqueued_at, dead
        events)."""
        return await self._events.backlog()

    async def list_events(
        self, *, status: str | None = None, function: str | None = None, limit: int = 100
    ) -> list[AsyncEvent]:
        if status is not None and status not in STATUSES:
            raise InvalidRequest(
                f"status {status!r} is not one of {', '.join(STATUSES)}", code="invalid_query"
            )
        return await self._events.list_events(status=status, function=function, limit=limit)

    async def dead_letter(self, request_id: str) -> AsyncEvent:
        """A dead event. Raises NotFound (code invocation_not_found) for others."""
        event = await self.status(request_id)
        if event.status != DEAD:
            raise NotFound(
                f"{request_id!r} is not in the dead-letter queue (its status is {event.status})",
                code="invocation_not_found",
            )
        return event

    async def redrive(
        self, *, request_ids: list[str] | None = None, function: str | None = None
    ) -> list[str]:
        """Queue dead events again as new (fresh retries and age): these ids, or all of
        ``function``'s, or (neither given) all. Returns the ids moved."""
        moved = await self._events.redrive(
            request_ids=request_ids or (), function=function, now=time.time()
        )
        if moved:
            self._dispatcher.wake()
        return moved
