"""Cold start, no worker to a result, at the executor level: spawn vs zygote vs template.

For each handler (no imports; numpy) and each way of starting a worker, N times: ask the
launcher for a new worker, invoke it once, take the time until the result is back; then stop
the worker (not timed) before the next round. The template case forks from a template made
(and not timed) once beforehand; ``first`` (with --first or --sandbox) is a version's first
worker, its template made anew each round.

With --sandbox, the same again with the isolation this machine allows (executor/sandbox.py:
a bubblewrap sandbox per version, a cgroup per worker).

    .venv/bin/python bench/cold_start.py [--rounds 50] [--loop uvloop|asyncio] [--first]
        [--sandbox] [--stdlib]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from pyfaas.executor.launcher import Launcher
from pyfaas.executor.sandbox import Isolation, detect, unsandboxed
from pyfaas.model import FunctionVersion, InvocationRequest, Limits

NO_IMPORTS = "no imports"
NUMPY = "numpy"
HANDLERS = {
    NO_IMPORTS: "def handler(event, context):\n    return None\n",
    NUMPY: "import numpy\ndef handler(event, context):\n    return None\n",
}
STDLIB = (
    "stdlib set",
    "import json, decimal, email, http.client, xml.etree.ElementTree, sqlite3\n"
    "def handler(event, context):\n    return None\n",
)
# The goals of issue 3 and DESIGN.md: p50 of a template fork, per handler.
GOALS_P50_MS = {NO_IMPORTS: 10.0, NUMPY: 15.0}

# kind -> (fork from a zygote?, fork from a per-version template?)
KINDS = {
    "spawn": (False, False),
    "zygote": (True, False),
    "template": (True, True),
    "first": (True, True),  # a version's first worker: its template (and sandbox) made anew
}


@dataclass(frozen=True)
class ColdStartSettings:
    rounds: int = 50
    kinds: tuple[str, ...] = ("spawn", "zygote", "template")
    sandbox: bool = False
    stdlib: bool = False
    loop: str = "uvloop"


@dataclass(frozen=True)
class Cell:
    """One handler started one way, ``samples`` times: ms from asking to the result."""

    p50_ms: float
    p99_ms: float
    mean_ms: float


@dataclass
class ColdStartReport:
    settings: ColdStartSettings
    # (handler, mode, kind) -> figures; mode "plain" or "isolated"
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def function(root: Path, label: str, code: str) -> FunctionVersion:
    code_dir = root / f"code-{abs(hash(label))}"
    code_dir.mkdir()
    (code_dir / "handler.py").write_text(code)
    return FunctionVersion(
        name="bench",
        version="$LATEST",
        handler="handler.handler",
        runtime="python3.11",
        memory_mb=1024,
        timeout_s=30,
        environment=(),
        code_sha256=uuid.uuid4().hex * 2,
        code_dir=str(code_dir),
    )


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure(
    root: Path, kind: str, fv: FunctionVersion, rounds: int, isolation: Isolation
) -> list[float]:
    zygote, templates = KINDS[kind]
    launcher = Launcher(
        scratch_root=root / "scratch",
        limits=Limits(),
        zygote=zygote,
        templates=templates,
        isolation=isolation,
    )
    await launcher.start()
    try:
        if kind == "template":
            first = await launcher.launch(fv)  # makes the template; not counted
            await first.stop()
            state = await launcher.wait_template(fv.pool_key)
            if state is None or state.pid is None:
                raise RuntimeError(f"no template: {state}")
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            worker = await launcher.launch(fv)
            reply = await worker.invoke(InvocationRequest(str(uuid.uuid4()), b"{}"), 30)
            samples.append((time.perf_counter() - started) * 1000)
            if reply["error"]:
                raise RuntimeError(f"the handler failed: {reply['body']!r}")
            expected = "zygote" if kind == "first" else kind
            if not (isolation.sandboxed and kind == "spawn") and worker.start_kind != expected:
                raise RuntimeError(f"asked for {kind}, the worker came by {worker.start_kind}")
            await worker.stop()
            if kind == "first":
                await launcher.drop(fv.pool_key)
        return samples
    finally:
        await launcher.close()


async def measure_all(
    settings: ColdStartSettings, progress: Callable[[str], None]
) -> ColdStartReport:
    report = ColdStartReport(settings)
    modes = [("plain", unsandboxed())]
    if settings.sandbox:
        isolation = await asyncio.to_thread(detect)
        missing = ", ".join(m.name for m in isolation.missing) or "nothing"
        report.notes.append(f"isolated: sandboxed={isolation.sandboxed}; not enforced: {missing}")
        modes.append(("isolated", isolation))
    handlers = dict(HANDLERS)
    if settings.stdlib:
        handlers[STDLIB[0]] = STDLIB[1]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "scratch").mkdir()
        for label, code in handlers.items():
            fv = function(root, label, code)
            for mode, isolation in modes:
                for kind in settings.kinds:
                    samples = await measure(root, kind, fv, settings.rounds, isolation)
                    cell = Cell(
                        p50_ms=statistics.median(samples),
                        p99_ms=percentile(samples, 99),
                        mean_ms=statistics.fmean(samples),
                    )
                    report.cells[(label, mode, kind)] = cell
                    progress(f"{label:<12} {mode:<9} {kind:<9} p50 {cell.p50_ms:7.2f} ms")
    return report


def run(
    settings: ColdStartSettings | None = None, progress: Callable[[str], None] | None = None
) -> ColdStartReport:
    """Measure every handler, mode and kind of ``settings``, one after the other."""
    settings = settings or ColdStartSettings()
    factory = uvloop.new_event_loop if settings.loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(measure_all(settings, progress or (lambda line: None)))


def table(r: ColdStartReport) -> list[str]:
    s = r.settings
    lines = [
        f"No worker to a result (launch, one invoke), {s.rounds} rounds each, {s.loop}; ms",
        "",
        "| handler | mode | kind | p50 | p99 | mean |",
        "|---|---|---|---|---|---|",
    ]
    for (label, mode, kind), c in r.cells.items():
        lines.append(
            f"| {label} | {mode} | {kind} | {c.p50_ms:.2f} | {c.p99_ms:.2f} | {c.mean_ms:.2f} |"
        )
    return lines + [f"- {note}" for note in r.notes]


def goals(r: ColdStartReport) -> list[tuple[str, float, float]]:
    """(handler, goal p50 ms, measured p50 ms of a template fork) for each goal measured."""
    return [
        (label, goal, r.cells[(label, "plain", "template")].p50_ms)
        for label, goal in GOALS_P50_MS.items()
        if (label, "plain", "template") in r.cells
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--first", action="store_true", help="also a version's first worker")
    parser.add_argument("--sandbox", action="store_true", help="also measure with isolation")
    parser.add_argument("--stdlib", action="store_true", help="also a handler importing stdlib")
    args = parser.parse_args()
    kinds = tuple(k for k in KINDS if k != "first" or args.first or args.sandbox)
    settings = ColdStartSettings(args.rounds, kinds, args.sandbox, args.stdlib, args.loop)
    report = run(settings, lambda line: print(line, file=sys.stderr, flush=True))
    print("\n".join(table(report)))
    for label, goal, p50 in goals(report):
        print(f"- template fork, {label}: p50 {p50:.2f} ms (goal <= {goal:g} ms)")


if __name__ == "__main__":
    main()
