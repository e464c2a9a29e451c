"""What ``/metrics`` shows: the invocation metrics, and gauges read from the scaler and the
async queue when scraped."""

from __future__ import annotations

import time

from pyfaas.metering import UsageWriter
from pyfaas.scaling import Scaler
from pyfaas.store.events import EventStore
from pyfaas.telemetry.metrics import FunctionGauges, InvocationMetrics


class MetricsService:
    """Renders the Prometheus exposition text (one store query per scrape)."""

    def __init__(
        self,
        metrics: InvocationMetrics,
        scaler: Scaler,
        events: EventStore,
        usage: UsageWriter | None,
    ) -> None:
        self._metrics = metrics
        self._scaler = scaler
        self._events = events
        self._usage = usage

    async def render(self) -> bytes:
        if self._usage is not None:
            await self._usage.flush()  # counters include every invocation finished so far
        backlog = await self._events.backlog()
        now = time.time()
        gauges = []
        for name in sorted(set(self._scaler.functions()) | set(backlog)):
            stats = self._scaler.stats(name)
            depth, oldest, dead = backlog.get(name, (0, None, 0))
            gauges.append(
                FunctionGauges(
                    function=name,
                    in_flight=stats.in_flight,
                    workers_busy=stats.workers_busy,
                    workers_idle=stats.workers_idle,
                    throttles=stats.throttles,
                    queue_depth=depth,
                    queue_oldest_age_s=0.0 if oldest is None else max(0.0, now - oldest),
                    dead_letters=dead,
                )
            )
        return self._metrics.render(gauges)
