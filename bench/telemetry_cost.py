"""What metering and invocation logs cost per invocation, counted in instructions: the server's
own LogWriter and UsageWriter (with its Prometheus listener) on a SQLite store, fed the results
of no-op invocations in ticks of 150 (3,000 invocations/s), without the rest of the server.

    .venv/bin/python bench/telemetry_cost.py [--invocations 3000,9000] [--per-tick 150]
        [--modes logs,usage,both]

Runs itself under valgrind's callgrind (``--separate-threads``), once per mode (none, logs,
usage, both) and invocation count, and prints the instructions per invocation of the event
loop and of the store's write threads: the difference between the two counts divided by the
difference in invocations, so start-up and imports drop out, less mode ``none`` (the driver).
Instructions, not seconds: the same for the same code whatever else the machine does, which
the on/off rounds of bench/invoke.py --metering-only are not on a shared 2-core machine.
Slow (about a minute per run); needs valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("none", "logs", "usage", "both")
PER_TICK = 150
TICK_S = 0.05


async def _drive(mode: str, count: int, per_tick: int) -> None:
    from noop_invocations import noop_result, noop_version

    from pyfaas.metering.writer import UsageWriter
    from pyfaas.server.runner import GC_YOUNG_THRESHOLD
    from pyfaas.store import open_store
    from pyfaas.telemetry import LogWriter
    from pyfaas.telemetry.metrics import InvocationMetrics

    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(f"sqlite:///{Path(tmp, 'pyfaas.db')}")
        logs = LogWriter(store)
        usage = UsageWriter(store.usage, listeners=[InvocationMetrics()])
        await logs.start()
        await usage.start()
        # As the server does once started (server/runner.py): without it, full collections
        # walking every imported object would be counted as the writers' cost.
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        fv = noop_version(tmp)
        for start in range(0, count, per_tick):
            for _ in range(min(per_tick, count - start)):
                result = noop_result()
                started = time.time()
                if mode in ("logs", "both"):
                    logs.submit_invocation(fv, result, started)
                if mode in ("usage", "both"):
                    usage.record(fv, result, started)
            await asyncio.sleep(TICK_S)
        await logs.close()
        await usage.close()
        await store.close()


def _count(mode: str, count: int, per_tick: int) -> tuple[int, int]:
    """Instructions of (the event loop, the write threads) for one run under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "cg.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes",
             f"--callgrind-out-file={out}", sys.executable, __file__, "--per-tick", str(per_tick),
             "--run", mode, str(count)],
            check=True, capture_output=True,
        )  # fmt: skip
        totals = []
        for dump in sorted(Path(tmp).glob("cg.out-*")):
            line = next(x for x in dump.read_text().splitlines() if x.startswith("totals:"))
            totals.append(int(line.split()[1]))
    # Thread 1 is the event loop; the others are the store's write threads (asyncio.to_thread
    # may hand successive batches to different threads of its pool).
    return totals[0], sum(totals[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invocations", default="3000,9000", help="two counts, low,high")
    parser.add_argument("--per-tick", type=int, default=PER_TICK, help="invocations a tick")
    parser.add_argument("--modes", default="logs,usage,both", help="which, comma-separated")
    parser.add_argument("--run", nargs=2, metavar=("MODE", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        asyncio.run(_drive(args.run[0], int(args.run[1]), args.per_tick))
        return
    low, high = (int(n) for n in args.invocations.split(","))
    per: dict[str, tuple[float, float]] = {}
    modes = ["none", *(m for m in args.modes.split(",") if m in MODES[1:])]
    for mode in modes:
        print(f"  {mode} ...", file=sys.stderr, flush=True)
        (loop0, thread0) = _count(mode, low, args.per_tick)
        (loop1, thread1) = _count(mode, high, args.per_tick)
        per[mode] = ((loop1 - loop0) / (high - low), (thread1 - thread0) / (high - low))
    driver = per["none"][0]
    print("| mode | event loop, instructions/invocation | write threads | together |")
    print("|---|---|---|---|")
    for mode in modes[1:]:
        loop, thread = per[mode][0] - driver, per[mode][1]
        print(f"| {mode} | {loop:,.0f} | {thread:,.0f} | {loop + thread:,.0f} |")
    print(f"\n(the driver itself, mode none: {driver:,.0f} instructions per invocation)")


if __name__ == "__main__":
    main()
