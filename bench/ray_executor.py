"""The Ray executor backend against the local one, in one run: warm invoke latency through
each (the Ray hop's overhead), throughput with 1, 2, 4, 8, 16 workers, and the time to scale
a function from 0 to N workers.

    .venv/bin/python bench/ray_executor.py [--calls 300] [--workers 16] [--seconds 5]

Two fresh servers, up at the same time and measured in interleaved rounds: the default (local
worker processes) and ``PYFAAS_EXECUTOR=ray`` starting its own local Ray (no address). Each
gets a no-op function; then ``--calls`` sequential invokes over one keep-alive connection
(p50/p99, ms), in 6 rounds alternating between the two. Throughput: per count N, a
function whose handler sleeps 20 ms (I/O-bound, so the 2 cores are not what limits it) with
N provisioned and reserved workers gets N closed-loop clients for ``--seconds``; the ideal is
N / 0.02 s. Scale-up: a function whose handler sleeps 0.5 s is left to scale to zero (idle
timeout 1 s), then gets ``--workers`` concurrent calls at once; the wall time of that burst
minus 0.5 s is the time to start all the workers. Not part of ``make bench``: starting Ray
alone takes tens of seconds on a small machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from servers import NOOP_HANDLER, PyfaasServer, machine_busy

SLEEPER = "import time\n\ndef handler(event, context):\n    time.sleep(0.5)\n    return {}\n"
_SLEEP_S = 0.5
WORKER = "import time\n\ndef handler(event, context):\n    time.sleep(0.02)\n    return {}\n"
COUNTS = (1, 2, 4, 8, 16)


def _latencies(url: str, calls: int) -> list[float]:
    """ms per sequential no-op invoke, ``calls`` of them over one keep-alive connection."""
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post("/v1/functions/noop/invoke", json={}).raise_for_status()
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            client.post("/v1/functions/noop/invoke", json={}).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return times


def _throughput(server: PyfaasServer, workers: int, seconds: float) -> float:
    """Invocations/s of the 20 ms handler with ``workers`` warm workers and as many clients."""
    name = f"work{workers}"
    server.deploy(
        name, WORKER, provisioned_concurrency=workers, reserved_concurrency=workers, timeout_s=60
    )
    while server.stats(name)["workers_idle"] < workers:
        time.sleep(0.2)
    deadline = time.perf_counter() + seconds

    def client(_: int) -> int:
        done = 0
        with httpx.Client(base_url=server.url, timeout=60) as http:
            while time.perf_counter() < deadline:
                http.post(f"/v1/functions/{name}/invoke", json={}).raise_for_status()
                done += 1
        return done

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        total = sum(pool.map(client, range(workers)))
    rate = total / (time.perf_counter() - started)
    # Its workers go with it, so the next count's are the only ones running.
    httpx.delete(f"{server.url}/v1/functions/{name}", timeout=120).raise_for_status()
    return rate


def _scale_up(server: PyfaasServer, workers: int) -> float:
    """Seconds for ``workers`` concurrent calls on no warm worker, beyond their handler's own
    sleep."""
    url = server.url
    while server.stats("sleeper")["workers_idle"] or server.stats("sleeper")["workers_busy"]:
        time.sleep(0.2)  # its deploy's warm worker goes after idle_timeout_s

    def call(_: int) -> None:
        httpx.post(f"{url}/v1/functions/sleeper/invoke", json={}, timeout=300).raise_for_status()

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        started = time.perf_counter()
        list(pool.map(call, range(workers)))
        return time.perf_counter() - started - _SLEEP_S


@dataclass
class _Figures:
    latencies: list[float] = field(default_factory=list)
    throughput: dict[int, float] = field(default_factory=dict)
    scale_up_s: float = 0.0


_ROUNDS = 6


def _measure(calls: int, workers: int, seconds: float) -> dict[str, _Figures]:
    """Both servers up at once, measured in interleaved rounds (local, ray, local, ...): a
    shared machine's load changes over minutes and hits both alike."""
    backends = {"local": {}, "ray": {"PYFAAS_EXECUTOR": "ray"}}
    rows = {backend: _Figures() for backend in backends}
    with contextlib.ExitStack() as stack:
        servers = {}
        for backend, env in backends.items():
            home = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            servers[backend] = stack.enter_context(
                PyfaasServer(home, env={"PYFAAS_SANDBOX": "off", **env}, ready_timeout=300)
            )
            servers[backend].deploy("noop", NOOP_HANDLER)
            servers[backend].deploy("sleeper", SLEEPER, idle_timeout_s=1, timeout_s=300)
        for _ in range(_ROUNDS):
            for backend, server in servers.items():
                rows[backend].latencies += _latencies(server.url, calls // _ROUNDS)
        for n in COUNTS:
            for backend, server in servers.items():
                rows[backend].throughput[n] = _throughput(server, n, seconds)
        for backend, server in servers.items():
            rows[backend].scale_up_s = _scale_up(server, workers)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    busy = machine_busy()
    rows = _measure(args.calls, args.workers, args.seconds)
    print(f"machine busy before the run: {busy:.0%} of its CPUs; after: {machine_busy():.0%}")
    print(f"warm invoke, {args.calls} sequential calls in {_ROUNDS} interleaved rounds")
    print(f"{'backend':8} {'p50 ms':>8} {'p99 ms':>8} {f'0->{args.workers} s':>10}")
    for backend, figures in rows.items():
        p50 = statistics.median(figures.latencies)
        p99 = statistics.quantiles(figures.latencies, n=100)[98]
        print(f"{backend:8} {p50:8.2f} {p99:8.2f} {figures.scale_up_s:10.2f}")
    local, ray = (statistics.median(rows[b].latencies) for b in ("local", "ray"))
    print(f"ray / local p50: {ray / local:.1f}x")
    print(f"throughput, 20 ms handler, N workers and N clients, {args.seconds:g} s (ideal N/0.02)")
    print(f"{'workers':>8} " + " ".join(f"{b + ' /s':>10}" for b in rows) + f" {'ideal /s':>10}")
    for n in COUNTS:
        cells = " ".join(f"{rows[b].throughput[n]:10.0f}" for b in rows)
        print(f"{n:8d} {cells} {n / 0.02:10.0f}")


if __name__ == "__main__":
    main()
