"""Warm sync invoke of a no-op handler over HTTP, side by side with baselines and peers.

    .venv/bin/python bench/invoke.py [--requests 3000] [--seconds 5] [--concurrency 1,32,128]
                                     [--rounds 9] [--round-seconds 2] [--metering-only]

Measures, one after the other on this machine, each in its own process tree:
  pyfaas               POST /v1/functions/noop/invoke on a real server (SQLite, local workers)
  uvicorn hello        a plain ASGI hello-world with the same uvicorn settings (HTTP ceiling)
  processpool          ProcessPoolExecutor round trips of a no-op, from this process (IPC ceiling)
  ray serve            Ray Serve's HTTP proxy in front of one no-op deployment
  functions-framework  Google's functions-framework under its default server (gunicorn)
At concurrency 1: ``--requests`` calls on one keep-alive connection; at every other
concurrency N: N connections for ``--seconds`` (bench/loadgen.py). The load generator shares
the machine's cores with the target, the same for every target: compare the ratios.

What metering and invocation logs cost together: two servers run side by side, the default one
and one with PYFAAS_METERING=false and PYFAAS_INVOCATION_LOGS=false, and get ``--rounds``
short rounds each (``--round-seconds``; at c=1 ``--requests`` calls), interleaved on, off,
off, on, ... so that drift on a shared machine hits both alike; the medians are compared.
``--metering-only`` runs just that.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
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
from servers import HOST, NOOP_HANDLER, ForeignLoad, PyfaasServer, cpu_seconds, rss_mb, wait_quiet

PEERS = ("ray serve", "functions-framework")
METERING_ROUNDS = "pyfaas, metering and logs on vs off"
# What the "off" server turns off: usage records (and the Prometheus metrics fed from them)
# and the per-invocation log (START, output, END, REPORT).
TELEMETRY_OFF = {"PYFAAS_METERING": "false", "PYFAAS_INVOCATION_LOGS": "false"}


@dataclass(frozen=True)
class InvokeSettings:
    requests: int = 3000
    seconds: float = 5.0
    concurrencies: tuple[int, ...] = (1, 32, 128)
    rounds: int = 9  # per side, for the metering on/off comparison
    round_seconds: float = 2.0
    metering_only: bool = False


@dataclass
class MeteringCost:
    """Interleaved rounds at one concurrency: the default server (on) and the one with
    metering and invocation logs off."""

    on: list[Figures] = field(default_factory=list)
    off: list[Figures] = field(default_factory=list)
    # The server process's CPU (event loop and its threads) per invocation in each round, us:
    # much less moved by other people's load on the machine than the rates are.
    on_cpu_us: list[float] = field(default_factory=list)
    off_cpu_us: list[float] = field(default_factory=list)

    @staticmethod
    def median_rate(rounds: list[Figures]) -> float:
        return statistics.median(f.per_second for f in rounds)

    @staticmethod
    def median_p50(rounds: list[Figures]) -> float:
        return statistics.median(f.p50_ms for f in rounds)

    @property
    def cost(self) -> float:
        """The share of throughput lost with metering and logs on (median against median)."""
        return 1 - self.median_rate(self.on) / self.median_rate(self.off)

    @property
    def paired_cost(self) -> float:
        """The same from the rounds taken back to back: round i on against round i off (the
        ABBA order makes each pair adjacent in time), the median of those ratios. A machine
        whose speed drifts during the run moves both rounds of a pair alike."""
        ratios = [a.per_second / b.per_second for a, b in zip(self.on, self.off, strict=True)]
        return 1 - statistics.median(ratios)

    @property
    def cpu_cost(self) -> float:
        """The share of the server's CPU per invocation that metering and logs take."""
        on = statistics.median(self.on_cpu_us)
        return 1 - statistics.median(self.off_cpu_us) / on if on else 0.0


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
    metering: dict[int, MeteringCost] = field(default_factory=dict)  # by concurrency


def measure_once(
    settings: InvokeSettings, port: int, path: str, concurrency: int, seconds: float
) -> Figures:
    """One load on one HTTP target: ``settings.requests`` calls at c=1, else ``seconds``."""
    request = build_request(HOST, port, path, b"{}", {})
    if concurrency == 1:
        return latency(HOST, port, request, settings.requests)
    return throughput(HOST, port, request, concurrency, seconds)


def measure_http(report: InvokeReport, name: str, port: int, path: str) -> dict[int, Figures]:
    """The same load on one HTTP target at every concurrency of the report's settings."""
    settings = report.settings
    figures = {}
    for concurrency in settings.concurrencies:
        with ForeignLoad() as others:
            figures[concurrency] = measure_once(settings, port, path, concurrency, settings.seconds)
        report.foreign[name, concurrency] = others.fraction
    return figures


def _quiet(report: InvokeReport, name: str) -> None:
    print(f"  {name} ...", file=sys.stderr, flush=True)
    report.busy_before[name] = wait_quiet()


def _measure_metering_cost(report: InvokeReport) -> None:
    """Rounds on two servers at once (default, and TELEMETRY_OFF), interleaved ABBA."""
    _quiet(report, METERING_ROUNDS)
    settings = report.settings
    path = "/v1/functions/noop/invoke"
    with (
        tempfile.TemporaryDirectory() as tmp,
        PyfaasServer(Path(tmp, "on")) as on,
        PyfaasServer(Path(tmp, "off"), TELEMETRY_OFF) as off,
    ):
        on.deploy("noop", NOOP_HANDLER)
        off.deploy("noop", NOOP_HANDLER)
        for c in settings.concurrencies:
            cost = report.metering[c] = MeteringCost()
            sides = [(on, cost.on, cost.on_cpu_us), (off, cost.off, cost.off_cpu_us)]
            with ForeignLoad() as others:
                for i in range(settings.rounds):
                    for server, rounds, cpu in sides if i % 2 == 0 else sides[::-1]:
                        calls, used = server.stats("noop")["invocations"], cpu_seconds(server.pid)
                        rounds.append(
                            measure_once(settings, server.port, path, c, settings.round_seconds)
                        )
                        calls = server.stats("noop")["invocations"] - calls
                        cpu.append((cpu_seconds(server.pid) - used) / max(1, calls) * 1e6)
            report.foreign[METERING_ROUNDS, c] = others.fraction


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
    if settings.metering_only:
        _measure_metering_cost(report)
        return report
    _measure_pyfaas(report)
    _measure_metering_cost(report)
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
    if report.metering:
        yield ""
        yield from metering_table(report)


def metering_table(report: InvokeReport) -> Iterator[str]:
    """The on/off comparison: medians of the interleaved rounds, and every round."""
    s = report.settings
    at_c = f"c=1: {s.requests} requests, other c: {s.round_seconds:g} s"
    yield (
        f"Metering and invocation logs, on vs off ({', '.join(TELEMETRY_OFF)} = false): "
        f"{s.rounds} rounds each, interleaved on two servers side by side ({at_c} per round)"
    )
    yield ""
    yield (
        "| c | on req/s (median) | off req/s (median) | cost | cost, paired | on p50 ms "
        "| off p50 ms | server CPU us/call on, off | CPU cost | rounds on | rounds off "
        "| others' CPU |"
    )
    yield "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for c, m in report.metering.items():
        each_on = " ".join(f"{f.per_second:,.0f}" for f in m.on)
        each_off = " ".join(f"{f.per_second:,.0f}" for f in m.off)
        cpu = f"{statistics.median(m.on_cpu_us):.0f}, {statistics.median(m.off_cpu_us):.0f}"
        yield (
            f"| {c} | {m.median_rate(m.on):,.0f} | {m.median_rate(m.off):,.0f} | {m.cost:+.1%} "
            f"| {m.paired_cost:+.1%} | {m.median_p50(m.on):.3f} | {m.median_p50(m.off):.3f} "
            f"| {cpu} "
            f"| {m.cpu_cost:+.1%} | {each_on} | {each_off} "
            f"| {report.foreign.get((METERING_ROUNDS, c), 0):.0%} |"
        )
    yield ""
    yield (
        "cost: throughput lost with both on (medians); cost, paired: the median of the "
        "ratios of rounds taken back to back (on i against off i); CPU cost: the share of the "
        "server process's CPU per invocation (event loop and its threads, not the workers) "
        "that they take, which other people's load on the machine moves much less than it "
        "moves rates."
    )


def parse_settings(argv: list[str] | None = None, doc: str | None = __doc__) -> InvokeSettings:
    """--requests, --seconds, --concurrency; ``doc``'s first line describes the script."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="samples at concurrency 1")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration at each other c")
    parser.add_argument("--concurrency", default="1,32,128", help="comma-separated levels")
    parser.add_argument("--rounds", type=int, default=9, help="metering on/off rounds per side")
    parser.add_argument("--round-seconds", type=float, default=2.0, help="length of one round")
    parser.add_argument(
        "--metering-only", action="store_true", help="only the metering on/off comparison"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    levels = tuple(int(c) for c in args.concurrency.split(","))
    return InvokeSettings(
        args.requests,
        args.seconds,
        levels,
        rounds=args.rounds,
        round_seconds=args.round_seconds,
        metering_only=args.metering_only,
    )


def main() -> None:
    report = run(parse_settings())
    print()
    print("\n".join(metering_table(report) if report.settings.metering_only else table(report)))


if __name__ == "__main__":
    main()
