"""The local executor on its own: warm reuse, scale to zero, clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from pathlib import Path

from pyfaas.executor import LocalExecutor
from pyfaas.executor.worker import SocketChannel
from pyfaas.model import FunctionVersion, InvocationRequest, Limits
from pyfaas.runtime.wire import encode

PID_HANDLER = "import os\ndef handler(event, context):\n    return os.getpid()\n"


def function(tmp_path: Path, code: str, *, layer: Path | None = None) -> FunctionVersion:
    code_dir = tmp_path / "code"
    code_dir.mkdir(exist_ok=True)
    (code_dir / "handler.py").write_text(code)
    return FunctionVersion(
        name="probe",
        version="$LATEST",
        handler="handler.handler",
        runtime="python3.11",
        memory_mb=128,
        timeout_s=5,
        environment=(),
        code_sha256="0" * 64,
        code_dir=str(code_dir),
        layer_dir=str(layer) if layer else None,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes but still answers kill(0); and it may be reaped
    # between the two looks.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_warm_worker_is_reused_and_stopped_when_idle(tmp_path: Path) -> None:
    async def story() -> None:
        executor = LocalExecutor(
            limits=Limits(), scratch_dir=tmp_path / "scratch", idle_timeout_s=0.5
        )
        await executor.start()
        fv = function(tmp_path, PID_HANDLER)
        first = await executor.invoke(fv, InvocationRequest("r1", b"{}"))
        second = await executor.invoke(fv, InvocationRequest("r2", b"{}"))
        assert first.cold_start and not second.cold_start
        pid = json.loads(first.body)
        assert json.loads(second.body) == pid
        assert executor.stats("probe").workers_idle == 1
        for _ in range(50):
            await asyncio.sleep(0.1)
            if executor.stats("probe").workers_idle == 0:
                break
        assert executor.stats("probe").workers_idle == 0, "idle worker scaled to zero"
        # Leaving the pool is immediate; the process exiting and its scratch directory
        # going follow within the stop's grace period.
        for _ in range(100):
            if not alive(pid) and not list((tmp_path / "scratch").iterdir()):
                break
            await asyncio.sleep(0.05)
        assert not alive(pid)
        assert list((tmp_path / "scratch").iterdir()) == [], "scratch directories removed"
        third = await executor.invoke(fv, InvocationRequest("r3", b"{}"))
        assert third.cold_start
        await executor.close()

    asyncio.run(story())


def test_close_leaves_no_worker_processes_behind(tmp_path: Path) -> None:
    async def story() -> list[int]:
        executor = LocalExecutor(limits=Limits(), scratch_dir=tmp_path / "scratch")
        await executor.start()
        fv = function(tmp_path, PID_HANDLER + "import time\ndef slow(e, c):\n    time.sleep(1)\n")
        results = await asyncio.gather(
            *(executor.invoke(fv, InvocationRequest(f"r{i}", b"{}")) for i in range(4))
        )
        pids = [json.loads(r.body) for r in results]
        assert len(set(pids)) == 4, "concurrent calls run in separate processes"
        await executor.close()
        await executor.close()  # idempotent
        return pids

    pids = asyncio.run(story())
    assert not any(alive(pid) for pid in pids)


def test_a_layer_is_importable_by_the_handler(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    (layer / "layered_dep").mkdir(parents=True)
    (layer / "layered_dep" / "__init__.py").write_text("VALUE = 'from the layer'\n")
    code = "import layered_dep\ndef handler(e, c):\n    return layered_dep.VALUE\n"

    async def story() -> bytes:
        executor = LocalExecutor(limits=Limits(), scratch_dir=tmp_path / "scratch")
        await executor.start()
        try:
            fv = function(tmp_path, code, layer=layer)
            return (await executor.invoke(fv, InvocationRequest("r1", b"{}"))).body
        finally:
            await executor.close()

    assert json.loads(asyncio.run(story())) == "from the layer"


def test_a_cancelled_invocation_kills_its_worker_instead_of_leaking_it(tmp_path: Path) -> None:
    code = (
        "import os, time\ndef handler(event, context):\n"
        "    open(os.environ['TMPDIR'] + '/../../pid', 'w').write(str(os.getpid()))\n"
        "    time.sleep(30)\n"
    )

    async def story() -> int:
        executor = LocalExecutor(limits=Limits(), scratch_dir=tmp_path / "scratch")
        await executor.start()
        fv = function(tmp_path, code)
        call = asyncio.create_task(executor.invoke(fv, InvocationRequest("r1", b"{}")))
        pid_file = tmp_path / "scratch" / "pid"
        for _ in range(100):
            await asyncio.sleep(0.05)
            if pid_file.exists() and pid_file.read_text():
                break
        pid = int(pid_file.read_text())
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call
        await asyncio.sleep(0.3)
        stats = executor.stats("probe")
        assert (stats.workers_busy, stats.workers_idle) == (0, 0)
        await executor.close()
        return pid

    assert not alive(asyncio.run(story()))


def test_a_forked_workers_last_frame_wins_over_the_report_of_its_exit() -> None:
    # A forked worker that cannot load its handler writes init_error and exits; its exit is
    # reported by the forker on another socket and may be seen first (it was, under load:
    # "the worker exited while importing the handler (exit status 0)" instead of the error).
    async def main() -> tuple[object, bool]:
        ours, theirs = socket.socketpair()
        channel = SocketChannel()
        waiter = channel.waiter = asyncio.get_running_loop().create_future()
        await asyncio.get_running_loop().create_unix_connection(lambda: channel, sock=ours)
        theirs.sendall(encode({"t": "init_error", "code": "handler_not_found", "message": "m"}))
        theirs.close()
        channel.set_exited(0)  # before the loop has read the frame
        hello = await asyncio.wait_for(waiter, 5)
        await asyncio.sleep(0)
        return hello, channel.lost

    hello, lost = asyncio.run(main())
    assert hello == {"t": "init_error", "code": "handler_not_found", "message": "m"}
    assert lost
