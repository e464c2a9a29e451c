"""Warm sync invoke of a no-op handler over HTTP, side by side with its ceilings.

    .venv/bin/python bench/invoke.py [--seconds 5] [--requests 3000]

Runs, in one process tree on this machine:
  pyfaas        POST /v1/functions/noop/invoke on a real server (SQLite, local workers)
  uvicorn       a plain ASGI hello-world with the same uvicorn settings (the HTTP ceiling)
  processpool   concurrent.futures.ProcessPoolExecutor round trips of a no-op (the IPC ceiling)
at concurrency 1 (p50/p99 latency) and 32 (invocations/s), then the RSS of the server and of
one idle worker. The load generator (bench/loadgen.py) shares the machine's cores with the
servers; that is the same for every target, so compare the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import Figures, build_request, latency, throughput

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def noop(_: object = None) -> None:
    return None


def processpool(n: int, concurrency: int, seconds: float) -> tuple[Figures, Figures]:
    with concurrent.futures.ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        for _ in range(200):
            pool.submit(noop).result()
        samples = []
        start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            pool.submit(noop).result()
            samples.append(time.perf_counter() - t0)
        c1 = _figures(samples, time.perf_counter() - start)

        async def flood() -> Figures:
            loop = asyncio.get_running_loop()
            lat: list[float] = []
            deadline = time.perf_counter() + seconds

            async def lane() -> None:
                while time.perf_counter() < deadline:
                    t0 = time.perf_counter()
                    await loop.run_in_executor(pool, noop)
                    lat.append(time.perf_counter() - t0)

            begin = time.perf_counter()
            await asyncio.gather(*(lane() for _ in range(concurrency)))
            return _figures(lat, time.perf_counter() - begin)

        cn = asyncio.run(flood())
    return c1, cn


def _figures(samples: list[float], elapsed: float) -> Figures:
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return Figures(len(samples), elapsed, statistics.median(samples) * 1000, p99 * 1000)


def start_pyfaas(home: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "pyfaas"), "serve", "--port", str(port)],
        env={**os.environ, "PYFAAS_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=home,
    )
    wait_http(f"http://127.0.0.1:{port}/v1/health")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    httpx.put(
        f"http://127.0.0.1:{port}/v1/functions/noop",
        data={"config": json.dumps({"name": "noop"})},
        files={"code": ("code.zip", buf.getvalue())},
        timeout=60,
    ).raise_for_status()
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="samples at concurrency 1")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration at concurrency 32")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    rows: dict[str, tuple[Figures, Figures]] = {}
    extra: dict[str, float] = {}

    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_pyfaas(Path(tmp))
        try:
            req = build_request("127.0.0.1", port, "/v1/functions/noop/invoke", b"{}", {})
            rows["pyfaas"] = (
                latency("127.0.0.1", port, req, args.requests),
                throughput("127.0.0.1", port, req, args.concurrency, args.seconds),
            )
            extra["server_rss_mb"] = rss_kb(proc.pid) / 1024
            workers = children(proc.pid)
            extra["workers_after_c32"] = len(workers)
            if workers:
                extra["idle_worker_rss_mb"] = min(rss_kb(w) for w in workers) / 1024
        finally:
            proc.terminate()
            proc.wait(15)

    port = free_port()
    hello = subprocess.Popen([sys.executable, str(HERE / "hello_asgi.py"), str(port)])
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        req = build_request("127.0.0.1", port, "/", b"{}", {})
        rows["uvicorn hello"] = (
            latency("127.0.0.1", port, req, args.requests),
            throughput("127.0.0.1", port, req, args.concurrency, args.seconds),
        )
    finally:
        hello.terminate()
        hello.wait(15)

    rows["processpool"] = processpool(args.requests, args.concurrency, args.seconds)

    ours = rows["pyfaas"]
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; c=1: {args.requests} requests, "
        f"c={args.concurrency}: {args.seconds:.0f} s\n"
    )
    print(
        f"| target | c=1 p50 ms | c=1 p99 ms | c={args.concurrency} req/s "
        f"| c={args.concurrency} p50 ms | c={args.concurrency} p99 ms "
        f"| pyfaas p50 / this | pyfaas req/s / this |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, (c1, cn) in rows.items():
        print(
            f"| {name} | {c1.p50_ms:.3f} | {c1.p99_ms:.3f} | {cn.per_second:,.0f} "
            f"| {cn.p50_ms:.2f} | {cn.p99_ms:.2f} | {ours[0].p50_ms / c1.p50_ms:.2f}x "
            f"| {ours[1].per_second / cn.per_second:.2f}x |"
        )
    print()
    for key, value in extra.items():
        print(f"- {key}: {value:.1f}")


if __name__ == "__main__":
    main()
