"""The Ray executor backend against the local one, in one run: warm invoke latency through
each (the Ray hop's overhead), and the time to scale a function from 0 to N workers.

    .venv/bin/python bench/ray_executor.py [--calls 300] [--workers 16]

Two fresh servers: the default (local worker processes) and ``PYFAAS_EXECUTOR=ray`` starting
its own local Ray (no address). Each gets a no-op function, warmed up; then ``--calls``
sequential invokes over one keep-alive connection (p50/p99, ms). Scale-up: a function whose
handler sleeps 0.5 s gets ``--workers`` concurrent calls at once (one warm worker from its
deploy); the wall time of that burst minus 0.5 s is the time to start the other workers.
Not part of ``make bench``: starting Ray alone takes tens of seconds on a small machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from servers import NOOP_HANDLER, PyfaasServer

SLEEPER = "import time\n\ndef handler(event, context):\n    time.sleep(0.5)\n    return {}\n"
_SLEEP_S = 0.5


def _latencies(url: str, calls: int) -> list[float]:
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(20):
            client.post("/v1/functions/noop/invoke", json={}).raise_for_status()
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            client.post("/v1/functions/noop/invoke", json={}).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return times


def _scale_up(url: str, workers: int) -> float:
    """Seconds for ``workers`` concurrent calls beyond their handler's own sleep."""

    def call(_: int) -> None:
        httpx.post(f"{url}/v1/functions/sleeper/invoke", json={}, timeout=300).raise_for_status()

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        started = time.perf_counter()
        list(pool.map(call, range(workers)))
        return time.perf_counter() - started - _SLEEP_S


def _measure(env: dict[str, str], calls: int, workers: int) -> tuple[list[float], float]:
    with (
        tempfile.TemporaryDirectory() as home,
        PyfaasServer(Path(home), env=env, ready_timeout=300) as server,
    ):
        server.deploy("noop", NOOP_HANDLER)
        server.deploy("sleeper", SLEEPER)
        return _latencies(server.url, calls), _scale_up(server.url, workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    rows = {}
    for backend, env in (("local", {}), ("ray", {"PYFAAS_EXECUTOR": "ray"})):
        rows[backend] = _measure({"PYFAAS_SANDBOX": "off", **env}, args.calls, args.workers)
    print(f"warm invoke, {args.calls} sequential calls; scale 0 -> {args.workers} workers")
    print(f"{'backend':8} {'p50 ms':>8} {'p99 ms':>8} {'scale-up s':>11}")
    for backend, (times, scale) in rows.items():
        p50 = statistics.median(times)
        p99 = statistics.quantiles(times, n=100)[98]
        print(f"{backend:8} {p50:8.2f} {p99:8.2f} {scale:11.2f}")
    local, ray = (statistics.median(rows[b][0]) for b in ("local", "ray"))
    print(f"ray / local p50: {ray / local:.1f}x")


if __name__ == "__main__":
    main()
