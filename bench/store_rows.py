"""What storing an invocation's rows costs on SQLite: the CPU time (user+system, all threads) of
writing the usage record and the invocation log record of no-op invocations, in batches as the
server writes them, and what each index of the two tables adds to it.

    .venv/bin/python bench/store_rows.py [--invocations 100000] [--per-batch 4000] [--repeat 3]

Each case writes ``--invocations`` invocations (records made beforehand, as the server's writers
make them) through the store's own methods (UsageStore.append_usage, Store.append_log_rows:
the write thread of Transactions.in_thread) into a new database made by the migrations, in
batches of ``--per-batch`` (half a second at 8,000 invocations/s), and reports microseconds per
invocation, the median of ``--repeat`` runs. Cases: both rows; the usage record alone; the log
record alone; both rows with one index dropped (for each index of the two tables); both with
no index. The rest of the server (HTTP, workers) is left out: this is the floor that the
``metering and logs on vs off`` rounds of bench/invoke.py pay on top of building the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

from pyfaas.metering.writer import usage_record
from pyfaas.model import UsageRecord
from pyfaas.server.runner import GC_YOUNG_THRESHOLD
from pyfaas.store import open_store
from pyfaas.store.logs import LogRow
from pyfaas.telemetry.report import invocation_log_row

sys.path.insert(0, str(Path(__file__).parent))
from noop_invocations import noop_result, noop_version

TABLES = ("usage_records", "invocation_logs")
Batch = tuple[list[UsageRecord], list[LogRow]]


def _batches(count: int, per_batch: int) -> list[Batch]:
    """The usage records and log rows of ``count`` silent no-op invocations, in batches."""
    fv = noop_version(".")
    batches: list[Batch] = []
    for start in range(0, count, per_batch):
        usage: list[UsageRecord] = []
        logs: list[LogRow] = []
        for _ in range(min(per_batch, count - start)):
            result = noop_result()
            started = time.time()
            usage.append(usage_record(fv, result, started))
            logs.append(invocation_log_row(fv, result, started))
        batches.append((usage, logs))
    return batches


def _indexes(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            " AND tbl_name IN (?, ?) ORDER BY tbl_name, name",
            TABLES,
        ).fetchall()
    return [name for (name,) in rows]


async def _write(
    path: Path, batches: list[Batch], tables: tuple[str, ...], drop: list[str]
) -> float:
    """CPU seconds that writing ``batches`` to ``tables`` of a new store at ``path`` took."""
    store = await open_store(f"sqlite:///{path}")
    try:
        if drop:
            with sqlite3.connect(path) as conn:
                for name in drop:
                    conn.execute(f'DROP INDEX "{name}"')
        usage, logs = "usage_records" in tables, "invocation_logs" in tables
        # As the server does (server/runner.py): objects made before are out of the cyclic
        # collector's reach, or its full collections would walk every row made beforehand.
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        started = time.process_time()
        for records, rows in batches:
            # Handed over in the same turn of the loop, as the server's two writers do: one
            # transaction (Transactions.in_thread).
            writes: list[Awaitable[object]] = []
            if usage:
                writes.append(store.usage.append_usage(records))
            if logs:
                writes.append(store.append_log_rows(rows))
            await asyncio.gather(*writes)
        return time.process_time() - started
    finally:
        await store.close()


async def _main(args: argparse.Namespace) -> None:
    batches = _batches(args.invocations, args.per_batch)
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp, "probe.db")
        await (await open_store(f"sqlite:///{probe}")).close()  # migrated, then read
        indexes = _indexes(probe)
        cases: list[tuple[str, tuple[str, ...], list[str]]] = [
            ("both rows", TABLES, []),
            ("usage record alone", ("usage_records",), []),
            ("log record alone", ("invocation_logs",), []),
            *((f"both, without {name}", TABLES, [name]) for name in indexes),
            ("both, no index", TABLES, indexes),
        ]
        print(f"{args.invocations:,} invocations in batches of {args.per_batch}, "
              f"median of {args.repeat} runs")  # fmt: skip
        print("| case | us per invocation |")
        print("|---|---|")
        seconds: dict[str, list[float]] = {label: [] for label, _, _ in cases}
        for run in range(args.repeat):  # case after case, then again: drift hits each alike
            for label, tables, drop in cases:
                path = Path(tmp, f"{label}-{run}.db")
                seconds[label].append(await _write(path, batches, tables, drop))
                for leftover in path.parent.glob(f"{path.name}*"):  # with -wal, -shm
                    leftover.unlink()
        for label, _, _ in cases:
            per = statistics.median(seconds[label]) / args.invocations * 1e6
            print(f"| {label} | {per:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invocations", type=int, default=100_000)
    parser.add_argument("--per-batch", type=int, default=4000, help="rows of a table a batch")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median)")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
