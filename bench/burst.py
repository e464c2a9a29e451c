"""Burst from zero: 200 concurrent sync invokes of a 50 ms sleep handler, no worker running.

    .venv/bin/python bench/burst.py [--requests 200] [--sleep-ms 50]

Deploys the handler on a fresh server with a short idle timeout, waits until the worker that
validated the deploy is reaped (scale to zero), opens one connection per request, then sends
them all at once. Counts answers by HTTP status honestly (200, 429 TooManyRequests, other, no
answer), reports p50/p99 latency of the successful ones, the time until all were done, and how
many worker processes the server ran at the peak (sampled from /proc every 20 ms).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import build_request
from loadgen import burst as send_burst
from servers import HOST, PyfaasServer

IDLE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class BurstReport:
    requests: int
    sleep_ms: int
    statuses: dict[int, int]  # HTTP status (0: no answer) -> count
    p50_ms: float
    p99_ms: float
    all_done_s: float
    peak_workers: int
    cold_starts: int
    reaped_before_s: float
    errors: tuple[str, ...]

    @property
    def succeeded(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def throttled(self) -> int:
        return self.statuses.get(429, 0)


class PeakSampler:
    """Counts a server's worker processes every ``period_s`` in a thread; keeps the peak."""

    def __init__(self, server: PyfaasServer, period_s: float = 0.02) -> None:
        self._server = server
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak = 0

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            self.peak = max(self.peak, len(self._server.workers()))


def run(requests: int = 200, sleep_ms: int = 50) -> BurstReport:
    source = f"import time\n\ndef handler(event, context):\n    time.sleep({sleep_ms / 1000})\n"
    source += "    return {}\n"
    env = {"PYFAAS_IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S)}
    with tempfile.TemporaryDirectory() as tmp, PyfaasServer(Path(tmp), env) as server:
        server.deploy("sleep", source)
        reaped = server.wait_no_workers(timeout=60)
        request = build_request(HOST, server.port, "/v1/functions/sleep/invoke", b"{}", {})
        with PeakSampler(server) as sampler:
            answers, all_done = send_burst(HOST, server.port, request, requests, timeout=300)
        stats = httpx.get(f"{server.url}/v1/functions/sleep", timeout=30).json()["stats"]
    ok = sorted(a.seconds for a in answers if a.status == 200) or [float("nan")]
    return BurstReport(
        requests=requests,
        sleep_ms=sleep_ms,
        statuses=dict(collections.Counter(a.status for a in answers)),
        p50_ms=statistics.median(ok) * 1000,
        p99_ms=ok[min(len(ok) - 1, int(len(ok) * 0.99))] * 1000,
        all_done_s=all_done,
        peak_workers=sampler.peak,
        cold_starts=int(stats["cold_starts"]),
        reaped_before_s=reaped,
        errors=tuple(sorted({a.error for a in answers if a.error})),
    )


def table(r: BurstReport) -> list[str]:
    other = {s: n for s, n in r.statuses.items() if s not in (200, 429)}
    lines = [
        f"{r.requests} concurrent invokes of a {r.sleep_ms} ms sleep handler, from zero workers "
        f"(the deploy's worker was reaped {r.reaped_before_s:.1f} s after the deploy, "
        f"idle timeout {IDLE_TIMEOUT_S:g} s)",
        "",
        "| succeeded (200) | throttled (429) | other | p50 ms | p99 ms | all done s "
        "| peak workers | cold starts |",
        "|---|---|---|---|---|---|---|---|",
        f"| {r.succeeded} | {r.throttled} | {other or 0} | {r.p50_ms:,.0f} | {r.p99_ms:,.0f} "
        f"| {r.all_done_s:.2f} | {r.peak_workers} | {r.cold_starts} |",
    ]
    lines += [f"- error: {e}" for e in r.errors]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--sleep-ms", type=int, default=50)
    args = parser.parse_args()
    print("\n".join(table(run(args.requests, args.sleep_ms))))


if __name__ == "__main__":
    main()
