"""Cold starts by fork: workers forked from the zygote or from a version's template, and the
promises a spawned worker keeps (environment, descriptors, errors, clean exits) kept by them.
Real zygote, real templates, real forks: nothing here is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pyfaas.executor import LocalExecutor
from pyfaas.executor.launcher import Launcher
from pyfaas.executor.worker import WorkerDied, WorkerProcess, WorkerTimedOut
from pyfaas.model import FunctionVersion, InvocationRequest, InvocationResult, Limits

T = TypeVar("T")

PID = "import os\ndef handler(event, context):\n    return os.getpid()\n"


def function(
    tmp_path: Path,
    code: str,
    *,
    name: str = "forked",
    timeout_s: int = 3,
    memory_mb: int = 128,
    environment: dict[str, str] | None = None,
) -> FunctionVersion:
    code_dir = tmp_path / f"code-{name}"
    code_dir.mkdir(exist_ok=True)
    (code_dir / "handler.py").write_text(code)
    return FunctionVersion(
        name=name,
        version="$LATEST",
        handler="handler.handler",
        runtime="python3.11",
        memory_mb=memory_mb,
        timeout_s=timeout_s,
        environment=tuple(sorted((environment or {}).items())),
        code_sha256=uuid.uuid4().hex * 2,
        code_dir=str(code_dir),
    )


def call(payload: object = None) -> InvocationRequest:
    body = b"" if payload is None else json.dumps(payload).encode()
    return InvocationRequest(request_id=str(uuid.uuid4()), payload=body)


async def run(worker: WorkerProcess, payload: object = None, timeout_s: float = 3) -> Any:
    reply = await worker.invoke(call(payload), timeout_s)
    assert not reply["error"], reply["body"]
    return json.loads(reply["body"])


@contextlib.asynccontextmanager
async def launcher(tmp_path: Path, **options: Any) -> AsyncIterator[Launcher]:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    it = Launcher(scratch_root=scratch, limits=Limits(), **options)
    await it.start()
    try:
        yield it
    finally:
        await it.close()


def with_launcher(tmp_path: Path, body: Callable[[Launcher], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        async with launcher(tmp_path, **options) as it:
            return await body(it)

    return asyncio.run(main())


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    """True while ``pid`` is a running (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


async def gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, grandchildren...)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if alive(int(entry)):
                    parents[int(entry)] = parent_of(int(entry))
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


# -- how a worker comes to be -------------------------------------------------------------------


def test_a_worker_forked_from_the_zygote_runs_hello_and_says_so(tmp_path: Path) -> None:
    fv = function(tmp_path, "def handler(event, context):\n    return 'hello ' + event['who']\n")

    async def body(it: Launcher) -> tuple[WorkerProcess, Any, int, int | None]:
        worker = await it.launch(fv)
        answer = await run(worker, {"who": "world"})
        return worker, answer, parent_of(worker.pid), it.zygote_pid

    worker, answer, parent, zygote = with_launcher(tmp_path, body, templates=False)
    assert answer == "hello world"
    assert worker.start_kind == "zygote"
    assert zygote is not None and parent == zygote, "forked by the zygote, not spawned"
    assert worker.init_ms > 0


def test_the_executor_reports_how_a_cold_starts_worker_was_made(tmp_path: Path) -> None:
    fv = function(tmp_path, "import time\ntime.sleep(0.2)\n" + PID)

    async def main() -> list[InvocationResult]:
        ex = LocalExecutor(limits=Limits(), scratch_dir=tmp_path / "scratch")
        await ex.start()
        try:
            slow = "import os, time\ndef handler(e, c):\n    time.sleep(0.3)\n    return 1\n"
            busy = function(tmp_path, "import time\ntime.sleep(0.2)\n" + slow, name="busy")
            cold = await ex.invoke(fv, call({}))
            warm = await ex.invoke(fv, call({}))
            burst = await asyncio.gather(ex.invoke(busy, call({})), ex.invoke(busy, call({})))
            return [cold, warm, *burst]
        finally:
            await ex.close()

    cold, warm, *burst = asyncio.run(main())
    assert cold.start_kind == "zygote" and cold.init_duration_ms is not None
    assert cold.init_duration_ms >= 200, "Init Duration includes the import the caller waited for"
    assert warm.start_kind is None and warm.init_duration_ms is None
    kinds = sorted(str(r.start_kind) for r in burst)
    assert kinds == ["template", "zygote"], "the second cold start forked from the template"
    by_kind = {r.start_kind: r for r in burst}
    template_init = by_kind["template"].init_duration_ms
    assert template_init is not None and template_init >= 200, (
        "it waited for the template's import: that wait is its Init Duration"
    )


def test_the_next_worker_of_a_version_forks_from_its_template_without_importing(
    tmp_path: Path,
) -> None:
    code = "import time\nprint('importing')\ntime.sleep(0.3)\n" + PID

    async def body(it: Launcher) -> list[Any]:
        fv = function(tmp_path, code)
        first = await it.launch(fv)
        state = await it.wait_template(fv.pool_key)
        second = await it.launch(fv)
        first_reply = await first.invoke(call({}), 3)
        second_reply = await second.invoke(call({}), 3)
        assert state is not None and state.pid is not None
        made_by = [parent_of(state.pid), it.zygote_pid, parent_of(first.pid)]
        return [first, second, state.pid, first_reply, second_reply, made_by]

    first, second, template, first_reply, second_reply, made_by = with_launcher(tmp_path, body)
    assert first.start_kind == "zygote" and second.start_kind == "template"
    assert first.init_ms >= 300 and first.import_ms >= 300
    assert second.import_ms == 0 and second.init_ms < 200, "no import paid again"
    assert json.loads(second_reply["body"]) == second.pid
    assert first_reply["logs"] == "importing\n", "the import's output goes with the first call"
    assert second_reply["logs"] == ""
    template_parent, zygote, first_parent = made_by
    assert template_parent == zygote and first_parent == template
    assert not alive(template), "close() killed the template"


# A thread started at import; an event loop made at import (what Mangum(app) does; a loop
# captured at import is a common Lambda pattern), a socket or file left open: forking is unsafe.
UNSAFE_TO_FORK = {
    "thread": (
        "import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n" + PID,
        "2 threads",
    ),
    "event-loop": (
        "import asyncio, os\nLOOP = asyncio.new_event_loop()\n"
        "def handler(event, context):\n"
        "    return LOOP.run_until_complete(asyncio.sleep(0, result=os.getpid()))\n",
        "asyncio event loop",
    ),
    # A connection made at import (a database client at module level, a common Lambda
    # pattern): a forked worker would find it closed, or share it with its siblings.
    "socket": ("import socket\nCONN = socket.socket()\n" + PID, "a socket"),
    "file": ("LOG = open(__file__)\n" + PID, "a file ("),
}


@pytest.mark.parametrize("case", sorted(UNSAFE_TO_FORK))
def test_a_module_unsafe_to_fork_gets_no_template_and_the_reason_is_kept(
    tmp_path: Path, case: str
) -> None:
    code, reason = UNSAFE_TO_FORK[case]

    async def body(it: Launcher) -> list[Any]:
        fv = function(tmp_path, code)
        first = await it.launch(fv)
        state = await it.wait_template(fv.pool_key)
        second = await it.launch(fv)
        answers = [await run(first), await run(second)]
        return [first, second, state, answers, parent_of(second.pid), it.zygote_pid]

    first, second, state, answers, second_parent, zygote = with_launcher(tmp_path, body)
    assert state is not None and state.pid is None
    assert state.skipped is not None and reason in state.skipped
    assert first.start_kind == "zygote", "the would-be template serves as the first worker"
    assert second.start_kind == "zygote" and second_parent == zygote, "forked from the zygote"
    assert answers == [first.pid, second.pid]


NUMPY = (
    "import os, threading\nimport numpy\n"
    "def handler(event, context):\n"
    "    return {'pid': os.getpid(), 'threads': len(os.listdir('/proc/self/task')),\n"
    "            'openblas': os.environ['OPENBLAS_NUM_THREADS'],\n"
    "            'dot': int(numpy.arange(4) @ numpy.arange(4))}\n"
)


def test_a_numpy_function_gets_a_template_and_its_next_worker_skips_the_import(
    tmp_path: Path,
) -> None:
    """OpenBLAS starts its threads when numpy is imported: single-threaded by default, the
    template is safe and the second worker is forked from it, numpy already imported."""

    async def body(it: Launcher) -> list[Any]:
        fv = function(tmp_path, NUMPY, memory_mb=256)
        first = await it.launch(fv)
        state = await it.wait_template(fv.pool_key)
        second = await it.launch(fv)
        return [first, second, state, await run(first), await run(second)]

    first, second, state, first_seen, second_seen = with_launcher(tmp_path, body)
    assert state is not None and state.skipped is None and state.pid is not None
    assert first.start_kind == "zygote" and second.start_kind == "template"
    assert second.import_ms == 0 and second.init_ms < first.import_ms, "numpy not imported again"
    for seen in (first_seen, second_seen):
        assert seen["threads"] == 1 and seen["openblas"] == "1" and seen["dot"] == 14
    assert second_seen["pid"] == second.pid


def test_a_numpy_function_that_asks_for_blas_threads_gets_them_and_no_template(
    tmp_path: Path,
) -> None:
    """The function's own OPENBLAS_NUM_THREADS wins over the default; its import then starts
    a thread, so the template is skipped (and says why) and workers fork from the zygote."""

    async def body(it: Launcher) -> list[Any]:
        fv = function(tmp_path, NUMPY, memory_mb=256, environment={"OPENBLAS_NUM_THREADS": "2"})
        first = await it.launch(fv)
        state = await it.wait_template(fv.pool_key)
        second = await it.launch(fv)
        return [first, second, state, await run(second), it.zygote_pid, parent_of(second.pid)]

    first, second, state, seen, zygote, parent = with_launcher(tmp_path, body)
    assert state is not None and state.pid is None
    assert state.skipped is not None and "2 threads" in state.skipped
    assert first.start_kind == "zygote" and second.start_kind == "zygote" and parent == zygote
    assert seen["openblas"] == "2" and seen["threads"] == 2
    assert seen["dot"] == 14


def test_random_is_reseeded_and_at_fork_hooks_see_each_workers_own_values(
    tmp_path: Path,
) -> None:
    code = (
        "import os, random\n"
        "SEEN = []\n"
        "os.register_at_fork(after_in_child=lambda: SEEN.append(\n"
        "    [os.environ['AWS_LAMBDA_LOG_STREAM_NAME'], os.environ['HOME'], os.getcwd()]))\n"
        "def handler(event, context):\n"
        "    return {'random': random.random(), 'hook': SEEN, 'stream': context.log_stream_name,\n"
        "            'home': os.environ['HOME'], 'tmp': os.environ['TMPDIR']}\n"
    )

    async def body(it: Launcher) -> list[Any]:
        fv = function(tmp_path, code)
        await it.launch(fv)
        await it.wait_template(fv.pool_key)
        workers = [await it.launch(fv) for _ in range(3)]
        assert {w.start_kind for w in workers} == {"template"}
        return [await run(w) for w in workers]

    seen = with_launcher(tmp_path, body)
    assert len({s["random"] for s in seen}) == 3, "each forked worker has its own random state"
    assert len({s["stream"] for s in seen}) == 3
    for s in seen:
        assert s["hook"] == [[s["stream"], s["home"], s["home"]]], (
            "the hook ran once, as this worker"
        )
        assert s["tmp"] == s["home"] + "/tmp"


# -- a forked worker is as clean as a spawned one -----------------------------------------------

ENV_AND_FDS = (
    "import os\n"
    "def handler(event, context):\n"
    "    fds = {}\n"
    "    for fd in os.listdir('/proc/self/fd'):\n"
    "        try:\n"
    "            fds[fd] = os.readlink(f'/proc/self/fd/{fd}')\n"
    "        except OSError:\n"
    "            pass\n"
    "    return {'env': dict(os.environ), 'cwd': os.getcwd(), 'fds': fds, 'pid': os.getpid()}\n"
)


@pytest.mark.parametrize("kind", ["zygote", "template"])
def test_forked_workers_get_lambdas_environment_and_none_of_the_servers_descriptors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setenv("PYFAAS_SERVER_SECRET", "must-not-leak")
    server_file = tmp_path / "server-only.txt"
    server_file.write_text("the server's")

    async def body(it: Launcher) -> tuple[dict[str, Any], WorkerProcess, set[str]]:
        fv = function(tmp_path, ENV_AND_FDS, environment={"GREETING": "hi"})
        worker = await it.launch(fv)
        if kind == "template":
            await it.wait_template(fv.pool_key)
            await worker.stop()
            worker = await it.launch(fv)
        seen: dict[str, Any] = await run(worker)
        from_outside = {
            os.readlink(f"/proc/{worker.pid}/fd/{fd}")
            for fd in os.listdir(f"/proc/{worker.pid}/fd")
        }
        return seen, worker, from_outside

    with open(server_file) as held:  # a descriptor the server holds while workers fork
        seen, worker, from_outside = with_launcher(tmp_path, body)
        assert held.read() == "the server's"
    assert worker.start_kind == kind
    env = seen["env"]
    assert "PYFAAS_SERVER_SECRET" not in env
    assert not any(k.startswith("PYFAAS_") for k in env), "internal knobs are consumed"
    assert env["GREETING"] == "hi"
    scratch = Path(seen["cwd"])
    assert scratch.parent == tmp_path / "scratch"
    assert env["HOME"] == str(scratch) and env["TMPDIR"] == str(scratch / "tmp")
    worker_id = scratch.name.split("-", 1)[1]
    assert worker_id in env["AWS_LAMBDA_LOG_STREAM_NAME"], "the log stream names this worker"
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    targets = set(seen["fds"].values()) | from_outside
    pid = seen["pid"]
    strays = [
        t
        for t in targets
        if not (
            t == "/dev/null"
            or t.startswith(str(scratch))  # its capture file (unlinked)
            or t.startswith("socket:")  # its channel to the executor
            or t in (f"/proc/{pid}/status", f"/proc/{pid}/fd")  # its own /proc reads
        )
    ]
    assert strays == [], "nothing of the server's, the zygote's or the template's"
    assert str(server_file) not in targets
    assert len([t for t in targets if t.startswith("socket:")]) <= 1 + (kind == "zygote")


# -- errors come back the same from forked workers ---------------------------------------------

CRASHES = (
    "import ctypes, os, signal, time\n"
    "def handler(event, context):\n"
    "    how = event.get('how')\n"
    "    if how == 'exit':\n        os._exit(3)\n"
    "    if how == 'kill':\n        os.kill(os.getpid(), signal.SIGKILL)\n"
    "    if how == 'segv':\n        ctypes.string_at(0)\n"
    "    if how == 'hang':\n        time.sleep(60)\n"
    "    if how == 'oom':\n        return len(bytearray(8 << 30))\n"
    "    return os.getpid()\n"
)


@pytest.mark.parametrize("kind", ["zygote", "template"])
@pytest.mark.parametrize(
    ("how", "reason"),
    [("exit", "exit status 3"), ("kill", "signal: killed"), ("segv", "signal: segmentation fault")],
)
def test_a_forked_worker_that_dies_reports_its_exit_status_in_lambdas_words(
    tmp_path: Path, kind: str, how: str, reason: str
) -> None:
    async def body(it: Launcher) -> tuple[WorkerProcess, str]:
        fv = function(tmp_path, CRASHES)
        worker = await it.launch(fv)
        if kind == "template":
            await it.wait_template(fv.pool_key)
            worker = await it.launch(fv)
        with pytest.raises(WorkerDied) as died:
            await worker.invoke(call({"how": how}), 3)
        await worker.stop()
        return worker, str(died.value)

    worker, said = with_launcher(tmp_path, body)
    assert worker.start_kind == kind
    assert said == reason


@pytest.mark.parametrize("kind", ["zygote", "template"])
def test_a_forked_worker_times_out_and_runs_out_of_memory_as_a_spawned_one_does(
    tmp_path: Path, kind: str
) -> None:
    async def body(it: Launcher) -> list[Any]:
        fv = function(tmp_path, CRASHES, memory_mb=128)
        worker = await it.launch(fv)
        if kind == "template":
            await it.wait_template(fv.pool_key)
            worker = await it.launch(fv)
        oom = await worker.invoke(call({"how": "oom"}), 3)
        started = time.monotonic()
        with pytest.raises(WorkerTimedOut):
            await worker.invoke(call({"how": "hang"}), 0.5)
        waited = time.monotonic() - started
        return [worker, oom, waited, await gone(worker.pid)]

    worker, oom, waited, dead = with_launcher(tmp_path, body)
    assert worker.start_kind == kind
    assert oom["error"] and json.loads(oom["body"])["errorType"] == "Runtime.OutOfMemory"
    assert 0.5 <= waited < 1.5
    assert dead, "the timed-out worker was killed"


def test_a_function_that_sets_interpreter_variables_is_spawned(tmp_path: Path) -> None:
    code = "import sys\ndef handler(event, context):\n    return sys.flags.hash_randomization\n"

    async def body(it: Launcher) -> tuple[WorkerProcess, Any]:
        fv = function(tmp_path, code, environment={"PYTHONHASHSEED": "0"})
        worker = await it.launch(fv)
        return worker, await run(worker)

    worker, hash_randomization = with_launcher(tmp_path, body)
    assert worker.start_kind == "spawn"
    assert hash_randomization == 0, "the variable took effect at interpreter start"


# -- the zygote and templates come and go -------------------------------------------------------


def test_the_zygote_killed_from_outside_is_replaced_and_invocations_still_succeed(
    tmp_path: Path,
) -> None:
    async def body(it: Launcher) -> list[Any]:
        fv = function(tmp_path, PID)
        warm = await it.launch(fv)
        await it.wait_template(fv.pool_key)
        old_zygote = it.zygote_pid
        assert old_zygote is not None
        os.kill(old_zygote, signal.SIGKILL)
        assert await gone(old_zygote)
        answers = [await run(warm)]  # a worker it forked lives on
        from_template = await it.launch(fv)  # so does the template (and it forks)
        answers.append(await run(from_template))
        other = await it.launch(function(tmp_path, PID, name="other"))
        answers.append(await run(other))
        new_zygote = it.zygote_pid
        with pytest.raises(WorkerDied):  # an orphan's exit status is unknown, but it is seen
            await _kill_and_invoke(warm)
        return [old_zygote, new_zygote, from_template, other, answers, warm.pid]

    old_zygote, new_zygote, from_template, other, answers, warm_pid = with_launcher(tmp_path, body)
    assert from_template.start_kind == "template"
    assert other.start_kind == "zygote"
    assert new_zygote is not None and new_zygote != old_zygote
    assert answers == [warm_pid, from_template.pid, other.pid]


async def _kill_and_invoke(worker: WorkerProcess) -> None:
    os.kill(worker.pid, signal.SIGKILL)
    await worker.invoke(call({}), 3)


def test_drop_kills_the_template_and_the_next_worker_makes_a_new_one(tmp_path: Path) -> None:
    async def body(it: Launcher) -> list[Any]:
        fv = function(tmp_path, PID)
        worker = await it.launch(fv)
        state = await it.wait_template(fv.pool_key)
        assert state is not None and state.pid is not None
        scratch_before = set((tmp_path / "scratch").iterdir())
        await it.drop(fv.pool_key)
        template_dead = await gone(state.pid)
        after_drop = it.template_state(fv.pool_key)
        scratch_after = set((tmp_path / "scratch").iterdir())
        answer = await run(worker)  # workers already forked are not touched
        again = await it.launch(fv)
        new_state = await it.wait_template(fv.pool_key)
        return [
            state,
            template_dead,
            after_drop,
            scratch_before - scratch_after,
            answer,
            worker.pid,
            again,
            new_state,
        ]

    state, template_dead, after_drop, removed, answer, pid, again, new_state = with_launcher(
        tmp_path, body
    )
    assert template_dead and after_drop is None
    assert len(removed) == 1, "the template's scratch directory went with it"
    assert answer == pid
    assert again.start_kind == "zygote"
    assert new_state is not None and new_state.pid not in (None, state.pid)


def test_an_idle_function_holds_no_process_once_its_workers_are_reaped(tmp_path: Path) -> None:
    fv = function(tmp_path, PID)

    async def main() -> tuple[set[int], set[int], set[int]]:
        others = descendants(os.getpid())  # other tests' servers may run in this process

        def ours() -> set[int]:
            return descendants(os.getpid()) - others

        ex = LocalExecutor(limits=Limits(), scratch_dir=tmp_path / "scratch", idle_timeout_s=0.3)
        await ex.start()
        try:
            at_rest = ours()  # the zygote alone
            await asyncio.gather(*(ex.invoke(fv, call({})) for _ in range(3)))
            busy = ours()
            for _ in range(100):
                if ours() == at_rest:
                    break
                await asyncio.sleep(0.05)
            return at_rest, busy, ours()
        finally:
            await ex.close()

    at_rest, busy, idle = asyncio.run(main())
    assert len(at_rest) == 1, "only the zygote runs before any call"
    assert len(busy) >= 5, "three workers and a template besides the zygote"
    assert idle == at_rest, "workers reaped and the template dropped: scale to zero"


def test_close_leaves_no_zygote_template_or_worker_behind(tmp_path: Path) -> None:
    slow = "import os, time\ndef handler(event, context):\n    time.sleep(0.2)\n    return 1\n"

    async def main() -> tuple[set[int], set[int]]:
        others = descendants(os.getpid())  # other tests' servers may run in this process
        ex = LocalExecutor(limits=Limits(), scratch_dir=tmp_path / "scratch")
        await ex.start()
        await asyncio.gather(
            *(ex.invoke(function(tmp_path, slow, name=n), call({})) for n in ("a", "a", "b"))
        )
        hanging = asyncio.ensure_future(ex.invoke(function(tmp_path, slow, name="c"), call({})))
        await asyncio.sleep(0.05)  # a cold start under way
        before = descendants(os.getpid()) - others
        await ex.close()
        with contextlib.suppress(Exception):
            await hanging
        return before, descendants(os.getpid()) - others

    before, after = asyncio.run(main())
    assert len(before) >= 5
    assert after == set(), "zygote, templates and workers are all gone"
    assert list((tmp_path / "scratch").iterdir()) == []
