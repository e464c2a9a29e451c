"""The SDK's fan-out: ``Function.map`` over many tiny inputs, against the same loop run with
``concurrent.futures.ProcessPoolExecutor.map`` and with Ray tasks, in one run.

    .venv/bin/python bench/sdk_map.py [--items 10000] [--concurrency 32]

pyfaas: a fresh server, one function deployed with the SDK, warmed up with one map of
``20 x concurrency`` items (the server starts its workers); then
``list(add_one.map(range(items), concurrency=N))``, results in order. ProcessPoolExecutor:
N processes, chunksize 1 (one round trip per item, as a remote call is). Ray:
``ray.get([add_one_ray.remote(i) for i in range(items)])`` on a local cluster (reported, not
fatal, when it is not installed or does not start). Goal (issue 9): >= 5,000 items/s, ahead
of Ray.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from servers import PyfaasServer

from pyfaas import App, Client

GOAL_PER_SECOND = 5000

app = App("bench-map")


def plus_one(x: int) -> int:
    return x + 1


add_one = app.function(plus_one, name="bench-add-one")


def _pyfaas(items: int, concurrency: int) -> float:
    with tempfile.TemporaryDirectory() as home, PyfaasServer(Path(home)) as server:
        app.connect(Client(server.url))
        app.deploy(quiet=True)
        list(add_one.map(range(20 * concurrency), concurrency=concurrency, progress=False))
        started = time.perf_counter()
        results = list(add_one.map(range(items), concurrency=concurrency, progress=False))
        elapsed = time.perf_counter() - started
    assert results == [i + 1 for i in range(items)]
    return items / elapsed


def _process_pool(items: int, concurrency: int) -> float:
    with concurrent.futures.ProcessPoolExecutor(concurrency) as pool:
        list(pool.map(plus_one, range(concurrency)))
        started = time.perf_counter()
        results = list(pool.map(plus_one, range(items), chunksize=1))
        elapsed = time.perf_counter() - started
    assert results == [i + 1 for i in range(items)]
    return items / elapsed


def _ray(items: int) -> float | str:
    """Ray tasks' items/s, or why they did not run."""
    try:
        import ray
    except ImportError:
        return "not installed (bench extra)"
    try:
        ray.init(num_cpus=None, include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # a busy machine: the local cluster may time out starting
        return f"did not start: {str(exc).splitlines()[0][:80]}"
    try:
        remote: Any = ray.remote(lambda x: x + 1)
        ray.get([remote.remote(i) for i in range(100)])
        started = time.perf_counter()
        results = ray.get([remote.remote(i) for i in range(items)])
        elapsed = time.perf_counter() - started
    finally:
        ray.shutdown()
    assert results == [i + 1 for i in range(items)]
    return items / elapsed


@dataclass(frozen=True)
class MapReport:
    items: int
    concurrency: int
    pyfaas: float  # items/s
    process_pool: float
    ray: float | str  # items/s, or why Ray did not run

    @property
    def goal_met(self) -> bool:
        ahead = not isinstance(self.ray, float) or self.pyfaas > self.ray
        return self.pyfaas >= GOAL_PER_SECOND and ahead


def run(items: int = 10_000, concurrency: int = 32) -> MapReport:
    return MapReport(
        items,
        concurrency,
        pyfaas=_pyfaas(items, concurrency),
        process_pool=_process_pool(items, concurrency),
        ray=_ray(items),
    )


def table(r: MapReport) -> list[str]:
    ray = f"{r.ray:,.0f}" if isinstance(r.ray, float) else r.ray
    return [
        f"{r.items:,} tiny items, concurrency {r.concurrency}",
        "",
        "| runner | items/s |",
        "|---|---|",
        f"| pyfaas Function.map | {r.pyfaas:,.0f} |",
        f"| ProcessPoolExecutor.map | {r.process_pool:,.0f} |",
        f"| Ray tasks | {ray} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    report = run(args.items, args.concurrency)
    print("\n".join(table(report)))
    verdict = "met" if report.goal_met else "not met"
    print(f"\ngoal >= {GOAL_PER_SECOND:,} items/s and ahead of Ray: {verdict}")


if __name__ == "__main__":
    main()
