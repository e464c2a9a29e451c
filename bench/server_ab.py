"""The server's CPU per invocation, two installs side by side: a base (say main's .venv) and
this one, in interleaved rounds.

    .venv/bin/python bench/server_ab.py --base ../main/.venv/bin [--rounds 4]
        [--requests 3000] [--seconds 3] [--batch-items 16] [--workloads c=1,c=32,map]
        [--telemetry off|on|on-vs-off|metering-vs-off|logs-vs-off]

Both servers run one no-op function, by default with PYFAAS_METERING=false and
PYFAAS_INVOCATION_LOGS=false (the invoke path alone). ``--telemetry on`` runs both with
metering and invocation logs on (what changes to them cost); ``on-vs-off`` runs the base with
them off and the new one with them on (give the same install twice: what they cost);
``metering-vs-off`` and ``logs-vs-off`` turn on only one of them in the new one (what each
costs alone: one row stored per invocation instead of two). Each
round measures, base then new then new then base ...:
  c=1     ``--requests`` invokes on one keep-alive connection: p50, p99
  c=32    32 connections for ``--seconds``: invocations/s, p50, p99
  map     as Function.map sends them: 32 connections, each posting invoke-batch requests
          of ``--batch-items`` events run one after the other (concurrency 1), for
          ``--seconds``: events/s
each with the server process's CPU per invocation (user+system of its threads, not the
workers', from /proc/PID/stat, over the invocations the server counted), which other load on
a shared machine moves much less than it moves rates, and the whole machine's busy CPU per
invocation (every process and the kernel, from /proc/stat: the load generator and the workers
too, and whatever else runs). Medians per install; others' CPU is the share of the machine
that processes outside this benchmark used meanwhile.

``--callgrind N``: instead, each server runs under valgrind's callgrind, counting the
instructions it executes (user space, all its threads; not the kernel's work) over N invokes
at c=32 and over N map-shaped events: a measure no other load on the machine moves. Slow
(valgrind runs the server ~50x slower); needs valgrind and callgrind_control.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import loadgen
from servers import BIN, HOST, NOOP_HANDLER, ForeignLoad, PyfaasServer, cpu_seconds, cpu_times

OFF = {"PYFAAS_METERING": "false", "PYFAAS_INVOCATION_LOGS": "false"}
TELEMETRY = {  # --telemetry: the environment of (base, new)
    "off": (OFF, OFF),
    "on": ({}, {}),
    "on-vs-off": (OFF, {}),
    "metering-vs-off": (OFF, {"PYFAAS_INVOCATION_LOGS": "false"}),
    "logs-vs-off": (OFF, {"PYFAAS_METERING": "false"}),
}


@dataclass(frozen=True)
class Round:
    per_second: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # the server's CPU per invocation
    machine_us: float  # the whole machine's busy CPU per invocation (every process, the kernel)


def measure(server: PyfaasServer, run: Callable[[], loadgen.Figures], events: int) -> Round:
    """One round of ``run`` (requests of ``events`` invocations each) against ``server``,
    with its CPU per invocation (warm-up calls included on both sides of the ratio)."""
    calls0, cpu0 = server.stats("noop")["invocations"], cpu_seconds(server.pid)
    busy0, _ = cpu_times()
    figures = run()
    busy1, _ = cpu_times()
    cpu1, calls1 = cpu_seconds(server.pid), server.stats("noop")["invocations"]
    calls = max(1, calls1 - calls0)
    return Round(
        figures.per_second * events,
        figures.p50_ms,
        figures.p99_ms,
        (cpu1 - cpu0) / calls * 1e6,
        (busy1 - busy0) / os.sysconf("SC_CLK_TCK") / calls * 1e6,
    )


def workloads(args: argparse.Namespace, port: int) -> dict[str, Callable[[], loadgen.Figures]]:
    invoke = loadgen.build_request(HOST, port, "/v1/functions/noop/invoke", b"{}", {})
    batch = loadgen.build_request(
        HOST, port, "/v1/functions/noop/invoke-batch", b"{}\n" * args.batch_items, {}
    )
    return {
        "c=1": lambda: loadgen.latency(HOST, port, invoke, args.requests),
        "c=32": lambda: loadgen.throughput(HOST, port, invoke, 32, args.seconds),
        "map": lambda: loadgen.throughput(HOST, port, batch, 32, args.seconds),
    }


def instructions(
    bin_dir: Path, label: str, env: dict[str, str], args: argparse.Namespace
) -> dict[str, float]:
    """Instructions per invocation of a server of ``bin_dir`` under callgrind, counted only
    while the measured requests run (warm-up excluded)."""
    work = Path(tempfile.mkdtemp(prefix=f"pyfaas-cg-{label}-"))
    wrapper = work / "bin" / "pyfaas"
    wrapper.parent.mkdir()
    python = bin_dir / "python"
    wrapper.write_text(
        "#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no "
        f'--callgrind-out-file={work}/cg.%p.out {python} {bin_dir / "pyfaas"} "$@" '
        f"2>>{work}/valgrind.log\n"
    )
    wrapper.chmod(0o755)
    counts: dict[str, float] = {}
    with PyfaasServer(work / "home", env, ready_timeout=600, bin_dir=wrapper.parent) as server:
        server.deploy("noop", NOOP_HANDLER)
        invoke = loadgen.build_request(HOST, server.port, "/v1/functions/noop/invoke", b"{}", {})
        batch = loadgen.build_request(
            HOST,
            server.port,
            "/v1/functions/noop/invoke-batch",
            b"{}\n" * args.batch_items,
            {},
        )
        for kind, request, events in (("c=32", invoke, 1), ("map", batch, args.batch_items)):
            requests = max(1, args.callgrind // events)
            loadgen.send(HOST, server.port, request, max(1, 300 // events), 32)  # warm-up
            calls0 = server.stats("noop")["invocations"]
            control = ["callgrind_control", "-i"]
            subprocess.run([*control, "on", str(server.pid)], check=True, capture_output=True)
            loadgen.send(HOST, server.port, request, requests, 32)
            subprocess.run([*control, "off", str(server.pid)], check=True, capture_output=True)
            calls = server.stats("noop")["invocations"] - calls0
            dumps = set(work.glob("cg.*.out.*"))
            subprocess.run(
                ["callgrind_control", "-d", str(server.pid)], check=True, capture_output=True
            )
            deadline = time.monotonic() + 60
            while not (new := set(work.glob("cg.*.out.*")) - dumps):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"callgrind wrote no dump in {work}")
                time.sleep(0.5)
            time.sleep(1)  # let it finish writing
            (dump,) = new
            total = next(
                int(line.split()[1])
                for line in dump.read_text().splitlines()
                if line.startswith("totals:")
            )
            counts[kind] = total / calls
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="the base install's bin dir")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batch-items", type=int, default=16)
    parser.add_argument("--workloads", default="c=1,c=32,map", help="which, comma-separated")
    parser.add_argument("--callgrind", type=int, default=0, metavar="N")
    parser.add_argument("--telemetry", choices=sorted(TELEMETRY), default="off")
    args = parser.parse_args()
    installs = {"base": args.base.resolve(), "new": BIN}
    envs = dict(zip(installs, TELEMETRY[args.telemetry], strict=True))
    if args.callgrind:
        counted = {
            label: instructions(b, label, envs[label], args) for label, b in installs.items()
        }
        print("| workload | base instructions/call | new | new / base |")
        print("|---|---|---|---|")
        for kind in ("c=32", "map"):
            base, new = counted["base"][kind], counted["new"][kind]
            print(f"| {kind} | {base:,.0f} | {new:,.0f} | {new / base:.2f} |")
        return
    servers: dict[str, PyfaasServer] = {}
    results: dict[tuple[str, str], list[Round]] = {}
    try:
        for label, bin_dir in installs.items():
            home = Path(tempfile.mkdtemp(prefix=f"pyfaas-ab-{label}-"))
            server = servers[label] = PyfaasServer(home, envs[label], bin_dir=bin_dir).__enter__()
            server.deploy("noop", NOOP_HANDLER)
        order = list(servers)
        with ForeignLoad() as others:
            for number in range(args.rounds):
                for label in order if number % 2 == 0 else order[::-1]:
                    server = servers[label]
                    for kind, run in workloads(args, server.port).items():
                        if kind not in args.workloads.split(","):
                            continue
                        events = args.batch_items if kind == "map" else 1
                        r = measure(server, run, events)
                        results.setdefault((kind, label), []).append(r)
                        print(
                            f"round {number} {label:4} {kind:5} {r.per_second:8,.0f}/s "
                            f"p50 {r.p50_ms:7.3f} p99 {r.p99_ms:8.3f} ms "
                            f"server {r.cpu_us:5.0f} machine {r.machine_us:5.0f} us/call",
                            flush=True,
                        )
        print(f"\nmedians of {args.rounds} rounds; others' CPU {others.fraction:.0%}")
        print(
            "| workload | install | calls/s | p50 ms | p99 ms | server CPU us/call "
            "| machine CPU us/call |"
        )
        print("|---|---|---|---|---|---|---|")
        for (kind, label), rounds in results.items():
            med = {
                f: statistics.median(getattr(r, f) for r in rounds) for f in Round.__annotations__
            }
            print(
                f"| {kind} | {label} | {med['per_second']:,.0f} | {med['p50_ms']:.3f} | "
                f"{med['p99_ms']:.3f} | {med['cpu_us']:.0f} | {med['machine_us']:.0f} |"
            )
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)


if __name__ == "__main__":
    main()
