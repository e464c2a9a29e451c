"""Every benchmark of bench/ in one run, then one summary against the goals of DESIGN.md.

    make bench        # = .venv/bin/python bench  (after installing the `bench` extra)

Runs bench/invoke.py (warm invoke, pyfaas vs baselines and peers at c=1/32/128),
bench/burst.py (200 invokes from zero workers), bench/idle_cost.py (1,000 idle functions) and
bench/async_queue.py (durable enqueue and delivery of async invocations), one after the
other, and prints each one's table and a summary.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import async_queue
import burst
import idle_cost
import invoke
from servers import ForeignLoad, wait_quiet

C1_P50_MS = 0.5
C32_PER_SECOND = 8000
IDLE_OVER_EMPTY_MB = 50
ENQUEUE_PER_SECOND = 5000


def summary(
    warm: invoke.InvokeReport,
    b: burst.BurstReport,
    idle: idle_cost.IdleCostReport,
    queue: async_queue.AsyncReport,
) -> Iterator[str]:
    """The goals of issues 3 and 4 and DESIGN.md, each with its figure from this run."""
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
            f"(medians of {len(m.on)} interleaved rounds: {on:,.0f} vs {off:,.0f}/s off) "
            f"| {verdict(m.cost <= 0.10)} |"
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


def main() -> None:
    settings = invoke.parse_settings()
    print(f"{datetime.date.today()}, {invoke.machine()}", file=sys.stderr)
    print("warm invoke (bench/invoke.py):", file=sys.stderr, flush=True)
    warm = invoke.run(settings)
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
    sections = [
        ("Warm sync invoke, no-op handler", list(invoke.table(warm))),
        ("Burst from zero", [*burst.table(b), f"- others' CPU: {burst_others.fraction:.0%}"]),
        ("Idle cost", [*idle_cost.table(idle), f"- others' CPU: {idle_others.fraction:.0%}"]),
        (
            "Asynchronous invocations",
            [*async_queue.table(queue), f"- others' CPU: {queue_others.fraction:.0%}"],
        ),
        ("Goals", list(summary(warm, b, idle, queue))),
    ]
    for title, lines in sections:
        print(f"\n### {title}\n")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
