"""boto3 ``invoke`` of a no-op function next to pyfaas's native invoke, on one server.

    .venv/bin/python bench/lambda_invoke.py [--requests 3000] [--seconds 5] [--concurrency 1,32]
                                            [--no-wait]

Measures, one after the other against the same server (SQLite, local workers, an access key
configured, so every Lambda API call has its SigV4 signature verified):
  native, raw     POST /v1/functions/noop/invoke from bench/loadgen.py (a raw socket): the floor
  lambda, raw     POST /2015-03-31/functions/noop/invocations from loadgen, signed once with
                  botocore's SigV4 signer and replayed: the Lambda route without any client cost
  native, urllib3 the native endpoint from urllib3 (the HTTP library botocore itself sends with)
  native, httpx   the native endpoint from httpx's blocking client
  boto3 invoke    ``boto3.client("lambda").invoke(...)``, the payload read: what a boto3 user sees
The Python clients are blocking: they run at c=1 only; the raw rows at every ``--concurrency``.
At c=1: ``--requests`` calls on one keep-alive connection after a warm-up, and for each row the
CPU one call costs the client (the calling thread) and the server (its process; the workers
are apart). boto3's time is split at botocore's own events: before-send (serialized and
signed), before-parse (the HTTP exchange done), then parsing and reading the payload.
The goal (issue 8): boto3 invoke's p50 within 1.5x of the native endpoint's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import urllib3

sys.path.insert(0, str(Path(__file__).parent))
from invoke import InvokeSettings, machine
from loadgen import Figures, build_request, latency, sequential, throughput
from servers import HOST, NOOP_HANDLER, ForeignLoad, PyfaasServer, wait_quiet

KEY_ID, SECRET = "AKIAPYFAASBENCH00001", "bench-secret-key"
REGION = "us-east-1"
FUNCTION = "noop"
NATIVE_PATH = f"/v1/functions/{FUNCTION}/invoke"
LAMBDA_PATH = f"/2015-03-31/functions/{FUNCTION}/invocations"
NATIVE = "native, raw"
SIGNED = "lambda, raw"
NATIVE_URLLIB3 = "native, urllib3"
NATIVE_HTTPX = "native, httpx"
BOTO3 = "boto3 invoke"
GOAL_RATIO = 1.5
WARMUP = 200  # calls before the measured ones, at c=1 (loadgen's default)


@dataclass(frozen=True)
class CpuPerCall:
    """CPU microseconds one call cost the calling thread and the server process."""

    client_us: float
    server_us: float


@dataclass(frozen=True)
class Boto3Phases:
    """Medians of one boto3 invoke's phases, milliseconds."""

    prepare_ms: float  # validate, serialize, sign: up to before-send
    exchange_ms: float  # send the request, read the answer's head: up to before-parse
    parse_ms: float  # parse the answer, read the payload


@dataclass
class LambdaInvokeReport:
    settings: InvokeSettings
    rows: dict[str, dict[int, Figures]] = field(default_factory=dict)
    cpu: dict[str, CpuPerCall] = field(default_factory=dict)
    foreign: dict[tuple[str, int], float] = field(default_factory=dict)
    phases: Boto3Phases | None = None
    busy_before: float = 0.0


def signed_headers(url: str, path: str, body: bytes) -> dict[str, str]:
    """SigV4 headers for POSTing ``body`` to ``url + path`` (botocore's own signer); the
    server accepts them for 15 minutes, as often as they are sent."""
    from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
    from botocore.credentials import Credentials  # type: ignore[import-untyped]

    request = AWSRequest(method="POST", url=f"{url}{path}", data=body)
    SigV4Auth(Credentials(KEY_ID, SECRET), "lambda", REGION).add_auth(request)
    return {k: v for k, v in request.headers.items() if k.lower() != "host"}


def lambda_client(url: str) -> Any:
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    return boto3.client(
        "lambda",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(retries={"total_max_attempts": 1}, tcp_keepalive=True),
    )


class PhaseClock:
    """Times each boto3 invoke at botocore's before-send and before-parse events."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._marks: dict[str, float] = {}
        self.samples: list[tuple[float, float, float]] = []
        client.meta.events.register("before-send.lambda.Invoke", self._mark("sent"))
        client.meta.events.register("before-parse.lambda.Invoke", self._mark("answered"))

    def _mark(self, name: str) -> Callable[..., None]:
        def handler(**_: Any) -> None:  # None: botocore goes on and sends the request itself
            self._marks[name] = time.perf_counter()

        return handler

    def invoke(self) -> None:
        """One boto3 invoke, its payload read (as any caller does)."""
        start = time.perf_counter()
        answer = self._client.invoke(FunctionName=FUNCTION, Payload=b"{}")
        answer["Payload"].read()
        end = time.perf_counter()
        if answer["StatusCode"] != 200 or "FunctionError" in answer:
            raise RuntimeError(f"unexpected answer: {answer}")
        sent, answered = self._marks["sent"], self._marks["answered"]
        self.samples.append((sent - start, answered - sent, end - answered))

    def phases(self) -> Boto3Phases:
        measured = self.samples[WARMUP:]
        prepare, exchange, parse = (
            statistics.median(p) * 1000 for p in zip(*measured, strict=True)
        )
        return Boto3Phases(prepare, exchange, parse)


def server_cpu_ns(pid: int) -> int:
    """On-CPU nanoseconds of every thread of process ``pid`` so far (/proc schedstat)."""
    return sum(
        int(task.joinpath("schedstat").read_text().split()[0])
        for task in Path(f"/proc/{pid}/task").iterdir()
    )


def _at_c1(
    report: LambdaInvokeReport, name: str, server: PyfaasServer, run: Callable[[], Figures]
) -> None:
    """Run ``run`` (WARMUP + requests calls in a row), recording its figures and the CPU a
    call cost the client thread and the server."""
    calls = WARMUP + report.settings.requests
    with ForeignLoad() as others:
        client0, server0 = time.thread_time_ns(), server_cpu_ns(server.pid)
        figures = run()
        client1, server1 = time.thread_time_ns(), server_cpu_ns(server.pid)
    report.rows.setdefault(name, {})[1] = figures
    report.foreign[name, 1] = others.fraction
    report.cpu[name] = CpuPerCall(
        (client1 - client0) / calls / 1e3, (server1 - server0) / calls / 1e3
    )


def _raw(
    report: LambdaInvokeReport, name: str, server: PyfaasServer, path: str, headers: dict[str, str]
) -> None:
    s = report.settings
    request = build_request(HOST, server.port, path, b"{}", headers)
    for c in s.concurrencies:
        if c == 1:
            _at_c1(report, name, server, lambda: latency(HOST, server.port, request, s.requests))
            continue
        with ForeignLoad() as others:
            figures = throughput(HOST, server.port, request, c, s.seconds)
        report.rows.setdefault(name, {})[c] = figures
        report.foreign[name, c] = others.fraction


def _step(name: str) -> None:
    print(f"  {name} ...", file=sys.stderr, flush=True)


def run(settings: InvokeSettings, *, wait: bool = True) -> LambdaInvokeReport:
    """One server, the five ways of calling it, one after the other."""
    report = LambdaInvokeReport(settings)
    if wait:
        print("  waiting for a quiet machine ...", file=sys.stderr, flush=True)
        report.busy_before = wait_quiet()
    env = {"PYFAAS_ACCESS_KEYS": f"{KEY_ID}:{SECRET}"}
    n = settings.requests
    with tempfile.TemporaryDirectory() as tmp, PyfaasServer(Path(tmp), env) as server:
        server.deploy(FUNCTION, NOOP_HANDLER)
        _step(NATIVE)
        _raw(report, NATIVE, server, NATIVE_PATH, {})
        _step(SIGNED)
        _raw(report, SIGNED, server, LAMBDA_PATH, signed_headers(server.url, LAMBDA_PATH, b"{}"))

        _step(NATIVE_URLLIB3)
        with urllib3.HTTPConnectionPool(HOST, server.port, maxsize=1) as pool:

            def urllib3_invoke() -> None:
                answer = pool.request("POST", NATIVE_PATH, body=b"{}")
                if answer.status != 200:
                    raise RuntimeError(f"unexpected answer: {answer.status} {answer.data!r}")

            _at_c1(report, NATIVE_URLLIB3, server, lambda: sequential(urllib3_invoke, n, WARMUP))

        _step(NATIVE_HTTPX)
        with httpx.Client(base_url=server.url) as native:

            def httpx_invoke() -> None:
                native.post(NATIVE_PATH, content=b"{}").raise_for_status()

            _at_c1(report, NATIVE_HTTPX, server, lambda: sequential(httpx_invoke, n, WARMUP))

        _step(BOTO3)
        clock = PhaseClock(lambda_client(server.url))
        _at_c1(report, BOTO3, server, lambda: sequential(clock.invoke, n, WARMUP))
        report.phases = clock.phases()
    return report


def table(report: LambdaInvokeReport) -> Iterator[str]:
    """The markdown table (ratios against the native endpoint from a raw socket and from
    urllib3 at the same concurrency), then where boto3's time goes."""
    s = report.settings
    yield (f"{machine()}; c=1: {s.requests} calls on one connection, other c: {s.seconds:g} s each")
    yield ""
    yield (
        "| c | client | req/s | p50 ms | p99 ms | / native raw | / native urllib3 "
        "| client CPU us/call | server CPU us/call | others' CPU |"
    )
    yield "|---|---|---|---|---|---|---|---|---|---|"
    native = report.rows.get(NATIVE, {})
    python = report.rows.get(NATIVE_URLLIB3, {})
    for c in s.concurrencies:
        for name, rows in report.rows.items():
            if c not in rows:
                continue
            f = rows[c]
            raw = f"{f.p50_ms / native[c].p50_ms:.2f}x" if c in native else "-"
            py = f"{f.p50_ms / python[c].p50_ms:.2f}x" if c in python else "-"
            cpu = report.cpu.get(name) if c == 1 else None
            client, srv = (f"{cpu.client_us:.0f}", f"{cpu.server_us:.0f}") if cpu else ("-", "-")
            yield (
                f"| {c} | {name} | {f.per_second:,.0f} | {f.p50_ms:.3f} | {f.p99_ms:.3f} "
                f"| {raw} | {py} | {client} | {srv} | {report.foreign.get((name, c), 0):.0%} |"
            )
    yield ""
    yield from findings(report)
    if report.busy_before >= 0.15:
        yield f"- **the machine was {report.busy_before:.0%} busy with other work at the start**"


def findings(report: LambdaInvokeReport) -> Iterator[str]:
    """The goal's verdict and the split of boto3's time into client and server."""
    rows, cpu = report.rows, report.cpu
    if BOTO3 not in rows or NATIVE not in rows or NATIVE_URLLIB3 not in rows:
        return
    boto = rows[BOTO3][1].p50_ms
    for name in (NATIVE, NATIVE_URLLIB3, NATIVE_HTTPX):
        times = boto / rows[name][1].p50_ms
        verdict = "met" if times <= GOAL_RATIO else "**not met**"
        yield (f"- goal, boto3 invoke p50 within {GOAL_RATIO}x of {name}: {times:.2f}x, {verdict}")
    yield (
        f"- server CPU per call: Lambda route {cpu[SIGNED].server_us:.0f} us (SigV4 verified) "
        f"vs native {cpu[NATIVE].server_us:.0f} us; "
        f"{cpu[SIGNED].server_us - cpu[NATIVE].server_us:+.0f} us"
    )
    yield (
        f"- client CPU per call: boto3 {cpu[BOTO3].client_us:.0f} us, urllib3 "
        f"{cpu[NATIVE_URLLIB3].client_us:.0f} us, httpx {cpu[NATIVE_HTTPX].client_us:.0f} us, "
        f"raw socket {cpu[NATIVE].client_us:.0f} us"
    )
    if report.phases is not None:
        p = report.phases
        yield (
            f"- boto3's p50 {boto:.3f} ms, by phase (medians): serialize and sign "
            f"{p.prepare_ms:.3f} ms, HTTP exchange {p.exchange_ms:.3f} ms (native from urllib3: "
            f"{rows[NATIVE_URLLIB3][1].p50_ms:.3f} ms whole), parse and read "
            f"{p.parse_ms:.3f} ms"
        )


def parse_args(argv: list[str] | None = None) -> tuple[InvokeSettings, bool]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="samples at concurrency 1")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration at each other c")
    parser.add_argument("--concurrency", default="1", help="comma-separated levels")
    parser.add_argument(
        "--no-wait", action="store_true", help="do not wait for a quiet machine (quick A/B runs)"
    )
    args = parser.parse_args(argv)
    levels = {int(c) for c in args.concurrency.split(",")} | {1}  # the Python clients: c=1
    return InvokeSettings(args.requests, args.seconds, tuple(sorted(levels))), not args.no_wait


def main() -> None:
    settings, wait = parse_args()
    report = run(settings, wait=wait)
    print()
    print("\n".join(table(report)))


if __name__ == "__main__":
    main()
