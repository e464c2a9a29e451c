"""Prometheus metrics: per-invocation counters and histograms fed from the usage records,
and gauges of what runs and waits right now, read when scraped."""

from __future__ import annotations

import collections
import math
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, compress, groupby, repeat
from operator import is_not, itemgetter

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

_f = UsageRecord._fields
_FUNCTION = itemgetter(_f.index("function"))
_DURATION_US = itemgetter(_f.index("duration_us"))
_BILLED_MS = itemgetter(_f.index("billed_ms"))
_CPU_US = itemgetter(_f.index("cpu_us"))
_INIT_US = itemgetter(_f.index("init_us"))
_OUTCOME = itemgetter(_f.index("outcome"))


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
    """One histogram per function, counted a batch at a time, in C: each observation is a
    bisect in the bucket bounds, the bounds and the values in whole microseconds
    (prometheus_client's Histogram takes a lock and walks the buckets in Python for each).
    Exposed as Histogram would be: ``_bucket`` (cumulative, ``le`` in seconds), ``_count``,
    ``_sum`` (seconds)."""

    def __init__(self, name: str, documentation: str, bounds_s: Sequence[float]) -> None:
        self._name = name
        self._documentation = documentation
        # Every bound is a whole number of microseconds: v_us <= round(b * 1e6) exactly
        # when v_us / 1e6 <= b (the division is correctly rounded).
        self._bounds_us = tuple(round(b * 1e6) for b in bounds_s)
        self._les = [floatToGoString(b) for b in (*bounds_s, math.inf)]  # type: ignore[no-untyped-call]
        self._counts: dict[str, list[int]] = {}  # per bucket, not cumulative; last: +Inf
        self._sums_us: dict[str, int] = {}

    def observe_us(self, function: str, values_us: Sequence[int]) -> None:
        """Count ``function``'s observations, given in whole microseconds."""
        if not values_us:
            return
        counts = self._counts.get(function)
        if counts is None:
            counts = self._counts[function] = [0] * len(self._les)
            self._sums_us[function] = 0
        # The first bucket with value <= le; map and Counter loop in C.
        buckets = collections.Counter(map(bisect_left, repeat(self._bounds_us), values_us))
        for bucket, n in buckets.items():
            counts[bucket] += n
        self._sums_us[function] += sum(values_us)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=["function"])
        for function, counts in self._counts.items():
            family.add_metric(
                [function],
                list(zip(self._les, accumulate(counts), strict=True)),
                self._sums_us[function] / 1e6,
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
        function and batch. One record is made per invocation, so the fields are read with
        itemgetter and map (loops in C), not record by record in Python."""
        if not records:
            return
        functions = set(map(_FUNCTION, records))
        if len(functions) == 1:  # the usual batch: one function's calls
            self._observe_function(functions.pop(), records)
            return
        for fn, recs in groupby(sorted(records, key=_FUNCTION), _FUNCTION):
            self._observe_function(fn, list(recs))

    def _observe_function(self, fn: str, recs: Sequence[UsageRecord]) -> None:
        outcomes = collections.Counter(map(_OUTCOME, recs))
        self._duration.observe_us(fn, list(map(_DURATION_US, recs)))
        inits = list(map(_INIT_US, recs))
        inits = list(compress(inits, map(is_not, inits, repeat(None))))
        self._init.observe_us(fn, inits)
        for outcome, count in outcomes.items():
            self._invocations.labels(fn, outcome).inc(count)
        if failed := len(recs) - outcomes.get(SUCCESS, 0):
            self._errors.labels(fn).inc(failed)
        self._billed.labels(fn).inc(sum(map(_BILLED_MS, recs)) / 1000)
        # None (the worker died before saying) counts as nothing, as 0 does.
        self._cpu.labels(fn).inc(sum(filter(None, map(_CPU_US, recs))) / 1e6)
        if inits:
            self._cold_starts.labels(fn).inc(len(inits))

    def render(self, snapshot: Sequence[FunctionGauges]) -> bytes:
        """The exposition text of every metric, with ``snapshot`` as the gauges."""
        self._gauges.snapshot = snapshot
        try:
            return generate_latest(self.registry)
        finally:
            self._gauges.snapshot = ()
