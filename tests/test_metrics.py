"""``/metrics``: Prometheus text that its own parser reads, with counters that move."""

from __future__ import annotations

import threading

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import deploy, unique, wait_for

HANDLER = """
import os, time

def handler(event, context):
    mode = event.get("mode", "ok")
    if mode == "raise":
        raise RuntimeError("as asked")
    if mode == "crash":
        os._exit(3)
    if mode == "sleep":
        time.sleep(event["s"])
    return mode
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(api: httpx.Client) -> Samples:
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_invocations_errors_durations_and_cold_starts_are_counted(api: httpx.Client) -> None:
    name = unique("counted")
    deploy(api, name, {"handler.py": HANDLER})
    for event in ({}, {}, {}, {"mode": "raise"}, {"mode": "crash"}, {}):
        assert api.post(f"/v1/functions/{name}/invoke", json=event).status_code == 200
    m = scrape(api)
    assert value(m, "pyfaas_invocations_total", function=name, outcome="success") == 4
    assert value(m, "pyfaas_invocations_total", function=name, outcome="error") == 1
    assert value(m, "pyfaas_invocations_total", function=name, outcome="crash") == 1
    assert value(m, "pyfaas_errors_total", function=name) == 2
    assert value(m, "pyfaas_invocation_duration_seconds_count", function=name) == 6
    assert value(m, "pyfaas_invocation_duration_seconds_bucket", function=name, le="+Inf") == 6
    # The deploy left a warm worker; only the call after the crash started a new one.
    assert value(m, "pyfaas_cold_starts_total", function=name) == 1
    assert value(m, "pyfaas_init_duration_seconds_count", function=name) == 1
    assert value(m, "pyfaas_init_duration_seconds_sum", function=name) > 0
    assert value(m, "pyfaas_billed_duration_seconds_total", function=name) >= 0.006
    api.post(f"/v1/functions/{name}/invoke", json={})
    again = scrape(api)
    assert value(again, "pyfaas_invocations_total", function=name, outcome="success") == 5


def test_throttles_are_counted_per_function(api: httpx.Client) -> None:
    name = unique("throttled")
    deploy(api, name, {"handler.py": HANDLER}, reserved_concurrency=0)
    for _ in range(2):
        assert api.post(f"/v1/functions/{name}/invoke", json={}).status_code == 429
    m = scrape(api)
    assert value(m, "pyfaas_throttles_total", function=name) == 2
    assert value(m, "pyfaas_invocations_total", function=name, outcome="success") == 0


def test_concurrency_and_busy_workers_show_while_a_call_runs(api: httpx.Client) -> None:
    name = unique("busy")
    deploy(api, name, {"handler.py": HANDLER})
    call = threading.Thread(
        target=lambda: api.post(f"/v1/functions/{name}/invoke", json={"mode": "sleep", "s": 2})
    )
    call.start()
    try:
        wait_for(
            lambda: value(scrape(api), "pyfaas_concurrent_executions", function=name) == 1,
            timeout=5,
            what="one invocation in flight",
        )
        m = scrape(api)
        assert value(m, "pyfaas_workers", function=name, state="busy") == 1
    finally:
        call.join()
    m = scrape(api)
    assert value(m, "pyfaas_concurrent_executions", function=name) == 0
    assert value(m, "pyfaas_workers", function=name, state="idle") == 1


def test_async_queue_depth_age_and_dead_letters_are_gauged(api: httpx.Client) -> None:
    held, failing = unique("held"), unique("failing")
    # No concurrency: its events wait in the queue.
    deploy(api, held, {"handler.py": HANDLER}, reserved_concurrency=0)
    deploy(api, failing, {"handler.py": HANDLER}, maximum_retry_attempts=0)
    event = {"X-Invocation-Type": "Event"}
    for _ in range(2):
        assert api.post(f"/v1/functions/{held}/invoke", json={}, headers=event).status_code == 202
    dead_id = api.post(
        f"/v1/functions/{failing}/invoke", json={"mode": "raise"}, headers=event
    ).json()["request_id"]
    wait_for(
        lambda: api.get(f"/v1/invocations/{dead_id}").json()["status"] == "dead",
        what="the failing event in the dead-letter queue",
    )
    m = scrape(api)
    assert value(m, "pyfaas_async_queue_depth", function=held) == 2
    assert value(m, "pyfaas_async_queue_oldest_age_seconds", function=held) > 0
    assert value(m, "pyfaas_dead_letter_queue_size", function=held) == 0
    assert value(m, "pyfaas_dead_letter_queue_size", function=failing) == 1
    assert value(m, "pyfaas_async_queue_depth", function=failing) == 0


def test_a_batch_of_usage_records_counts_as_prometheus_client_would() -> None:
    """InvocationMetrics counts a batch of usage records in C (bisect, Counter): its
    histograms and counters must read exactly what prometheus_client's own Histogram and
    Counter give for the same observations, bucket edges and mixed functions included."""
    from prometheus_client import CollectorRegistry, Histogram

    from pyfaas.model import UsageRecord
    from pyfaas.telemetry.metrics import DURATION_BUCKETS, INIT_BUCKETS, InvocationMetrics

    edges_us = [round(b * 1e6) for b in DURATION_BUCKETS]
    durations = [1, 499, *edges_us, *(e + 1 for e in edges_us), 901_000_000, 0]
    records = [
        UsageRecord(
            function=("a", "b", "c")[n % 3],
            version="$LATEST",
            request_id=f"r{n}",
            started_at=1.0e9 + n,
            duration_us=d,
            billed_ms=max(1, -(-d // 1000)),
            memory_mb=128,
            max_memory_mb=20,
            cpu_us=None if n % 5 == 0 else n * 7,
            init_us=(None, 0, 1000, 2_500_000)[n % 4],
            outcome=("success", "error", "timeout", "crash", "success")[n % 5],
        )
        for n, d in enumerate(durations)
    ]
    metrics = InvocationMetrics()
    metrics.observe(records[:7])  # two batches: counts add up across batches
    metrics.observe(records[7:])

    reference = CollectorRegistry()
    duration = Histogram(
        "pyfaas_invocation_duration_seconds", "", ["function"], buckets=DURATION_BUCKETS,
        registry=reference,
    )  # fmt: skip
    init = Histogram(
        "pyfaas_init_duration_seconds", "", ["function"], buckets=INIT_BUCKETS,
        registry=reference,
    )  # fmt: skip
    for r in records:
        duration.labels(r.function).observe(r.duration_us / 1e6)
        if r.init_us is not None:
            init.labels(r.function).observe(r.init_us / 1e6)
    expected = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in reference.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render(()).decode())
        for s in family.samples
    }
    for key, want in expected.items():
        assert got[key] == pytest.approx(want, abs=1e-9), key

    def total(field: str, function: str, outcome: str | None = None) -> float:
        return sum(
            getattr(r, field) or 0
            for r in records
            if r.function == function and outcome in (None, r.outcome)
        )

    for fn in ("a", "b", "c"):
        mine = [r for r in records if r.function == fn]
        for outcome in ("success", "error", "timeout", "crash"):
            count = sum(r.outcome == outcome for r in mine)
            assert value(got, "pyfaas_invocations_total", function=fn, outcome=outcome) == count
        failed = sum(r.outcome != "success" for r in mine)
        assert value(got, "pyfaas_errors_total", function=fn) == failed
        cold = sum(r.init_us is not None for r in mine)
        assert value(got, "pyfaas_cold_starts_total", function=fn) == cold
        assert value(got, "pyfaas_billed_duration_seconds_total", function=fn) == pytest.approx(
            total("billed_ms", fn) / 1000
        )
        assert value(got, "pyfaas_cpu_seconds_total", function=fn) == pytest.approx(
            total("cpu_us", fn) / 1e6
        )
