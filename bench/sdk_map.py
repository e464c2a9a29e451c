"""The SDK's fan-out: ``Function.map`` over many tiny inputs, against the same loop run with
``concurrent.futures.ProcessPoolExecutor.map`` and with Ray tasks, in one run.

    .venv/bin/python bench/sdk_map.py [--items 10000] [--concurrency 32]
    .venv/bin/python bench/sdk_map.py --items 10000 --ab-rounds 3

pyfaas: a fresh server, one function deployed with the SDK, warmed up with one map of
``20 x concurrency`` items (the server starts its workers); then
``list(add_one.map(range(items), concurrency=N))``, results in order. ProcessPoolExecutor:
N processes, chunksize 1 (one round trip per item, as a remote call is). Ray:
``ray.get([add_one_ray.remote(i) for i in range(items)])`` on a local cluster (reported, not
fatal, when it is not installed or does not start). Goal (issue 9): >= 5,000 items/s, ahead
of Ray.

``--ab-rounds N``: instead, N interleaved rounds on one server of map in batches (its default)
against ``batch_size=1`` (one ``/invoke`` request per item, as map did before batches), each
with the CPU per item of this process (the SDK) and of the server with every process under it
(workers), from /proc/PID/stat: a measure that a busy machine disturbs less than items/s.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from servers import PyfaasServer, children, cpu_seconds

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


def _tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and every live process under it (workers, zygotes)."""
    try:
        own = cpu_seconds(pid)
    except FileNotFoundError:  # it ended meanwhile
        return 0.0
    return own + sum(_tree_cpu_seconds(child) for child in children(pid))


def ab_rounds(items: int, concurrency: int, rounds: int) -> list[str]:
    """Interleaved rounds of map in batches vs batch_size=1, with CPU per item."""
    lines = [
        "| round | batches | items/s | SDK CPU/item | server+workers CPU/item | load |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as home, PyfaasServer(Path(home)) as server:
        app.connect(Client(server.url))
        app.deploy(quiet=True)
        list(add_one.map(range(20 * concurrency), concurrency=concurrency, progress=False))
        for number in range(rounds):
            for size, label in ((None, "adaptive"), (1, "1 item")):
                client, served = cpu_seconds(os.getpid()), _tree_cpu_seconds(server.pid)
                started = time.perf_counter()
                results = list(
                    add_one.map(
                        range(items), concurrency=concurrency, progress=False, batch_size=size
                    )
                )
                elapsed = time.perf_counter() - started
                client = cpu_seconds(os.getpid()) - client
                served = _tree_cpu_seconds(server.pid) - served
                assert results == [i + 1 for i in range(items)]
                lines.append(
                    f"| {number + 1} | {label} | {items / elapsed:,.0f} "
                    f"| {1e6 * client / items:.0f} us | {1e6 * served / items:.0f} us "
                    f"| {os.getloadavg()[0]:.1f} |"
                )
                print(lines[-1], flush=True)
    return lines


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
    parser.add_argument("--ab-rounds", type=int, default=0, help="batches vs 1 item a request")
    args = parser.parse_args()
    if args.ab_rounds:
        ab_rounds(args.items, args.concurrency, args.ab_rounds)
        return
    report = run(args.items, args.concurrency)
    print("\n".join(table(report)))
    verdict = "met" if report.goal_met else "not met"
    print(f"\ngoal >= {GOAL_PER_SECOND:,} items/s and ahead of Ray: {verdict}")


if __name__ == "__main__":
    main()
