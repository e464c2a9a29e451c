"""The console's overview with many functions: server render time and first paint.

    .venv/bin/python bench/console.py [--functions 500] [--calls 2] [--rounds 10]

Deploys N functions over the HTTP API, invokes each ``--calls`` times (so every row has
usage to summarise: calls, error rate, p50/p99 of the last hour), then reads ``/console/``
``--rounds`` times over HTTP (the server's whole answer: one functions query, one activity
query, one async backlog query, the template) and loads it as many times in Debian's
headless Chromium, reading the browser's first-contentful-paint. The goal of issue 11:
first paint under 300 ms with 500 functions.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from idle_cost import _deploy_all
from servers import PyfaasServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FIRST_PAINT_GOAL_MS = 300
# Milliseconds from the start of the navigation to the first contentful paint.
_FIRST_PAINT = """new Promise((resolve) => new PerformanceObserver((list) => {
  const entry = list.getEntriesByName('first-contentful-paint')[0];
  if (entry) resolve(entry.startTime);
}).observe({type: 'paint', buffered: true}))"""


@dataclass(frozen=True)
class ConsoleReport:
    functions: int
    invocations: int
    html_bytes: int
    server_ms: list[float]
    first_paint_ms: list[float]
    floor_ms: list[float]  # first paint of the login page: the browser's own overhead here


async def _invoke_all(url: str, n: int, calls: int, parallel: int) -> int:
    gate = asyncio.Semaphore(parallel)
    ok = 0

    async def one(client: httpx.AsyncClient, i: int) -> None:
        nonlocal ok
        async with gate:
            response = await client.post(f"/v1/functions/f{i:04d}/invoke", json={})
        ok += response.status_code == 200

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await asyncio.gather(*(one(client, i) for i in range(n) for _ in range(calls)))
    return ok


def _first_paints(url: str, rounds: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    paints = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        warm = browser.new_page()
        warm.goto(url)  # the browser's caches of the static files, as a returning user has
        warm.close()
        for _ in range(rounds):
            page = browser.new_page()
            page.goto(url, wait_until="load")
            paints.append(float(page.evaluate(_FIRST_PAINT)))
            page.close()
        browser.close()
    return paints


def run(functions: int = 500, calls: int = 2, rounds: int = 10) -> ConsoleReport:
    env = {"PYFAAS_IDLE_TIMEOUT_S": "2"}
    with tempfile.TemporaryDirectory() as tmp, PyfaasServer(Path(tmp), env) as server:
        failed = asyncio.run(_deploy_all(server, functions, 8))
        if failed:
            raise RuntimeError(f"{failed} deploys failed")
        invoked = asyncio.run(_invoke_all(server.url, functions, calls, 8))
        timings = []
        with httpx.Client(timeout=60) as client:
            html = client.get(f"{server.url}/console/").text
            for _ in range(rounds):
                start = time.perf_counter()
                client.get(f"{server.url}/console/").raise_for_status()
                timings.append((time.perf_counter() - start) * 1000)
        paints = _first_paints(f"{server.url}/console/", rounds)
        floor = _first_paints(f"{server.url}/console/login", rounds)
    return ConsoleReport(functions, invoked, len(html.encode()), timings, paints, floor)


def table(r: ConsoleReport) -> list[str]:
    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} | {max(values):.1f}"

    verdict = "met" if statistics.median(r.first_paint_ms) < FIRST_PAINT_GOAL_MS else "MISSED"
    return [
        f"{r.functions} functions, {r.invocations} invocations in the last hour; "
        f"overview HTML {r.html_bytes / 1024:.0f} KB",
        "",
        "| /console/ | median ms | max ms |",
        "|---|---|---|",
        f"| server answer (HTTP GET, whole body) | {cell(r.server_ms)} |",
        f"| Chromium first-contentful-paint | {cell(r.first_paint_ms)} |",
        f"| the same of /console/login (nearly empty: the browser's floor) | {cell(r.floor_ms)} |",
        "",
        f"goal: first paint < {FIRST_PAINT_GOAL_MS} ms: {verdict}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=500)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    print("\n".join(table(run(args.functions, args.calls, args.rounds))))


if __name__ == "__main__":
    main()
