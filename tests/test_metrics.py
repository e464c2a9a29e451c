"""``/metrics``: Prometheus text that its own parser reads, with counters that move."""

from __future__ import annotations

import threading

import httpx
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
