"""Idle cost: the server's RSS with 1,000 deployed functions and none running, vs empty.

    .venv/bin/python bench/idle_cost.py [--functions 1000] [--parallel 8]

Starts a server with a short idle timeout and reads its RSS (VmRSS of the server process
only, from /proc) when empty. Deploys N distinct functions over the HTTP API, ``--parallel``
at a time; each deploy imports the handler in a new worker, which stays warm until the idle
timeout, so the bench then waits until every worker is reaped before reading the RSS again.
Finally it restarts the server on the same data directory and reads the RSS of a server that
holds the N functions in its store but has never deployed nor run one in its lifetime.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from servers import NOOP_HANDLER, PyfaasServer, code_zip, deploy_form, rss_mb

IDLE_TIMEOUT_S = 2.0
SETTLE_S = 2.0  # after start-up or the last reap, before RSS is read


@dataclass(frozen=True)
class IdleCostReport:
    functions: int
    empty_mb: float
    loaded_mb: float
    restarted_empty_mb: float
    restarted_mb: float
    deploy_s: float
    deploy_failures: int
    peak_workers: int
    reap_wait_s: float

    @property
    def over_empty_mb(self) -> float:
        return self.loaded_mb - self.empty_mb

    @property
    def restarted_over_empty_mb(self) -> float:
        return self.restarted_mb - self.restarted_empty_mb


async def _deploy_all(server: PyfaasServer, n: int, parallel: int) -> int:
    """Deploy functions f0000..f{n-1} (distinct bundles), ``parallel`` at a time; return the
    number of failed deploys."""
    gate = asyncio.Semaphore(parallel)
    failures = 0

    async def one(client: httpx.AsyncClient, i: int) -> None:
        nonlocal failures
        name = f"f{i:04d}"
        data, files = deploy_form(name, code_zip(f"# {name}\n{NOOP_HANDLER}"))
        async with gate:
            response = await client.put(f"/v1/functions/{name}", data=data, files=files)
        if response.status_code >= 300:
            failures += 1

    async with httpx.AsyncClient(base_url=server.url, timeout=300) as client:
        await asyncio.gather(*(one(client, i) for i in range(n)))
    return failures


def _empty_rss(server: PyfaasServer) -> float:
    httpx.get(f"{server.url}/v1/functions", timeout=30).raise_for_status()
    time.sleep(SETTLE_S)
    return rss_mb(server.pid)


def run(functions: int = 1000, parallel: int = 8) -> IdleCostReport:
    env = {"PYFAAS_IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S)}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        with PyfaasServer(home, env) as server:
            empty = _empty_rss(server)
            peak = 0
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.wait(0.1):
                    peak = max(peak, len(server.workers()))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            start = time.monotonic()
            try:
                failures = asyncio.run(_deploy_all(server, functions, parallel))
            finally:
                done.set()
                sampler.join()
            deploy_s = time.monotonic() - start
            reap_wait = server.wait_no_workers(timeout=120)
            time.sleep(SETTLE_S)
            loaded = rss_mb(server.pid)
        with PyfaasServer(home, env) as server:
            listed = httpx.get(f"{server.url}/v1/functions", timeout=60)
            listed.raise_for_status()
            time.sleep(SETTLE_S)
            restarted = rss_mb(server.pid)
    with tempfile.TemporaryDirectory() as tmp, PyfaasServer(Path(tmp), env) as server:
        restarted_empty = _empty_rss(server)
    return IdleCostReport(
        functions=functions,
        empty_mb=empty,
        loaded_mb=loaded,
        restarted_empty_mb=restarted_empty,
        restarted_mb=restarted,
        deploy_s=deploy_s,
        deploy_failures=failures,
        peak_workers=peak,
        reap_wait_s=reap_wait,
    )


def table(r: IdleCostReport) -> list[str]:
    return [
        f"{r.functions} functions deployed over HTTP in {r.deploy_s:.1f} s "
        f"({r.deploy_failures} failed; at most {r.peak_workers} workers alive at once); "
        f"all workers reaped {r.reap_wait_s:.1f} s after the last deploy "
        f"(idle timeout {IDLE_TIMEOUT_S:g} s); RSS read {SETTLE_S:g} s later",
        "",
        "| server | RSS MB | over empty MB |",
        "|---|---|---|",
        f"| empty, fresh | {r.empty_mb:.1f} | - |",
        f"| after deploying {r.functions}, none running | {r.loaded_mb:.1f} "
        f"| {r.over_empty_mb:+.1f} |",
        f"| restarted with {r.functions} in its store, listed once | {r.restarted_mb:.1f} "
        f"| {r.restarted_over_empty_mb:+.1f} (vs another fresh empty: "
        f"{r.restarted_empty_mb:.1f}) |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--functions", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()
    print("\n".join(table(run(args.functions, args.parallel))))


if __name__ == "__main__":
    main()
