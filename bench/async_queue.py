"""Asynchronous invocations: durable enqueue throughput and end-to-end delivery.

    .venv/bin/python bench/async_queue.py [--seconds 5] [--events 5000] [--concurrency 32]

Measures, one after the other on this machine:
  enqueue              POST .../invoke with ``X-Invocation-Type: Event`` (202 after the event is
                       committed with fsync) from N keep-alive connections, to a function held
                       with reserved concurrency 0 so that nothing is delivered meanwhile; and
                       one connection's latency (p50 = the cost of one group commit)
  sqlite, 1 per fsync  the naive durable queue: one INSERT + COMMIT per event, WAL with
                       synchronous=FULL, in one thread (what group commit is measured against)
  sqlite, 32 per fsync the same with 32 events per commit (the storage ceiling of the batching)
  uvicorn hello        a plain ASGI hello-world at the same concurrency (the HTTP ceiling)
  delivery             ``--events`` events queued for a no-op function, then released: events/s
                       from the release until the last one succeeded; once on an empty queue and
                       once with the enqueue run's backlog (tens of thousands of events) still
                       queued for another, stopped function (it must not slow this one down)
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import peers
from loadgen import Figures, build_request, latency, send, throughput
from servers import HOST, NOOP_HANDLER, PyfaasServer, wait_quiet

ACCEPTED = b"HTTP/1.1 202"
EVENT = b'{"n": 1}'


@dataclass(frozen=True)
class AsyncSettings:
    seconds: float = 5.0
    events: int = 5000
    concurrency: int = 32
    latency_requests: int = 1000


@dataclass
class AsyncReport:
    settings: AsyncSettings
    enqueue: dict[str, Figures] = field(default_factory=dict)
    sqlite_per_second: dict[int, float] = field(default_factory=dict)  # batch -> events/s
    # label -> (events, seconds from release to the last success)
    delivery: dict[str, tuple[int, float]] = field(default_factory=dict)
    backlog: int = 0


def _event_request(port: int, function: str) -> bytes:
    path = f"/v1/functions/{function}/invoke"
    return build_request(HOST, port, path, EVENT, {"X-Invocation-Type": "Event"})


def _counts(server: PyfaasServer, function: str) -> dict[str, int]:
    body = httpx.get(f"{server.url}/v1/functions/{function}", timeout=30).json()
    counts: dict[str, int] = body["async_events"]
    return counts


def _hold(server: PyfaasServer, function: str, reserved: int | None) -> None:
    url = f"{server.url}/v1/functions/{function}"
    httpx.patch(url, json={"reserved_concurrency": reserved}, timeout=60).raise_for_status()


def _enqueue(server: PyfaasServer, function: str, n: int, concurrency: int) -> None:
    """Queue exactly ``n`` events (set-up for a delivery run, not a figure)."""
    send(HOST, server.port, _event_request(server.port, function), n, concurrency, ACCEPTED)


def _deliver(server: PyfaasServer, function: str, events: int, timeout_s: float = 600) -> float:
    """Release ``function`` (held with reserved concurrency 0) and return the seconds until
    all its ``events`` succeeded."""
    start = time.perf_counter()
    _hold(server, function, None)
    while True:
        counts = _counts(server, function)
        if counts.get("succeeded", 0) >= events:
            return time.perf_counter() - start
        if counts.get("failed", 0) or counts.get("dead", 0):
            raise RuntimeError(f"{function}: events failed during delivery: {counts}")
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError(f"{function}: not delivered in {timeout_s} s: {counts}")
        time.sleep(0.05)


def sqlite_commit_rate(batch: int, seconds: float, directory: Path) -> float:
    """Events/s of a plain durable SQLite queue committing ``batch`` events per fsync."""
    db = sqlite3.connect(directory / f"queue-{batch}.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE events (id TEXT PRIMARY KEY, payload BLOB, status TEXT)")
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO events VALUES (?, ?, 'queued')",
            [(uuid.uuid4().hex, EVENT) for _ in range(batch)],
        )
        db.execute("COMMIT")
        done += batch
    elapsed = time.perf_counter() - start
    db.close()
    return done / elapsed


def run(settings: AsyncSettings) -> AsyncReport:
    report = AsyncReport(settings)
    c = settings.concurrency
    wait_quiet()
    with tempfile.TemporaryDirectory() as tmp, PyfaasServer(Path(tmp) / "a") as server:
        server.deploy("noop", NOOP_HANDLER, reserved_concurrency=0)
        _enqueue(server, "noop", settings.events, c)
        report.delivery["empty queue otherwise"] = (
            settings.events,
            _deliver(server, "noop", settings.events),
        )
    wait_quiet()
    with tempfile.TemporaryDirectory() as tmp, PyfaasServer(Path(tmp) / "b") as server:
        server.deploy("stopped", NOOP_HANDLER, reserved_concurrency=0)
        server.deploy("noop", NOOP_HANDLER, reserved_concurrency=0)
        request = _event_request(server.port, "stopped")
        report.enqueue["1"] = latency(
            HOST, server.port, request, settings.latency_requests, expect=ACCEPTED
        )
        report.enqueue[str(c)] = throughput(
            HOST, server.port, request, c, settings.seconds, expect=ACCEPTED
        )
        report.backlog = _counts(server, "stopped").get("queued", 0)
        _enqueue(server, "noop", settings.events, c)
        wait_quiet()
        report.delivery[f"{report.backlog:,} events queued for a stopped function"] = (
            settings.events,
            _deliver(server, "noop", settings.events),
        )
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (1, 32):
            report.sqlite_per_second[batch] = sqlite_commit_rate(batch, settings.seconds, Path(tmp))
    wait_quiet()
    with peers.uvicorn_hello() as port:
        hello = build_request(HOST, port, "/", EVENT, {})
        report.enqueue["uvicorn hello"] = throughput(HOST, port, hello, c, settings.seconds)
    return report


def table(report: AsyncReport) -> Iterator[str]:
    c = report.settings.concurrency
    yield "| durable enqueue | events/s | p50 ms | p99 ms |"
    yield "|---|---|---|---|"
    one = report.enqueue["1"]
    yield f"| pyfaas, 1 connection | {one.per_second:,.0f} | {one.p50_ms:.2f} | {one.p99_ms:.2f} |"
    many = report.enqueue[str(c)]
    yield (
        f"| pyfaas, {c} connections | {many.per_second:,.0f} | {many.p50_ms:.2f} "
        f"| {many.p99_ms:.2f} |"
    )
    for batch, rate in report.sqlite_per_second.items():
        yield f"| sqlite, {batch} per fsync, 1 thread | {rate:,.0f} | | |"
    hello = report.enqueue["uvicorn hello"]
    yield (
        f"| uvicorn hello (not durable), {c} connections | {hello.per_second:,.0f} "
        f"| {hello.p50_ms:.2f} | {hello.p99_ms:.2f} |"
    )
    yield ""
    yield "| delivery of a no-op handler | events | seconds | events/s |"
    yield "|---|---|---|---|"
    for label, (events, seconds) in report.delivery.items():
        yield f"| {label} | {events:,} | {seconds:.2f} | {events / seconds:,.0f} |"


def parse_settings(argv: list[str] | None = None) -> AsyncSettings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=AsyncSettings.seconds)
    parser.add_argument("--events", type=int, default=AsyncSettings.events)
    parser.add_argument("--concurrency", type=int, default=AsyncSettings.concurrency)
    args = parser.parse_args(argv)
    return AsyncSettings(seconds=args.seconds, events=args.events, concurrency=args.concurrency)


def main() -> None:
    for line in table(run(parse_settings())):
        print(line)


if __name__ == "__main__":
    main()
