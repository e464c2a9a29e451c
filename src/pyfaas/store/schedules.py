"""Schedules of functions: create, read, change, delete, and what the scheduler fired."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from pyfaas.model import FunctionNotFound
from pyfaas.model.schedules import Schedule
from pyfaas.store.engine import Transactions
from pyfaas.store.tables import schedules

_s = schedules.c
_ONE = sa.select(schedules).where(_s.function == sa.bindparam("fn"), _s.id == sa.bindparam("sid"))
_OF_FUNCTION = sa.select(schedules).where(_s.function == sa.bindparam("fn")).order_by(_s.created_at)
_ENABLED = sa.select(schedules).where(_s.enabled.is_(True))
# Only ever forward: two servers handling the same slot write the same values once.
_HANDLED = (
    schedules.update()
    .where(_s.id == sa.bindparam("sid"), _s.handled_until < sa.bindparam("until"))
    .values(handled_until=sa.bindparam("until"))
)


@dataclass(frozen=True, slots=True)
class Handled:
    """The scheduler dealt with every slot of ``schedule_id`` up to ``until``: it fired the
    one at ``fired_at`` (as ``request_id``), or none (``fired_at`` None: skipped)."""

    schedule_id: str
    until: float
    fired_at: float | None = None
    request_id: str | None = None


class ScheduleStore:
    """Queries on the schedules table. Every method is a coroutine; none blocks."""

    def __init__(self, engine: AsyncEngine, transactions: Transactions) -> None:
        self._engine = engine
        self._tx = transactions

    async def create(self, schedule: Schedule) -> None:
        """Insert ``schedule``. Raises FunctionNotFound if its function is gone (the foreign
        key decides, so a schedule never outlives a concurrent delete of its function)."""
        try:
            async with self._tx.begin() as conn:
                await conn.execute(schedules.insert(), _row(schedule))
        except sa.exc.IntegrityError:
            raise FunctionNotFound(schedule.function) from None

    async def get(self, function: str, schedule_id: str) -> Schedule | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(_ONE, {"fn": function, "sid": schedule_id})).first()
        return None if row is None else _schedule(row._mapping)

    async def list_for(self, function: str) -> list[Schedule]:
        """``function``'s schedules, oldest first."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_OF_FUNCTION, {"fn": function})).all()
        return [_schedule(r._mapping) for r in rows]

    async def enabled(self) -> list[Schedule]:
        """Every enabled schedule of every function."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_ENABLED)).all()
        return [_schedule(r._mapping) for r in rows]

    async def update(
        self, function: str, schedule_id: str, values: dict[str, Any]
    ) -> Schedule | None:
        """Change columns of one schedule; the schedule as it is now, None if there is none."""
        statement = (
            schedules.update()
            .where(_s.function == function, _s.id == schedule_id)
            .values(**values)
            .returning(*schedules.c)
        )
        async with self._tx.begin() as conn:
            row = (await conn.execute(statement)).first()
        return None if row is None else _schedule(row._mapping)

    async def delete(self, function: str, schedule_id: str) -> bool:
        async with self._tx.begin() as conn:
            result = await conn.execute(
                schedules.delete().where(_s.function == function, _s.id == schedule_id)
            )
        return bool(result.rowcount)

    async def handled(self, items: Sequence[Handled]) -> None:
        """Record what the scheduler did, all in one transaction."""
        if not items:
            return
        async with self._tx.begin() as conn:
            for item in items:
                values: dict[str, Any] = {"sid": item.schedule_id, "until": item.until}
                statement = _HANDLED
                if item.fired_at is not None:
                    statement = _HANDLED.values(
                        last_fired_at=item.fired_at, last_request_id=item.request_id
                    )
                await conn.execute(statement, values)


def _row(s: Schedule) -> dict[str, Any]:
    return {
        "id": s.id,
        "function": s.function,
        "expression": s.expression,
        "timezone": s.timezone,
        "input": s.input,
        "enabled": s.enabled,
        "missed_runs": s.missed_runs,
        "anchor": s.anchor,
        "handled_until": s.handled_until,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "last_fired_at": s.last_fired_at,
        "last_request_id": s.last_request_id,
        "qualifier": s.qualifier,
    }


def _schedule(row: sa.RowMapping) -> Schedule:
    return Schedule(
        id=row["id"],
        function=row["function"],
        expression=row["expression"],
        timezone=row["timezone"],
        input=row["input"],
        enabled=bool(row["enabled"]),
        missed_runs=row["missed_runs"],
        anchor=row["anchor"],
        handled_until=row["handled_until"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_fired_at=row["last_fired_at"],
        last_request_id=row["last_request_id"],
        qualifier=row["qualifier"],
    )
