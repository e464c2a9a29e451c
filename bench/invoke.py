"""Warm sync invoke of a no-op handler over HTTP, side by side with baselines and peers.

    .venv/bin/python bench/invoke.py [--requests 3000] [--seconds 5] [--concurrency 1,32,128]

Measures, one after the other on this machine, each in its own process tree:
  pyfaas               POST /v1/functions/noop/invoke on a real server (SQLite, local workers)
  pyfaas, metering off the same with PYFAAS_METERING=false (what metering costs)
  uvicorn hello        a plain ASGI hello-world with the same uvicorn settings (HTTP ceiling)
  processpool          ProcessPoolExecutor round trips of a no-op, from this process (IPC ceiling)
  ray serve            Ray Serve's HTTP proxy in front of one no-op deployment
  functions-framework  Google's functions-framework under its default server (gunicorn)
At concurrency 1: ``--requests`` calls on one keep-alive connection; at every other
concurrency N: N connections for ``--seconds`` (bench/loadgen.py). The load generator shares
the machine's cores with the target, the same for every target: compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import peers
from loadgen import Figures, build_request, latency, throughput
from servers import HOST, NOOP_HANDLER, ForeignLoad, PyfaasServer, rss_mb, wait_quiet

PEERS = ("ray serve", "functions-framework")
METERING_OFF = "pyfaas, metering off"


@dataclass(frozen=True)
class InvokeSettings:
    requests: int = 3000
    seconds: float = 5.0
    concurrencies: tuple[int, ...] = (1, 32, 128)


@dataclass
class InvokeReport:
    """Figures per target and concurrency, plus what was seen of pyfaas's processes."""

    settings: InvokeSettings
    rows: dict[str, dict[int, Figures]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    busy_before: dict[str, float] = field(default_factory=dict)  # machine CPU busy, 0-1
    # (target, concurrency) -> share of the machine's CPU other people's processes used
    foreign: dict[tuple[str, int], float] = field(default_factory=dict)
    pyfaas_notes: dict[str, float] = field(default_factory=dict)


def measure_http(report: InvokeReport, name: str, port: int, path: str) -> dict[int, Figures]:
    """The same load on one HTTP target at every concurrency of the report's settings."""
    settings = report.settings
    request = build_request(HOST, port, path, b"{}", {})
    figures = {}
    for concurrency in settings.concurrencies:
        with ForeignLoad() as others:
            if concurrency == 1:
                figures[1] = latency(HOST, port, request, settings.requests)
            else:
                figures[concurrency] = throughput(
                    HOST, port, request, concurrency, settings.seconds
                )
        report.foreign[name, concurrency] = others.fraction
    return figures


def _quiet(report: InvokeReport, name: str) -> None:
    print(f"  {name} ...", file=sys.stderr, flush=True)
    report.busy_before[name] = wait_quiet()


def _measure_pyfaas_without_metering(report: InvokeReport) -> None:
    """The same server with metering off (PYFAAS_METERING=false): what usage records and
    per-invocation metrics cost (invocation logs are written either way)."""
    _quiet(report, METERING_OFF)
    env = {"PYFAAS_METERING": "false"}
    with tempfile.TemporaryDirectory() as tmp, PyfaasServer(Path(tmp), env) as server:
        server.deploy("noop", NOOP_HANDLER)
        report.rows[METERING_OFF] = measure_http(
            report, METERING_OFF, server.port, "/v1/functions/noop/invoke"
        )


def _measure_pyfaas(report: InvokeReport) -> None:
    _quiet(report, "pyfaas")
    with tempfile.TemporaryDirectory() as tmp, PyfaasServer(Path(tmp)) as server:
        server.deploy("noop", NOOP_HANDLER)
        report.rows["pyfaas"] = measure_http(
            report, "pyfaas", server.port, "/v1/functions/noop/invoke"
        )
        workers = server.workers()
        report.pyfaas_notes["server RSS after the run, MB"] = rss_mb(server.pid)
        report.pyfaas_notes["worker processes after the run"] = len(workers)
        if workers:
            report.pyfaas_notes["one idle worker's RSS, MB"] = min(rss_mb(w) for w in workers)
        stats = httpx.get(f"{server.url}/v1/functions/noop", timeout=30).json()["stats"]
        for key in ("invocations", "cold_starts", "timeouts", "crashes"):
            report.pyfaas_notes[f"{key} (server's count)"] = stats[key]


def _measure_peer(
    report: InvokeReport, name: str, start: Callable[[], AbstractContextManager[int]]
) -> None:
    _quiet(report, name)
    try:
        with start() as port:
            report.rows[name] = measure_http(report, name, port, "/")
    except Exception as exc:  # a peer that will not run is reported, not fatal
        report.failures[name] = f"{type(exc).__name__}: {exc}"


def run(settings: InvokeSettings) -> InvokeReport:
    """Measure every target, one after the other."""
    report = InvokeReport(settings)
    _measure_pyfaas(report)
    _measure_pyfaas_without_metering(report)
    _measure_peer(report, "uvicorn hello", peers.uvicorn_hello)
    _quiet(report, "processpool")
    with ForeignLoad() as others:
        report.rows["processpool"] = peers.processpool(
            settings.requests, list(settings.concurrencies), settings.seconds
        )
    for c in settings.concurrencies:
        report.foreign["processpool", c] = others.fraction
    _measure_peer(report, "ray serve", peers.ray_serve)
    _measure_peer(report, "functions-framework", peers.functions_framework)
    return report


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def table(report: InvokeReport) -> Iterator[str]:
    """The markdown table: one row per concurrency and target, ratios against pyfaas."""
    s = report.settings
    yield (
        f"{machine()}; c=1: {s.requests} requests on one connection, other c: {s.seconds:g} s each"
    )
    yield ""
    yield (
        "| c | target | req/s | p50 ms | p99 ms | pyfaas p50 / this | pyfaas req/s / this "
        "| others' CPU |"
    )
    yield "|---|---|---|---|---|---|---|---|"
    ours = report.rows.get("pyfaas", {})
    for c in s.concurrencies:
        for name, rows in report.rows.items():
            f = rows[c]
            p50_ratio = f"{ours[c].p50_ms / f.p50_ms:.2f}x" if c in ours else "-"
            rate_ratio = f"{ours[c].per_second / f.per_second:.2f}x" if c in ours else "-"
            yield (
                f"| {c} | {name} | {f.per_second:,.0f} | {f.p50_ms:.3f} | {f.p99_ms:.3f} "
                f"| {p50_ratio} | {rate_ratio} | {report.foreign.get((name, c), 0):.0%} |"
            )
    for name, why in report.failures.items():
        yield f"| - | {name} | did not run: {why} | | | | | |"
    yield ""
    yield (
        "others' CPU: share of the machine's CPU used meanwhile by processes outside this "
        "benchmark (other people's work on the shared machine); near 0% means a clean figure."
    )
    yield ""
    noisy = {name: busy for name, busy in report.busy_before.items() if busy >= 0.15}
    for name, busy in noisy.items():
        yield f"- **the machine was {busy:.0%} busy with other work before {name} started**"
    for key, value in report.pyfaas_notes.items():
        yield f"- pyfaas {key}: {value:,.1f}".removesuffix(".0")


def parse_settings(argv: list[str] | None = None, doc: str | None = __doc__) -> InvokeSettings:
    """--requests, --seconds, --concurrency; ``doc``'s first line describes the script."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="samples at concurrency 1")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration at each other c")
    parser.add_argument("--concurrency", default="1,32,128", help="comma-separated levels")
    args = parser.parse_args(argv)
    levels = tuple(int(c) for c in args.concurrency.split(","))
    return InvokeSettings(args.requests, args.seconds, levels)


def main() -> None:
    report = run(parse_settings())
    print()
    print("\n".join(table(report)))


if __name__ == "__main__":
    main()
