"""Every benchmark of bench/ in one run, then one summary against the goals of DESIGN.md.

    make bench        # = .venv/bin/python bench  (after installing the `bench` extra)

Runs bench/invoke.py (warm invoke, pyfaas vs baselines and peers at c=1/32/128),
bench/cold_start.py (spawn vs zygote vs template fork, no-import and numpy handlers),
bench/burst.py (200 invokes from zero workers), bench/idle_cost.py (1,000 idle functions),
bench/async_queue.py (durable enqueue and delivery of async invocations),
bench/lambda_invoke.py (boto3 invoke next to the native endpoint, c=1, ~15 s) and
bench/sdk_map.py (the SDK's Function.map against ProcessPoolExecutor.map and Ray tasks), one
after the other, and prints each one's table and a summary.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import async_queue
import burst
import cold_start
import idle_cost
import invoke
import lambda_invoke
import sdk_map
from servers import ForeignLoad, wait_quiet

C1_P50_MS = 0.5
C32_PER_SECOND = 8000
IDLE_OVER_EMPTY_MB = 50
ENQUEUE_PER_SECOND = 5000


def summary(
    warm: invoke.InvokeReport,
    cold: cold_start.ColdStartReport,
    b: burst.BurstReport,
    idle: idle_cost.IdleCostReport,
    queue: async_queue.AsyncReport,
    boto3: lambda_invoke.LambdaInvokeReport,
    fan_out: sdk_map.MapReport,
) -> Iterator[str]:
    """The goals of issues 3, 4 and 9 and DESIGN.md, each with its figure from this run."""
    ours = warm.rows["pyfaas"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    yield "| goal | measured | |"
    yield "|---|---|---|"
    if 1 in ours:
        p50 = ours[1].p50_ms
        yield f"| c=1 p50 <= {C1_P50_MS} ms | {p50:.3f} ms | {verdict(p50 <= C1_P50_MS)} |"
    if 32 in ours:
        rate = ours[32].per_second
        yield (
            f"| c=32 >= {C32_PER_SECOND:,} invocations/s | {rate:,.0f}/s "
            f"| {verdict(rate >= C32_PER_SECOND)} |"
        )
    for c, m in warm.metering.items():
        on, off = m.median_rate(m.on), m.median_rate(m.off)
        yield (
            f"| metering and logs cost <= 10% of throughput at c={c} | {m.cost:+.1%} "
            f"(medians of {len(m.on)} interleaved rounds: {on:,.0f} vs {off:,.0f}/s off), "
            f"{m.paired_cost:+.1%} (rounds paired) "
            f"| {verdict(max(m.cost, m.paired_cost) <= 0.10)} |"
        )
    for peer in invoke.PEERS:
        if peer not in warm.rows:
            yield f"| ahead of {peer} on every row | did not run | **not measured** |"
            continue
        for c, theirs in warm.rows[peer].items():
            ahead = ours[c].p50_ms < theirs.p50_ms and ours[c].per_second > theirs.per_second
            yield (
                f"| ahead of {peer} at c={c} | p50 {ours[c].p50_ms:.2f} vs "
                f"{theirs.p50_ms:.2f} ms, {ours[c].per_second:,.0f} vs "
                f"{theirs.per_second:,.0f}/s | {verdict(ahead)} |"
            )
    for label, goal, p50 in cold_start.goals(cold):
        yield (
            f"| cold start p50 <= {goal:g} ms ({label}, template fork) | {p50:.2f} ms "
            f"| {verdict(p50 <= goal)} |"
        )
    yield (
        f"| {b.requests} invokes from zero: all succeed or are throttled | "
        f"{b.succeeded} ok, {b.throttled} x 429, {b.requests - b.succeeded - b.throttled} "
        f"other; p99 {b.p99_ms:,.0f} ms, all done in {b.all_done_s:.1f} s, "
        f"{b.peak_workers} workers | "
        f"{verdict(b.succeeded + b.throttled == b.requests)} |"
    )
    over = idle.over_empty_mb
    yield (
        f"| {idle.functions:,} idle functions < {IDLE_OVER_EMPTY_MB} MB over empty | "
        f"{over:+.1f} MB ({idle.empty_mb:.1f} -> {idle.loaded_mb:.1f} MB) "
        f"| {verdict(over < IDLE_OVER_EMPTY_MB)} |"
    )
    c = queue.settings.concurrency
    enqueue = queue.enqueue[str(c)].per_second
    yield (
        f"| durable enqueue >= {ENQUEUE_PER_SECOND:,} events/s at c={c} | {enqueue:,.0f}/s "
        f"| {verdict(enqueue >= ENQUEUE_PER_SECOND)} |"
    )
    (alone, with_backlog) = [events / seconds for events, seconds in queue.delivery.values()]
    yield (
        f"| a stopped function's {queue.backlog:,} queued events do not slow another's "
        f"delivery | {with_backlog:,.0f} vs {alone:,.0f} events/s "
        f"| {verdict(with_backlog >= 0.9 * alone)} |"
    )
    rows = boto3.rows
    for native in (lambda_invoke.NATIVE, lambda_invoke.NATIVE_URLLIB3):
        times = rows[lambda_invoke.BOTO3][1].p50_ms / rows[native][1].p50_ms
        yield (
            f"| boto3 invoke p50 within {lambda_invoke.GOAL_RATIO}x of {native} | "
            f"{times:.2f}x | {verdict(times <= lambda_invoke.GOAL_RATIO)} |"
        )
    ray = f"{fan_out.ray:,.0f}/s" if isinstance(fan_out.ray, float) else str(fan_out.ray)
    yield (
        f"| Function.map of {fan_out.items:,} tiny items at c={fan_out.concurrency} >= "
        f"{sdk_map.GOAL_PER_SECOND:,} items/s, ahead of Ray tasks | {fan_out.pyfaas:,.0f}/s "
        f"(Ray {ray}, ProcessPoolExecutor {fan_out.process_pool:,.0f}/s) "
        f"| {verdict(fan_out.goal_met)} |"
    )


def main() -> None:
    settings = invoke.parse_settings()
    print(f"{datetime.date.today()}, {invoke.machine()}", file=sys.stderr)
    print("warm invoke (bench/invoke.py):", file=sys.stderr, flush=True)
    warm = invoke.run(settings)
    print("cold start (bench/cold_start.py) ...", file=sys.stderr, flush=True)
    wait_quiet()
    with ForeignLoad() as cold_others:
        cold = cold_start.run()
    print("burst from zero (bench/burst.py) ...", file=sys.stderr, flush=True)
    wait_quiet()
    with ForeignLoad() as burst_others:
        b = burst.run()
    print("idle cost (bench/idle_cost.py) ...", file=sys.stderr, flush=True)
    wait_quiet()
    with ForeignLoad() as idle_others:
        idle = idle_cost.run()
    print("async queue (bench/async_queue.py) ...", file=sys.stderr, flush=True)
    with ForeignLoad() as queue_others:
        queue = async_queue.run(async_queue.AsyncSettings())
    print("boto3 invoke (bench/lambda_invoke.py) ...", file=sys.stderr, flush=True)
    boto3 = lambda_invoke.run(invoke.InvokeSettings(requests=1000, concurrencies=(1,)))
    print("Function.map (bench/sdk_map.py) ...", file=sys.stderr, flush=True)
    wait_quiet()
    with ForeignLoad() as map_others:
        fan_out = sdk_map.run()
    sections = [
        ("Warm sync invoke, no-op handler", list(invoke.table(warm))),
        ("Cold start", [*cold_start.table(cold), f"- others' CPU: {cold_others.fraction:.0%}"]),
        ("Burst from zero", [*burst.table(b), f"- others' CPU: {burst_others.fraction:.0%}"]),
        ("Idle cost", [*idle_cost.table(idle), f"- others' CPU: {idle_others.fraction:.0%}"]),
        (
            "Asynchronous invocations",
            [*async_queue.table(queue), f"- others' CPU: {queue_others.fraction:.0%}"],
        ),
        ("boto3 invoke next to the native endpoint", list(lambda_invoke.table(boto3))),
        (
            "Function.map fan-out",
            [*sdk_map.table(fan_out), f"- others' CPU: {map_others.fraction:.0%}"],
        ),
        ("Goals", list(summary(warm, cold, b, idle, queue, boto3, fan_out))),
    ]
    for title, lines in sections:
        print(f"\n### {title}\n")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
