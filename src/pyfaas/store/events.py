"""The durable queue of asynchronous invocations: enqueue, claim with a lease, finish, the DLQ.

Claiming is one ``UPDATE ... WHERE request_id IN (SELECT ... LIMIT n) RETURNING``: atomic on
SQLite (one writer at a time) and, with ``FOR UPDATE SKIP LOCKED`` in the sub-select, safe for
several servers sharing one PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from pyfaas.model import AsyncEvent
from pyfaas.model.events import DEAD, FAILED, QUEUED, RUNNING, SUCCEEDED
from pyfaas.store.engine import Transactions
from pyfaas.store.tables import async_events

_e = async_events.c
# Events waiting for an attempt. Spelled exactly as the predicate of the partial index
# ix_async_events_waiting (function, next_attempt_at), so that both SQLite and PostgreSQL
# see the index applies: a query on it never reads a function's finished events, nor
# another function's backlog.
WAITING_SQL = f"status IN ('{QUEUED}', '{FAILED}')"
_WAITING = sa.text(WAITING_SQL)
_LEASE_EXPIRED = sa.and_(_e.status == RUNNING, _e.lease_until < sa.bindparam("now"))

# Each function with waiting events and its earliest next attempt, by a loose index scan:
# one index seek per function, whatever the depth of the queues. (Without statistics,
# SQLite's planner would pick the status index and read every waiting row: told which.)
_WAITING_FUNCTIONS = """
WITH RECURSIVE fs(name) AS (
    SELECT MIN(function) FROM async_events {hint} WHERE {waiting}
    UNION ALL
    SELECT (SELECT MIN(function) FROM async_events {hint} WHERE {waiting} AND function > fs.name)
    FROM fs WHERE fs.name IS NOT NULL
)
SELECT name, (SELECT MIN(next_attempt_at) FROM async_events {hint}
              WHERE {waiting} AND function = fs.name)
FROM fs WHERE name IS NOT NULL
"""


@dataclass(frozen=True, slots=True)
class NewEvent:
    request_id: str
    function: str
    payload: bytes
    idempotency_key: str | None
    enqueued_at: float
    qualifier: str | None = None  # the version or alias invoked; None: $LATEST


_PLAIN_VALUES = {"status", "updated_at", "lease_until", "leased_by"}


@dataclass(frozen=True, slots=True)
class Settlement:
    """How one delivery ended. ``failed``: a function error, timeout or crash (counts toward
    retries); ``uncount_attempt``: it never reached the function (throttled, too old)."""

    request_id: str
    owner: str
    status: str
    now: float
    next_attempt_at: float | None = None
    failed: bool = False
    uncount_attempt: bool = False
    last_error: str | None = None
    condition: str | None = None
    result: bytes | None = None  # a success's result, stored after the status

    @property
    def plain_success(self) -> bool:
        """Succeeded with nothing else to record: settled together with others alike."""
        return self.status == SUCCEEDED and self.values().keys() == _PLAIN_VALUES

    def values(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "status": self.status,
            "updated_at": self.now,
            "lease_until": None,
            "leased_by": None,
        }
        if self.next_attempt_at is not None:
            values["next_attempt_at"] = self.next_attempt_at
        if self.failed:
            values["failures"] = _e.failures + 1
        if self.uncount_attempt:
            values["attempts"] = _e.attempts - 1
        if self.last_error is not None:
            values["last_error"] = self.last_error
        if self.condition is not None:
            values["condition"] = self.condition
        return values


class EventStore:
    """Queries on the async_events table. Every method is a coroutine; none blocks."""

    def __init__(self, engine: AsyncEngine, transactions: Transactions) -> None:
        self._engine = engine
        self._tx = transactions
        dialect = sqlite if engine.dialect.name == "sqlite" else postgresql
        self._insert = dialect.insert(async_events).on_conflict_do_nothing()
        self._skip_locked = engine.dialect.name == "postgresql"
        self._store_result = (
            async_events.update()
            .where(_e.request_id == sa.bindparam("b_request_id"))
            .values(result=sa.bindparam("b_result"))
        )
        hint = "INDEXED BY ix_async_events_waiting" if dialect is sqlite else ""
        self._waiting_functions = sa.text(
            _WAITING_FUNCTIONS.format(hint=hint, waiting=WAITING_SQL)
        ).columns(sa.column("name", sa.String), sa.column("due", sa.Float))

    async def enqueue(self, events: Sequence[NewEvent]) -> list[tuple[str, bool]]:
        """Store ``events`` in one transaction (one commit, one fsync, for the whole batch).

        Returns, per event, the request id it is known by and whether it was new: an event
        whose (function, idempotency key) was accepted before gets the earlier request id.
        """
        rows = [
            {
                "request_id": e.request_id,
                "function": e.function,
                "payload": e.payload,
                "status": QUEUED,
                "attempts": 0,
                "failures": 0,
                "enqueued_at": e.enqueued_at,
                "updated_at": e.enqueued_at,
                "next_attempt_at": e.enqueued_at,
                "idempotency_key": e.idempotency_key,
                "qualifier": e.qualifier,
            }
            for e in events
        ]
        keyed = [(e.function, e.idempotency_key) for e in events if e.idempotency_key]
        async with self._tx.begin() as conn:
            await conn.execute(self._insert, rows)
            known: dict[tuple[str, str], str] = {}
            if keyed:
                found = await conn.execute(
                    sa.select(_e.function, _e.idempotency_key, _e.request_id).where(
                        sa.tuple_(_e.function, _e.idempotency_key).in_(keyed)
                    )
                )
                known = {(f, k): rid for f, k, rid in found.all()}
        out = []
        for e in events:
            if e.idempotency_key:
                stored = known[(e.function, e.idempotency_key)]
                out.append((stored, stored == e.request_id))
            else:
                out.append((e.request_id, True))
        return out

    async def claim(
        self,
        *,
        now: float,
        limit: int,
        lease_s: float,
        owner: str,
        function: str,
        enqueued_before: float | None = None,
    ) -> list[AsyncEvent]:
        """Lease up to ``limit`` of ``function``'s due events (oldest due first; only those
        enqueued before ``enqueued_before`` if given), marking them running and counting an
        attempt."""
        # Deliveries whose server died first (rare, few), then the waiting, oldest due first.
        expired = sa.select(_e.request_id).where(_LEASE_EXPIRED, _e.function == function)
        waiting = sa.select(_e.request_id).where(
            _WAITING, _e.function == function, _e.next_attempt_at <= sa.bindparam("now")
        )
        if enqueued_before is not None:
            expired = expired.where(_e.enqueued_at < enqueued_before)
            waiting = waiting.where(_e.enqueued_at < enqueued_before)
        waiting = waiting.order_by(_e.next_attempt_at)
        rows: list[sa.Row[Any]] = []
        async with self._tx.begin(synced=False) as conn:
            for due in (expired, waiting):
                if len(rows) >= limit:
                    break
                due = due.limit(limit - len(rows))
                if self._skip_locked:
                    due = due.with_for_update(skip_locked=True)
                claim = (
                    async_events.update()
                    .where(_e.request_id.in_(due.scalar_subquery()))
                    .values(
                        status=RUNNING,
                        attempts=_e.attempts + 1,
                        lease_until=now + lease_s,
                        leased_by=owner,
                        updated_at=now,
                    )
                    .returning(*async_events.c)
                )
                rows += (await conn.execute(claim, {"now": now})).all()
        return sorted((_event(r._mapping) for r in rows), key=lambda e: e.next_attempt_at)

    async def due_functions(self, *, now: float, limit: int) -> list[str]:
        """Functions with events due now: those with a delivery whose lease expired first,
        then the one waiting longest."""
        async with self._engine.connect() as conn:
            waiting = (await conn.execute(self._waiting_functions)).all()
            expired = (
                await conn.execute(
                    sa.select(_e.function).where(_LEASE_EXPIRED).distinct(), {"now": now}
                )
            ).scalars()
            names = list(expired)
        seen = set(names)
        by_due = sorted((due, name) for name, due in waiting if due <= now)
        names += [name for _, name in by_due if name not in seen]
        return names[:limit]

    async def renew(self, request_ids: Collection[str], *, owner: str, until: float) -> None:
        """Extend the leases ``owner`` holds on ``request_ids`` (deliveries still running)."""
        if not request_ids:
            return
        async with self._tx.begin(synced=False) as conn:
            await conn.execute(
                async_events.update()
                .where(
                    _e.request_id.in_(list(request_ids)),
                    _e.leased_by == owner,
                    _e.status == RUNNING,
                )
                .values(lease_until=until)
            )

    async def settle(self, settlements: Sequence[Settlement]) -> list[bool]:
        """Record how deliveries ended, all in one transaction. Per settlement: False if its
        owner no longer held the lease (it expired and another server has the event now);
        nothing is changed for that one. Plain successes, the bulk of them, are one UPDATE
        per owner."""
        plain: dict[str, list[Settlement]] = {}
        kept: set[str] = set()
        async with self._tx.begin(synced=False) as conn:
            for item in settlements:
                if item.plain_success:
                    plain.setdefault(item.owner, []).append(item)
                    continue
                result = await conn.execute(
                    async_events.update()
                    .where(
                        _e.request_id == item.request_id,
                        _e.leased_by == item.owner,
                        _e.status == RUNNING,
                    )
                    .values(**item.values())
                )
                if result.rowcount:
                    kept.add(item.request_id)
            for owner, items in plain.items():
                result = await conn.execute(
                    async_events.update()
                    .where(
                        _e.request_id.in_([item.request_id for item in items]),
                        _e.leased_by == owner,
                        _e.status == RUNNING,
                    )
                    .values(**items[-1].values())
                    .returning(_e.request_id)
                )
                kept.update(result.scalars())
            results = [
                {"b_request_id": item.request_id, "b_result": item.result}
                for item in settlements
                if item.result is not None and item.request_id in kept
            ]
            if results:
                await conn.execute(self._store_result, results)
        return [item.request_id in kept for item in settlements]

    async def release_running(self, now: float) -> int:
        """Put every running event back in the queue (a SQLite server starting: it is the
        only one, so whatever was running died with the previous process)."""
        async with self._tx.begin() as conn:
            result = await conn.execute(
                async_events.update()
                .where(_e.status == RUNNING)
                .values(status=QUEUED, lease_until=None, leased_by=None, next_attempt_at=now)
            )
        return int(result.rowcount)

    async def get(self, request_id: str) -> AsyncEvent | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(sa.select(async_events).where(_e.request_id == request_id))
            ).first()
        return None if row is None else _event(row._mapping)

    async def list_events(
        self, *, status: str | None, function: str | None, limit: int
    ) -> list[AsyncEvent]:
        """Events, newest first, filtered by status and function."""
        query = sa.select(async_events)
        if status is not None:
            query = query.where(_e.status == status)
        if function is not None:
            query = query.where(_e.function == function)
        query = query.order_by(_e.updated_at.desc()).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_event(r._mapping) for r in rows]

    async def counts(self, function: str) -> dict[str, int]:
        """How many of ``function``'s events are in each status."""
        query = (
            sa.select(_e.status, sa.func.count()).where(_e.function == function).group_by(_e.status)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {status: int(n) for status, n in rows}

    async def redrive(
        self, *, request_ids: Collection[str] = (), function: str | None = None, now: float
    ) -> list[str]:
        """Move dead events (these ids, or all of ``function``'s, or all) back to the queue
        as new: attempts, failures and their age start over. Returns the ids moved."""
        match = [_e.status == DEAD]
        if request_ids:
            match.append(_e.request_id.in_(list(request_ids)))
        if function is not None:
            match.append(_e.function == function)
        async with self._tx.begin() as conn:
            rows = await conn.execute(
                async_events.update()
                .where(*match)
                .values(
                    status=QUEUED,
                    attempts=0,
                    failures=0,
                    enqueued_at=now,
                    updated_at=now,
                    next_attempt_at=now,
                    condition=None,
                )
                .returning(_e.request_id)
            )
            return [r[0] for r in rows.all()]

    async def backlog(self) -> dict[str, tuple[int, float | None, int]]:
        """Per function with any: (events not finished, the oldest one's enqueued_at, dead
        events). Not finished: queued, failed (retry pending) or running."""
        query = (
            sa.select(_e.function, _e.status, sa.func.count(), sa.func.min(_e.enqueued_at))
            .where(_e.status.in_([QUEUED, FAILED, RUNNING, DEAD]))
            .group_by(_e.function, _e.status)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        out: dict[str, tuple[int, float | None, int]] = {}
        for function, status, count, oldest in rows:
            depth, first, dead = out.get(function, (0, None, 0))
            if status == DEAD:
                dead += int(count)
            else:
                depth += int(count)
                first = oldest if first is None else min(first, oldest)
            out[function] = (depth, first, dead)
        return out


def _event(row: sa.RowMapping) -> AsyncEvent:
    return AsyncEvent(
        request_id=row["request_id"],
        function=row["function"],
        payload=bytes(row["payload"]),
        status=row["status"],
        attempts=row["attempts"],
        failures=row["failures"],
        enqueued_at=row["enqueued_at"],
        updated_at=row["updated_at"],
        next_attempt_at=row["next_attempt_at"],
        lease_until=row["lease_until"],
        idempotency_key=row["idempotency_key"],
        last_error=row["last_error"],
        condition=row["condition"],
        qualifier=row["qualifier"],
        result=None if row["result"] is None else bytes(row["result"]),
    )


__all__ = ["DEAD", "SUCCEEDED", "EventStore", "NewEvent", "Settlement"]
