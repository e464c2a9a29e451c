"""Prometheus metrics: per-invocation counters and histograms fed from the usage records,
and gauges of what runs and waits right now, read when scraped."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from pyfaas.model import UsageRecord
from pyfaas.model.usage import SUCCESS

# Handler durations: a no-op runs in tens of microseconds, a timeout in up to 900 s.
DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
    900,
)  # fmt: skip
INIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True, slots=True)
class FunctionGauges:
    """One function right now: calls in flight, workers, throttles so far, async backlog."""

    function: str
    in_flight: int = 0
    workers_busy: int = 0
    workers_idle: int = 0
    throttles: int = 0
    queue_depth: int = 0  # accepted async events not finished (queued, retry pending, running)
    queue_oldest_age_s: float = 0.0  # age of the oldest of those
    dead_letters: int = 0


class _Gauges(Collector):
    """Yields the gauges of the snapshot handed to :meth:`InvocationMetrics.render`."""

    def __init__(self) -> None:
        self.snapshot: Sequence[FunctionGauges] = ()

    def collect(self) -> Iterator[Metric]:
        label = ["function"]
        concurrency = GaugeMetricFamily(
            "pyfaas_concurrent_executions", "Invocations in flight", labels=label
        )
        workers = GaugeMetricFamily(
            "pyfaas_workers", "Worker processes, busy or idle", labels=["function", "state"]
        )
        throttles = CounterMetricFamily(
            "pyfaas_throttles", "Invocations refused for want of concurrency", labels=label
        )
        depth = GaugeMetricFamily(
            "pyfaas_async_queue_depth",
            "Async events accepted and not finished (queued, retry pending, running)",
            labels=label,
        )
        age = GaugeMetricFamily(
            "pyfaas_async_queue_oldest_age_seconds",
            "Age of the oldest async event not finished",
            labels=label,
        )
        dead = GaugeMetricFamily(
            "pyfaas_dead_letter_queue_size", "Async events in the dead-letter queue", labels=label
        )
        for g in self.snapshot:
            name = [g.function]
            concurrency.add_metric(name, g.in_flight)
            workers.add_metric([g.function, "busy"], g.workers_busy)
            workers.add_metric([g.function, "idle"], g.workers_idle)
            throttles.add_metric(name, g.throttles)
            depth.add_metric(name, g.queue_depth)
            age.add_metric(name, g.queue_oldest_age_s)
            dead.add_metric(name, g.dead_letters)
        yield from (concurrency, workers, throttles, depth, age, dead)


class _BucketCounts(Collector):
    """One histogram per function, counted a batch at a time: a bisect and an addition per
    observation (prometheus_client's Histogram takes a lock and walks the buckets for
    each). Exposed as Histogram would be: ``_bucket`` (cumulative, ``le``), ``_count``,
    ``_sum``."""

    def __init__(self, name: str, documentation: str, bounds: Sequence[float]) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = tuple(bounds)
        self._les = [floatToGoString(b) for b in (*self._bounds, math.inf)]  # type: ignore[no-untyped-call]
        self._counts: dict[str, list[int]] = {}  # per bucket, not cumulative; last: +Inf
        self._sums: dict[str, float] = {}

    def observe(self, function: str, values: Iterable[float]) -> None:
        counts = self._counts.get(function)
        if counts is None:
            counts = self._counts[function] = [0] * len(self._les)
            self._sums[function] = 0.0
        bounds, total = self._bounds, self._sums[function]
        for value in values:
            counts[bisect_left(bounds, value)] += 1  # the first bucket with value <= le
            total += value
        self._sums[function] = total

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=["function"])
        for function, counts in self._counts.items():
            family.add_metric(
                [function],
                list(zip(self._les, accumulate(counts), strict=True)),
                self._sums[function],
            )
        yield family


class InvocationMetrics:
    """The server's Prometheus registry (its own, not the process-global one).

    Per-invocation metrics are fed by :meth:`observe` with each batch of usage records,
    off the invoke hot path; gauges come from the snapshot given to :meth:`render`.
    """

    def __init__(self) -> None:
        # A "_created" gauge beside every counter and histogram would double the output
        # for a start time nobody graphs (a process-wide switch of prometheus_client).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._invocations = Counter(
            "pyfaas_invocations", "Invocations that ran, by outcome",
            ["function", "outcome"], registry=r,
        )  # fmt: skip
        self._errors = Counter(
            "pyfaas_errors", "Invocations that did not succeed (error, timeout, crash)",
            ["function"], registry=r,
        )  # fmt: skip
        self._duration = _BucketCounts(
            "pyfaas_invocation_duration_seconds", "Handler run time", DURATION_BUCKETS
        )
        r.register(self._duration)
        self._cold_starts = Counter(
            "pyfaas_cold_starts", "Invocations that waited for a new worker", ["function"],
            registry=r,
        )  # fmt: skip
        self._init = _BucketCounts(
            "pyfaas_init_duration_seconds",
            "Cold start wait (a worker made and initialized)",
            INIT_BUCKETS,
        )
        r.register(self._init)
        self._billed = Counter(
            "pyfaas_billed_duration_seconds", "Billed duration (whole ms, rounded up)",
            ["function"], registry=r,
        )  # fmt: skip
        self._cpu = Counter(
            "pyfaas_cpu_seconds", "Worker CPU time (user+system) during invocations",
            ["function"], registry=r,
        )  # fmt: skip
        self._gauges = _Gauges()
        r.register(self._gauges)

    def observe(self, records: Sequence[UsageRecord]) -> None:
        """Count a batch of usage records (a UsageListener): counters move once per
        function and batch, histograms once per record."""
        by_function: dict[str, list[UsageRecord]] = {}
        for rec in records:
            by_function.setdefault(rec.function, []).append(rec)
        for fn, recs in by_function.items():
            outcomes: dict[str, int] = {}
            billed_ms = cpu_us = 0
            inits = []
            for rec in recs:
                outcomes[rec.outcome] = outcomes.get(rec.outcome, 0) + 1
                billed_ms += rec.billed_ms
                cpu_us += rec.cpu_us or 0
                if rec.init_us is not None:
                    inits.append(rec.init_us / 1e6)
            self._duration.observe(fn, [rec.duration_us / 1e6 for rec in recs])
            self._init.observe(fn, inits)
            cold = len(inits)
            for outcome, count in outcomes.items():
                self._invocations.labels(fn, outcome).inc(count)
            if failed := len(recs) - outcomes.get(SUCCESS, 0):
                self._errors.labels(fn).inc(failed)
            self._billed.labels(fn).inc(billed_ms / 1000)
            self._cpu.labels(fn).inc(cpu_us / 1e6)
            if cold:
                self._cold_starts.labels(fn).inc(cold)

    def render(self, snapshot: Sequence[FunctionGauges]) -> bytes:
        """The exposition text of every metric, with ``snapshot`` as the gauges."""
        self._gauges.snapshot = snapshot
        try:
            return generate_latest(self.registry)
        finally:
            self._gauges.snapshot = ()
