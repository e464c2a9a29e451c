"""boto3 ``invoke`` of a no-op function next to pyfaas's native invoke, on one server.

    .venv/bin/python bench/lambda_invoke.py [--requests 3000] [--seconds 5] [--concurrency 1,32]

Measures, one after the other against the same server (SQLite, local workers, an access key
configured, so every Lambda API call has its SigV4 signature verified):
  native          POST /v1/functions/noop/invoke through bench/loadgen.py (as bench/invoke.py)
  lambda, signed  POST /2015-03-31/functions/noop/invocations through loadgen, signed once with
                  botocore's SigV4 signer and replayed: the server's cost of the Lambda API
                  (routing, signature check, Lambda headers) without any client cost
  boto3 invoke    ``boto3.client("lambda").invoke(...)`` in a loop, the payload read: what a
                  boto3 user sees (c=1 only: boto3 is a blocking client)
  native, httpx   the native endpoint from httpx's blocking client: a Python caller of the
                  native API, to set beside boto3 (c=1 only)
At concurrency 1: ``--requests`` calls on one keep-alive connection after a warm-up; at every
other concurrency N: N connections for ``--seconds`` (bench/loadgen.py). The goal (issue 8):
boto3 invoke's p50 within 1.5x of the native endpoint's.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from invoke import InvokeSettings, machine, parse_settings
from loadgen import Figures, build_request, latency, sequential, throughput
from servers import HOST, NOOP_HANDLER, ForeignLoad, PyfaasServer, wait_quiet

KEY_ID, SECRET = "AKIAPYFAASBENCH00001", "bench-secret-key"
REGION = "us-east-1"
FUNCTION = "noop"
NATIVE = "native"
SIGNED = "lambda, signed"
BOTO3 = "boto3 invoke"
NATIVE_HTTPX = "native, httpx"
GOAL_RATIO = 1.5


@dataclass
class LambdaInvokeReport:
    settings: InvokeSettings
    rows: dict[str, dict[int, Figures]] = field(default_factory=dict)
    foreign: dict[tuple[str, int], float] = field(default_factory=dict)
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


def boto3_invoke(client: Any) -> None:
    """One boto3 invoke, its payload read (as any caller does)."""
    answer = client.invoke(FunctionName=FUNCTION, Payload=b"{}")
    answer["Payload"].read()
    if answer["StatusCode"] != 200 or "FunctionError" in answer:
        raise RuntimeError(f"unexpected answer: {answer}")


def _measure(
    report: LambdaInvokeReport, name: str, port: int, path: str, headers: dict[str, str]
) -> None:
    s = report.settings
    request = build_request(HOST, port, path, b"{}", headers)
    for c in s.concurrencies:
        with ForeignLoad() as others:
            if c == 1:
                figures = latency(HOST, port, request, s.requests)
            else:
                figures = throughput(HOST, port, request, c, s.seconds)
        report.rows.setdefault(name, {})[c] = figures
        report.foreign[name, c] = others.fraction


def run(settings: InvokeSettings) -> LambdaInvokeReport:
    """One server, the three ways of calling it, one after the other."""
    report = LambdaInvokeReport(settings)
    print("  waiting for a quiet machine ...", file=sys.stderr, flush=True)
    report.busy_before = wait_quiet()
    env = {"PYFAAS_ACCESS_KEYS": f"{KEY_ID}:{SECRET}"}
    with tempfile.TemporaryDirectory() as tmp, PyfaasServer(Path(tmp), env) as server:
        server.deploy(FUNCTION, NOOP_HANDLER)
        print(f"  {NATIVE} ...", file=sys.stderr, flush=True)
        _measure(report, NATIVE, server.port, f"/v1/functions/{FUNCTION}/invoke", {})
        print(f"  {SIGNED} ...", file=sys.stderr, flush=True)
        path = f"/2015-03-31/functions/{FUNCTION}/invocations"
        _measure(report, SIGNED, server.port, path, signed_headers(server.url, path, b"{}"))
        print(f"  {BOTO3} ...", file=sys.stderr, flush=True)
        client = lambda_client(server.url)
        with ForeignLoad() as others:
            report.rows[BOTO3] = {1: sequential(lambda: boto3_invoke(client), settings.requests)}
        report.foreign[BOTO3, 1] = others.fraction
        print(f"  {NATIVE_HTTPX} ...", file=sys.stderr, flush=True)
        path = f"/v1/functions/{FUNCTION}/invoke"
        with ForeignLoad() as others, httpx.Client(base_url=server.url) as native:
            figures = sequential(
                lambda: native.post(path, content=b"{}").raise_for_status(), settings.requests
            )
        report.rows[NATIVE_HTTPX] = {1: figures}
        report.foreign[NATIVE_HTTPX, 1] = others.fraction
    return report


def table(report: LambdaInvokeReport) -> Iterator[str]:
    """The markdown table, ratios against the native endpoint at the same concurrency."""
    s = report.settings
    yield (f"{machine()}; c=1: {s.requests} calls on one connection, other c: {s.seconds:g} s each")
    yield ""
    yield "| c | client | req/s | p50 ms | p99 ms | p50 / native p50 | others' CPU |"
    yield "|---|---|---|---|---|---|---|"
    native = report.rows.get(NATIVE, {})
    for c in s.concurrencies:
        for name, rows in report.rows.items():
            if c not in rows:
                continue
            f = rows[c]
            ratio = f"{f.p50_ms / native[c].p50_ms:.2f}x" if c in native else "-"
            yield (
                f"| {c} | {name} | {f.per_second:,.0f} | {f.p50_ms:.3f} | {f.p99_ms:.3f} "
                f"| {ratio} | {report.foreign.get((name, c), 0):.0%} |"
            )
    yield ""
    if 1 in native and BOTO3 in report.rows:
        boto = report.rows[BOTO3][1].p50_ms
        server = report.rows[SIGNED][1].p50_ms
        times = boto / native[1].p50_ms
        verdict = "met" if times <= GOAL_RATIO else "**not met**"
        yield f"- goal, boto3 invoke p50 within {GOAL_RATIO}x of native: {times:.2f}x, {verdict}"
        if NATIVE_HTTPX in report.rows:
            client = report.rows[NATIVE_HTTPX][1].p50_ms
            yield (
                f"- against the native endpoint called from Python too (httpx, {client:.3f} ms): "
                f"{boto / client:.2f}x"
            )
        yield (
            f"- of boto3's {boto:.3f} ms, the server's Lambda API takes {server:.3f} ms "
            f"(signed, replayed) against {native[1].p50_ms:.3f} ms native; the client "
            f"(botocore: serialize, sign, parse) about {boto - server:.3f} ms"
        )
    if report.busy_before >= 0.15:
        yield f"- **the machine was {report.busy_before:.0%} busy with other work at the start**"


def main() -> None:
    settings = parse_settings(doc=__doc__)
    if 1 not in settings.concurrencies:  # boto3 is measured at c=1 only: keep its reference
        settings = replace(settings, concurrencies=(1, *settings.concurrencies))
    report = run(settings)
    print()
    print("\n".join(table(report)))


if __name__ == "__main__":
    main()
