"""The SDK's fan-out: ``Function.map`` over many tiny inputs, against the same loop run with
``concurrent.futures.ProcessPoolExecutor.map`` and with Ray tasks, in one run.

    .venv/bin/python bench/sdk_map.py [--items 10000] [--concurrency 32]

pyfaas: a fresh server, one function deployed with the SDK, warmed up with one map of
``concurrency`` items; then ``list(add_one.map(range(items), concurrency=N))``, results in
order. ProcessPoolExecutor: N processes, chunksize 1 (one round trip per item, as a remote
call is). Ray: ``ray.get([add_one_ray.remote(i) for i in range(items)])`` on a local cluster
(skipped without the ``bench`` extra). Goal (issue 9): >= 5,000 items/s, ahead of Ray.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import tempfile
import time
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
        list(add_one.map(range(concurrency), concurrency=concurrency, progress=False))
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


def _ray(items: int) -> float | None:
    try:
        import ray
    except ImportError:
        return None
    ray.init(num_cpus=None, include_dashboard=False, log_to_driver=False)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    rows = {
        "pyfaas Function.map": _pyfaas(args.items, args.concurrency),
        "ProcessPoolExecutor.map": _process_pool(args.items, args.concurrency),
        "Ray tasks": _ray(args.items),
    }
    print(f"{args.items:,} tiny items, concurrency {args.concurrency}\n")
    print("| runner | items/s |\n|---|---|")
    for label, rate in rows.items():
        print(f"| {label} | {'not installed' if rate is None else f'{rate:,.0f}'} |")
    ours, ray_rate = rows["pyfaas Function.map"], rows["Ray tasks"]
    assert ours is not None
    met = ours >= GOAL_PER_SECOND and (ray_rate is None or ours > ray_rate)
    print(f"\ngoal >= {GOAL_PER_SECOND:,} items/s and ahead of Ray: {'met' if met else 'not met'}")


if __name__ == "__main__":
    main()
