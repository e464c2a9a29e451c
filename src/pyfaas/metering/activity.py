"""Recent activity of functions, from their usage records: invocations, error rate,
duration percentiles, average concurrency and cold starts, in total or over time."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pyfaas.metering.writer import UsageWriter
from pyfaas.model import InvalidRequest
from pyfaas.store.activity import DURATION_BOUNDS_US, ActivityStore, ActivityTotals

# The spans a chart may show and the width of its buckets.
SPANS = {"1h": (3600, 60), "6h": (6 * 3600, 300), "24h": (86400, 3600), "7d": (7 * 86400, 86400)}


@dataclass(frozen=True, slots=True)
class Activity:
    """What ran in one span (a function's last hour, or one bucket of a chart).

    Durations are milliseconds; percentiles are interpolated from a histogram (exact for
    one record, within its bucket of the 1-2-5 ladder otherwise); ``concurrency`` is the
    average number of invocations running (busy time / span)."""

    invocations: int = 0
    errors: int = 0
    cold_starts: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    concurrency: float = 0.0

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.invocations if self.invocations else None


@dataclass(frozen=True, slots=True)
class ActivityPoint:
    """One bucket of a chart: its start (epoch seconds) and what ran in it."""

    at: float
    activity: Activity


def quantile(q: float, totals: ActivityTotals) -> float | None:
    """The ``q``-quantile (0-1) of the durations, in microseconds; None without records."""
    n = totals.invocations
    if n == 0:
        return None
    rank = q * n
    lower_bound, lower_count = 0, 0
    for bound, count in zip(DURATION_BOUNDS_US, totals.under, strict=True):
        if count >= rank:
            inside = count - lower_count
            fraction = (rank - lower_count) / inside if inside else 1.0
            value = lower_bound + (bound - lower_bound) * fraction
            break
        lower_bound, lower_count = bound, count
    else:
        value = float(totals.max_us)
    return float(min(max(value, totals.min_us), totals.max_us))


def activity_of(totals: ActivityTotals, span_s: float) -> Activity:
    p50, p99 = quantile(0.5, totals), quantile(0.99, totals)
    return Activity(
        invocations=totals.invocations,
        errors=totals.errors,
        cold_starts=totals.cold_starts,
        p50_ms=None if p50 is None else p50 / 1000,
        p99_ms=None if p99 is None else p99 / 1000,
        concurrency=totals.busy_us / 1e6 / span_s,
    )


class ActivityService:
    """Reads activity from the usage records, after writing what is pending (what ran just
    now counts)."""

    def __init__(self, store: ActivityStore, writer: UsageWriter) -> None:
        self._store = store
        self._writer = writer

    async def recent(self, span_s: float = 3600) -> dict[str, Activity]:
        """Each function with records in the last ``span_s`` seconds (one query)."""
        await self._writer.flush()
        end = time.time()
        rows = await self._store.by_function(start=end - span_s, end=end)
        return {t.function or "": activity_of(t, span_s) for t in rows}

    async def series(self, function: str, span: str = "1h") -> list[ActivityPoint]:
        """``function``'s activity over the last ``span`` (1h, 6h, 24h, 7d), one point per
        bucket (every bucket, empty ones too), oldest first. Raises InvalidRequest
        (invalid_range) for another span."""
        if span not in SPANS:
            raise InvalidRequest(
                f"range {span!r} is not one of {', '.join(SPANS)}", code="invalid_range"
            )
        span_s, step_s = SPANS[span]
        await self._writer.flush()
        now = time.time()
        first = (int(now - span_s) // step_s + 1) * step_s
        rows = await self._store.over_time(function, start=first, end=now + 1, step_s=step_s)
        found = {t.bucket: t for t in rows}
        points = []
        for at in range(first, int(now) + 1, step_s):
            totals = found.get(float(at))
            # The current bucket has only run for part of its width.
            width = min(step_s, max(1.0, now - at))
            activity = Activity() if totals is None else activity_of(totals, width)
            points.append(ActivityPoint(float(at), activity))
        return points
