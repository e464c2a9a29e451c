"""Usage records: appended in batches, summed over a time range for reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from pyfaas.model import UsageRecord
from pyfaas.model.usage import CRASH, ERROR, SUCCESS, TIMEOUT
from pyfaas.store.bulk import BulkInsert
from pyfaas.store.engine import Transactions
from pyfaas.store.tables import usage_records

_u = usage_records.c
# A UsageRecord's fields in order, then the hour: a row is the record plus one value.
_INSERT = BulkInsert(usage_records, (*UsageRecord._fields, "hour"))
# On SQLite a row is the record as it is, and SQLite works out the hour (the epoch second
# floored, then divided: floor(started_at / 3600) exactly, started_at being positive).
_STARTED_AT = f"column{UsageRecord._fields.index('started_at') + 1}"
_INSERT_SQLITE = BulkInsert(
    usage_records, UsageRecord._fields, derived={"hour": f"CAST({_STARTED_AT} AS INTEGER) / 3600"}
)
BUCKETS = ("hour", "day")


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Sums over the usage records of one function and price plan (and, when asked, one
    version and one hour or day). ``bucket`` is an hour or day number since the epoch (UTC);
    ``gb_ms_mb`` the sum of billed ms x memory MB (GB-seconds x 1,024,000)."""

    function: str
    price_plan: str
    version: str | None
    bucket: int | None
    invocations: int
    successes: int
    errors: int
    timeouts: int
    crashes: int
    cold_starts: int
    duration_us: int
    billed_ms: int
    gb_ms_mb: int
    cpu_us: int
    init_us: int
    max_memory_mb: int


def _count(outcome: str) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((_u.outcome == outcome, 1), else_=0)), 0)


class UsageStore:
    """Queries on the usage_records table. Every method is a coroutine; none blocks."""

    def __init__(self, engine: AsyncEngine, transactions: Transactions) -> None:
        self._engine = engine
        self._tx = transactions

    async def append_usage(self, records: Sequence[UsageRecord]) -> None:
        """Store a batch of records in one transaction (one executemany)."""
        if not records:
            return
        if self._tx.sqlite:
            await self._tx.in_thread(lambda conn: _INSERT_SQLITE.run_sqlite(conn, records))
            return
        rows = [(*r, int(r.started_at // 3600)) for r in records]
        async with self._tx.begin() as conn:
            await _INSERT.run(conn, rows)

    async def usage_totals(
        self,
        *,
        start: float,
        end: float,
        function: str | None = None,
        by_version: bool = False,
        bucket: str | None = None,
    ) -> list[UsageTotals]:
        """Sums of the records started in [start, end), per function and price plan, and
        per version and per ``bucket`` ("hour" or "day") when asked; ordered by those."""
        keys: list[sa.ColumnElement[Any]] = [_u.function, _u.price_plan]
        version: sa.ColumnElement[Any] = _u.version if by_version else sa.null()
        when: sa.ColumnElement[Any] = sa.null()
        if bucket == "hour":
            when = _u.hour
        elif bucket == "day":
            when = _u.hour // 24
        elif bucket is not None:
            raise ValueError(f"bucket must be one of {BUCKETS}")
        if by_version:
            keys.append(_u.version)
        if bucket is not None:
            keys.append(when)
        query = (
            sa.select(
                _u.function,
                _u.price_plan,
                version.label("version"),
                when.label("bucket"),
                sa.func.count(),
                _count(SUCCESS),
                _count(ERROR),
                _count(TIMEOUT),
                _count(CRASH),
                sa.func.count(_u.init_us),
                sa.func.sum(_u.duration_us),
                sa.func.sum(_u.billed_ms),
                sa.func.sum(_u.billed_ms * _u.memory_mb),
                sa.func.coalesce(sa.func.sum(_u.cpu_us), 0),
                sa.func.coalesce(sa.func.sum(_u.init_us), 0),
                sa.func.max(_u.max_memory_mb),
            )
            .where(_u.started_at >= start, _u.started_at < end)
            .group_by(*keys)
            .order_by(*reversed(keys))
        )
        if function is not None:
            query = query.where(_u.function == function)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            UsageTotals(
                function=r[0],
                price_plan=r[1],
                version=r[2],
                bucket=None if r[3] is None else int(r[3]),
                invocations=int(r[4]),
                successes=int(r[5]),
                errors=int(r[6]),
                timeouts=int(r[7]),
                crashes=int(r[8]),
                cold_starts=int(r[9]),
                duration_us=int(r[10]),
                billed_ms=int(r[11]),
                gb_ms_mb=int(r[12]),
                cpu_us=int(r[13]),
                init_us=int(r[14]),
                max_memory_mb=int(r[15]),
            )
            for r in rows
        ]
