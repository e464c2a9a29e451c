"""Cold start, no worker to a result, at the executor level: spawn vs zygote vs template.

For each handler (no imports; a set of stdlib modules; numpy when it is installed) and each
way of starting a worker, N times: ask the launcher for a new worker, invoke it once, take
the time until the result is back; then stop the worker (not timed) before the next round.
The template case forks from a template made (and timed) once beforehand.

With --sandbox, the same again with the isolation this machine allows (executor/sandbox.py:
a bubblewrap sandbox per version, a cgroup per worker), and "first": the first worker of a
version, whose sandbox (and template) are made for it, with and without the sandbox.

    .venv/bin/python bench/cold_start.py [--rounds 50] [--loop uvloop|asyncio] [--sandbox]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from pyfaas.executor.launcher import Launcher
from pyfaas.executor.sandbox import Isolation, detect, unsandboxed
from pyfaas.model import FunctionVersion, InvocationRequest, Limits

HANDLERS = {
    "no imports": "def handler(event, context):\n    return None\n",
    "stdlib set": (
        "import json, decimal, email, http.client, xml.etree.ElementTree, sqlite3\n"
        "def handler(event, context):\n    return None\n"
    ),
}
if importlib.util.find_spec("numpy"):
    HANDLERS["numpy"] = "import numpy\ndef handler(event, context):\n    return None\n"

# kind -> Launcher options
# kind -> (fork from a zygote?, fork from a per-version template?)
KINDS = {
    "spawn": (False, False),
    "zygote": (True, False),
    "template": (True, True),
    "first": (True, True),  # a version's first worker: its template (and sandbox) made anew
}


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
            assert state is not None and state.pid is not None, state
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            worker = await launcher.launch(fv)
            reply = await worker.invoke(InvocationRequest(str(uuid.uuid4()), b"{}"), 30)
            samples.append((time.perf_counter() - started) * 1000)
            assert not reply["error"], reply
            expected = "zygote" if kind == "first" else kind
            if not (isolation.sandboxed and kind == "spawn"):
                assert worker.start_kind == expected, (worker.start_kind, kind)
            await worker.stop()
            if kind == "first":
                await launcher.drop(fv.pool_key)
        return samples
    finally:
        await launcher.close()


async def main(rounds: int, sandbox: bool) -> None:
    modes = [("plain", unsandboxed())]
    if sandbox:
        isolation = await asyncio.to_thread(detect)
        missing = ", ".join(m.name for m in isolation.missing) or "nothing"
        print(f"isolated: sandboxed={isolation.sandboxed}; not enforced: {missing}")
        modes.append(("isolated", isolation))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "scratch").mkdir()
        print(f"cold start, no worker -> result; {rounds} rounds each; ms")
        print(f"{'handler':<12} {'mode':<9} {'kind':<9} {'p50':>7} {'p99':>7} {'mean':>7}")
        for label, code in HANDLERS.items():
            fv = function(root, label, code)
            for (mode, isolation), kind in ((m, k) for m in modes for k in KINDS):
                samples = await measure(root, kind, fv, rounds, isolation)
                print(
                    f"{label:<12} {mode:<9} {kind:<9} {statistics.median(samples):7.2f} "
                    f"{percentile(samples, 99):7.2f} {statistics.fmean(samples):7.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--sandbox", action="store_true", help="also measure with isolation")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run(main(args.rounds, args.sandbox))
