"""Recent activity from the usage records: per-function sums and duration histograms over a
time range, or one function's over time, in buckets of a fixed width (minutes, hours).

Percentiles are not portable SQL (SQLite has none), so each query counts records under a
fixed ladder of duration bounds; callers interpolate percentiles from those counts, as
Prometheus's ``histogram_quantile`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from pyfaas.model.usage import SUCCESS
from pyfaas.store.tables import usage_records

_u = usage_records.c

# Upper bounds (microseconds) of the duration histogram: 1-2-5 steps from 100 us to 900 s.
DURATION_BOUNDS_US = (
    100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
    1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000, 50_000_000, 100_000_000,
    200_000_000, 500_000_000, 900_000_000,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ActivityTotals:
    """Sums over some usage records: of one function (``function``) or one time bucket
    (``bucket``: the bucket's start in seconds since the epoch).

    ``under`` counts the records with a duration at or under each of DURATION_BOUNDS_US
    (cumulative); ``busy_us`` is the sum of their durations."""

    function: str | None
    bucket: float | None
    invocations: int
    errors: int
    cold_starts: int
    busy_us: int
    min_us: int
    max_us: int
    under: tuple[int, ...]


def _sums() -> list[sa.ColumnElement[Any]]:
    errors = sa.func.sum(sa.case((_u.outcome == SUCCESS, 0), else_=1))
    return [
        sa.func.count(),
        sa.func.coalesce(errors, 0),
        sa.func.count(_u.init_us),
        sa.func.coalesce(sa.func.sum(_u.duration_us), 0),
        sa.func.coalesce(sa.func.min(_u.duration_us), 0),
        sa.func.coalesce(sa.func.max(_u.duration_us), 0),
        *(
            sa.func.coalesce(sa.func.sum(sa.case((_u.duration_us <= b, 1), else_=0)), 0)
            for b in DURATION_BOUNDS_US
        ),
    ]


def _totals(function: str | None, bucket: float | None, values: Any) -> ActivityTotals:
    n = [int(v) for v in values]
    return ActivityTotals(
        function=function,
        bucket=bucket,
        invocations=n[0],
        errors=n[1],
        cold_starts=n[2],
        busy_us=n[3],
        min_us=n[4],
        max_us=n[5],
        under=tuple(n[6:]),
    )


class ActivityStore:
    """Activity queries on usage_records; each is one statement. Coroutines; none blocks."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"

    async def by_function(self, *, start: float, end: float) -> list[ActivityTotals]:
        """One row per function with records started in [start, end), by name."""
        query = (
            sa.select(_u.function, *_sums())
            .where(_u.started_at >= start, _u.started_at < end)
            .group_by(_u.function)
            .order_by(_u.function)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_totals(r[0], None, r[1:]) for r in rows]

    async def over_time(
        self, function: str, *, start: float, end: float, step_s: int
    ) -> list[ActivityTotals]:
        """``function``'s records started in [start, end), one row per ``step_s``-wide
        bucket that has any (aligned to the epoch), oldest first."""
        bucket = self._floor(_u.started_at / step_s)
        query = (
            sa.select(bucket.label("bucket"), *_sums())
            .where(_u.function == function, _u.started_at >= start, _u.started_at < end)
            .group_by(bucket)
            .order_by(bucket)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_totals(function, float(int(r[0]) * step_s), r[1:]) for r in rows]

    def _floor(self, value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        # SQLite's CAST truncates (= floor for the positive times here); PostgreSQL's rounds.
        if self._sqlite:
            return sa.cast(value, sa.BigInteger)
        return sa.cast(sa.func.floor(value), sa.BigInteger)
