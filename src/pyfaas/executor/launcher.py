"""Starting workers fast: forked from the zygote, or from a template of their version.

How a worker comes to be (``WorkerProcess.start_kind``):

- ``template``: forked from its version's template, a process that imported the handler
  once and never serves. Nothing is imported: the cold start is a fork and a handshake.
- ``zygote``: forked from the zygote (the runtime already imported), then imported the
  handler. The first worker of a version is made this way, by way of a new template: the
  template imports the handler, then forks this worker (or, when the import started a
  thread and forking is unsafe, serves as this worker itself).
- ``spawn``: a new interpreter (``python -m pyfaas.runtime.bootstrap``). Used when the
  zygote cannot be had (it is restarted when it dies; while it cannot be, every worker is
  spawned) and for functions that set variables read at interpreter start (PYTHON*, LD_*).

A version's template lives until :meth:`Launcher.drop` (its pool is empty or retired) or
:meth:`Launcher.close`. Handler modules that need per-worker init (random seeds, sockets)
register ``os.register_at_fork(after_in_child=...)``; module-level code that read per-worker
values (HOME, TMPDIR, the log stream name) at import saw the template's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import time
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyfaas.executor import cgroups
from pyfaas.executor.cgroups import WorkerCgroup
from pyfaas.executor.environment import (
    ADDRESS_SPACE_HEADROOM_MB,
    CAPTURE_DIR_LOG_CAPS,
    PROCESS_LIMIT,
    forkable,
    interpreter_environment,
)
from pyfaas.executor.forker import Forker, ForkerGone, control_socketpair
from pyfaas.executor.sandbox import Isolation, sandbox_argv, unsandboxed
from pyfaas.executor.worker import (
    HandlerInitFailed,
    WorkerProcess,
    init_timeout_s,
    prepare_worker,
)
from pyfaas.model import FunctionVersion, Limits

log = logging.getLogger("pyfaas.executor")

_ZYGOTE = ("-m", "pyfaas.runtime.zygote")
_ZYGOTE_START_TIMEOUT_S = 10.0
_ZYGOTE_RETRY_S = 30.0  # after a failed start, spawn workers this long before trying again


@dataclass(frozen=True, slots=True)
class TemplateState:
    """A version's template: ``pid`` while one serves forks; ``skipped``: why none is used."""

    pid: int | None
    skipped: str | None


@dataclass(eq=False)
class _Template:
    settled: asyncio.Future[None]
    forker: Forker | None = None
    scratch: Path | None = None
    # Sandboxed: the version's own zygote, running in its sandbox (the template's parent),
    # and the cgroup of everything in it (what the zygote forks is born in it: no moves).
    sandbox: _Zygote | None = None
    cgroup: WorkerCgroup | None = None
    skipped: str | None = None
    dropped: bool = False
    tasks: set[asyncio.Future[None]] = field(default_factory=set)


class _Zygote(asyncio.SubprocessProtocol):
    def __init__(self) -> None:
        self.exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.SubprocessTransport | None = None
        self.forker: Forker | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class Launcher:
    """Makes ready workers (handler imported) for the local executor.

    Call :meth:`start` once; :meth:`launch` for each new worker; :meth:`drop` when a
    version's pool is gone; :meth:`close` at the end. Coroutines on the server's event
    loop; none blocks it. Never loses a launch to a zygote or template problem: it forks
    some other way, or spawns.
    """

    def __init__(
        self,
        *,
        python: str = sys.executable,
        scratch_root: Path,
        limits: Limits,
        zygote: bool = True,
        templates: bool = True,
        isolation: Isolation | None = None,
    ) -> None:
        self._python = python
        # Sandboxed, each version gets a zygote of its own inside its sandbox, and the
        # shared zygote is not used at all.
        self.isolation = isolation or unsandboxed()
        self._sandboxed = self.isolation.sandboxed
        self._cgroup_warned = False
        self._scratch_root = scratch_root
        self._limits = limits
        self._use_zygote = zygote
        self._use_templates = templates and zygote
        self._zygote: _Zygote | None = None
        self._zygote_starting: asyncio.Future[_Zygote | None] | None = None
        self._zygote_retry_at = 0.0
        self._templates: dict[tuple[object, ...], _Template] = {}
        self._launching: set[WorkerProcess] = set()
        self._workers: weakref.WeakSet[WorkerProcess] = weakref.WeakSet()  # all it launched
        self._background: set[asyncio.Future[None]] = set()
        self._closed = False
        self.zygote_problem: str | None = None  # why workers are spawned, if they are

    @property
    def zygote_pid(self) -> int | None:
        """The running zygote's pid, if there is one."""
        zygote = self._zygote
        if zygote is None or zygote.forker is None or not zygote.forker.alive:
            return None
        return zygote.forker.pid

    async def start(self) -> None:
        """Start the zygote (if it cannot start, workers are spawned; see zygote_problem)."""
        if self._use_zygote and not self._sandboxed:
            await self._live_zygote()

    async def launch(self, fv: FunctionVersion) -> WorkerProcess:
        """A new worker of ``fv`` with its handler imported; its ``init_ms`` is the whole
        time this call took. Raises HandlerInitFailed (the worker is gone), OSError (no
        process could be started)."""
        asked_at = time.perf_counter()
        if self._closed:
            raise OSError("the launcher is closed")
        if fv.network == "none" and not self._sandboxed:
            raise HandlerInitFailed(
                "network 'none' needs the bubblewrap sandbox, which this server does not use "
                "(see `pyfaas doctor`); deploy with network 'host' or install bubblewrap",
                code="network_unavailable",
            )
        if fv.gpus:
            raise HandlerInitFailed(
                f"gpus {fv.gpus}: local workers get no accelerators; run the server with "
                "the Ray executor (PYFAAS_EXECUTOR=ray) on a cluster with GPUs, or deploy "
                "with gpus 0",
                code="gpus_unavailable",
            )
        if self._use_zygote and not self._closed and forkable(fv):
            worker = await self._fork_worker(fv, asked_at)
            if worker is not None:
                return worker
        worker = await WorkerProcess.spawn(
            fv,
            python=self._python,
            scratch_root=self._scratch_root,
            limits=self._limits,
            asked_at=asked_at,
            sandbox=self._sandbox_command(fv) if self._sandboxed else None,
        )
        return await self._handshake(worker)

    def _sandbox_command(self, fv: FunctionVersion) -> tuple[list[str], dict[str, str]]:
        """The bwrap command line of ``fv``'s sandbox, and what its first process must know
        (the uid to switch to)."""
        argv = sandbox_argv(self.isolation, fv, self._python, self._limits.log_bytes_per_invocation)
        uid = self.isolation.uid(fv.name)
        return argv, ({} if uid is None else {"PYFAAS_SANDBOX_UID": str(uid)})

    def template_state(self, pool_key: tuple[object, ...]) -> TemplateState | None:
        """The template of the version with ``pool_key``, if one was made or tried."""
        template = self._templates.get(pool_key)
        if template is None:
            return None
        forker = template.forker
        pid = forker.pid if forker is not None and forker.alive else None
        return TemplateState(pid=pid, skipped=template.skipped)

    async def wait_template(self, pool_key: tuple[object, ...]) -> TemplateState | None:
        """:meth:`template_state` once the template being made is ready or skipped."""
        template = self._templates.get(pool_key)
        if template is not None:
            await asyncio.shield(template.settled)
        return self.template_state(pool_key)

    async def drop(self, pool_key: tuple[object, ...]) -> None:
        """Kill the template of ``pool_key``'s version, if any (its pool is empty or
        retired: an idle function holds no process). A template still being made goes
        once its first worker is out. Workers already forked are not touched."""
        template = self._templates.pop(pool_key, None)
        if template is None:
            return
        template.dropped = True
        if template.settled.done():
            if template.sandbox is None:
                await _kill_template(template)
            else:  # its workers live in its sandbox: it goes once they have all exited
                self._in_background(_kill_template(template))

    async def close(self) -> None:
        """Stop launches under way (they raise HandlerInitFailed), give the workers it
        launched a second to exit (their owner stops them first), stop those left, then kill
        the templates and the zygote. Idempotent; later launches raise OSError."""
        self._closed = True
        templates = list(self._templates.values())
        self._templates.clear()
        for template in templates:
            template.dropped = True
            if not template.settled.done():
                _kill_forker(template)  # the launch making it fails, then kills it
        await asyncio.gather(*(w.stop(grace_s=0) for w in list(self._launching)))
        await asyncio.gather(*(asyncio.shield(t.settled) for t in templates))
        forkers = [t.forker for t in templates]
        if self._zygote is not None:
            forkers.append(self._zygote.forker)
        live = [f for f in forkers if f is not None and f.alive]
        # Their owner is stopping them; whatever still runs after a second is stopped here.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(f.no_children() for f in live)), 1.0)
        await asyncio.gather(*(w.stop(grace_s=0) for w in list(self._workers) if w.alive))
        await asyncio.gather(*(_kill_template(t) for t in templates))
        if self._zygote_starting is not None:
            await asyncio.shield(self._zygote_starting)
        zygote = self._zygote
        self._zygote = None
        if zygote is not None:
            await _stop_zygote(zygote)
        await asyncio.gather(*self._background)

    # -- forking ---------------------------------------------------------------------------

    async def _fork_worker(self, fv: FunctionVersion, asked_at: float) -> WorkerProcess | None:
        """A forked worker of ``fv``, or None when no zygote can be had (spawn then)."""
        key = fv.pool_key
        if self._sandboxed:
            return await self._fork_sandboxed(fv, asked_at)
        if self._use_templates:
            template = self._templates.get(key)
            if template is None:
                return await self._first_of_version(fv, asked_at)
            await asyncio.shield(template.settled)
            forker = template.forker
            if forker is not None and forker.alive and not template.dropped:
                with contextlib.suppress(ForkerGone, OSError):
                    return await self._fork_from(forker, fv, asked_at, "template")
                if self._templates.get(key) is template:  # died: the next launch makes one
                    del self._templates[key]
        zygote = await self._live_zygote()
        if zygote is None or zygote.forker is None:
            return None
        try:
            return await self._fork_from(zygote.forker, fv, asked_at, "zygote")
        except (ForkerGone, OSError):
            return None  # spawn

    async def _fork_sandboxed(self, fv: FunctionVersion, asked_at: float) -> WorkerProcess | None:
        """A worker forked inside ``fv``'s sandbox (from its template, or from its zygote
        when forking from a template is unsafe); a new sandbox for the version's first.
        None when the sandbox cannot fork (spawn then, in a sandbox of its own)."""
        key = fv.pool_key
        template = self._templates.get(key)
        if template is None:
            return await self._first_of_version(fv, asked_at)
        await asyncio.shield(template.settled)
        sandbox = template.sandbox
        forker = template.forker if self._use_templates else None
        if forker is None and sandbox is not None:
            forker = sandbox.forker
        if forker is not None and forker.alive and not template.dropped:
            kind = "template" if forker is template.forker else "zygote"
            with contextlib.suppress(ForkerGone, OSError):
                return await self._fork_from(forker, fv, asked_at, kind)
        if self._templates.get(key) is template:  # broken: the next launch makes a new one
            del self._templates[key]
            template.dropped = True
            self._in_background(_kill_template(template))
        return None

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _fork_from(
        self, forker: Forker, fv: FunctionVersion, asked_at: float, kind: str
    ) -> WorkerProcess:
        scratch, env = await prepare_worker(
            fv, self._scratch_root, self._limits, sandboxed=self._sandboxed
        )
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with theirs:
                pid = await forker.fork(env, _cwd(scratch), [theirs.fileno()], template=False)
        except BaseException:
            ours.close()
            if scratch is not None:
                await asyncio.to_thread(shutil.rmtree, scratch, True)
            raise
        worker = await self._attach(forker, fv, ours, pid, scratch, kind, asked_at)
        return await self._handshake(worker)

    async def _first_of_version(self, fv: FunctionVersion, asked_at: float) -> WorkerProcess | None:
        """Make ``fv``'s template and its first worker; None when no zygote can be had."""
        key = fv.pool_key
        template = self._templates[key] = _Template(asyncio.get_running_loop().create_future())
        try:
            worker = await self._make_template(template, fv, asked_at)
        except BaseException:
            if self._templates.get(key) is template:
                del self._templates[key]
            _kill_forker(template)
            if not template.dropped and template.sandbox is not None:
                template.dropped = True
                self._in_background(_kill_template(template))
            raise
        finally:
            if not template.settled.done():
                template.settled.set_result(None)
            if template.dropped and template.sandbox is None:
                await _kill_template(template)
        if worker is None and self._templates.get(key) is template:
            del self._templates[key]
            if template.sandbox is not None:
                template.dropped = True
                self._in_background(_kill_template(template))
        return worker

    async def _make_template(
        self, template: _Template, fv: FunctionVersion, asked_at: float
    ) -> WorkerProcess | None:
        if self._sandboxed:
            argv, extra = self._sandbox_command(fv)
            zygote = template.sandbox = await self._start_zygote(argv, extra)
            if zygote is not None and zygote.forker is not None:
                template.cgroup = await self._sandbox_cgroup(fv, zygote.forker.own_pid)
        else:
            zygote = await self._live_zygote()
        if zygote is None or zygote.forker is None:
            return None
        scratch, env = await prepare_worker(
            fv, self._scratch_root, self._limits, sandboxed=self._sandboxed
        )
        template.scratch = scratch
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        control, their_control = control_socketpair(pid_namespace=self._sandboxed)
        try:
            with theirs, their_control:
                pid = await zygote.forker.fork(
                    env, _cwd(scratch), [theirs.fileno(), their_control.fileno()], template=True
                )
        except BaseException as exc:
            ours.close()
            control.close()
            template.scratch = None
            if scratch is not None:
                await asyncio.to_thread(shutil.rmtree, scratch, True)
            if isinstance(exc, ForkerGone | OSError):
                return None  # spawn
            raise
        template.forker = forker = Forker(control, pid, pid_namespace=self._sandboxed)
        # Until the template says otherwise it is a worker (of kind "zygote") importing the
        # handler: if forking from it is unsafe it stays one, and its init errors and
        # crashes arrive on this channel as any worker's would.
        first = await self._attach(zygote.forker, fv, ours, pid, scratch, "zygote", asked_at)
        try:
            notice = await asyncio.wait_for(asyncio.shield(forker.notice), init_timeout_s(fv))
        except TimeoutError:
            await first.stop(grace_s=0)
            raise HandlerInitFailed(
                "importing the handler did not finish in time", code="handler_init_error"
            ) from None
        except BaseException:
            await first.stop(grace_s=0)
            raise
        if notice is not None and notice["t"] == "template_ready":
            first.detach()  # the process is the template now; its scratch is the template's
            zygote.forker.unwatch(pid)
            try:
                # Forked before the waiting launches: this worker gets the import's output.
                return await self._fork_from(forker, fv, asked_at, "zygote")
            except (ForkerGone, OSError):
                return None  # the template died at once: spawn
            finally:
                template.settled.set_result(None)
        if notice is not None and notice["t"] == "template_unsafe":
            template.skipped = notice["reason"]
            log.info("no template for %s:%s: %s", fv.name, fv.version, template.skipped)
        forker.close()
        template.forker = None
        template.scratch = None  # the worker's now
        template.settled.set_result(None)
        return await self._handshake(first)

    async def _attach(
        self,
        forker: Forker,
        fv: FunctionVersion,
        sock: socket.socket,
        pid: int,
        scratch: Path | None,
        kind: str,
        asked_at: float,
    ) -> WorkerProcess:
        try:
            worker, channel = await WorkerProcess.attach(
                fv,
                sock,
                pid=pid,
                scratch=scratch,
                limits=self._limits,
                start_kind=kind,
                asked_at=asked_at,
            )
        except BaseException:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            sock.close()
            if scratch is not None:
                await asyncio.to_thread(shutil.rmtree, scratch, True)
            raise
        forker.watch(pid, channel)
        return worker

    async def _sandbox_cgroup(self, fv: FunctionVersion, pid: int | None) -> WorkerCgroup | None:
        """A cgroup for ``fv``'s sandbox, its zygote (``pid``) moved in: all the version's
        workers, at most as many as its concurrency allows, with their /tmp; a fork bomb's
        tasks; all CPUs but half of one, which is the server's. None when the machine has
        no cgroups (or it cannot be made: logged once)."""
        support = self.isolation.cgroups
        if not support.available or pid is None:
            return None
        calls = fv.reserved_concurrency or self._limits.max_concurrency
        workers = -(-calls // fv.concurrency_per_worker)
        capture_mb = max(64, CAPTURE_DIR_LOG_CAPS * self._limits.log_bytes_per_invocation >> 20)
        megabytes = workers * fv.memory_mb * 5 // 4 + fv.ephemeral_storage_mb + capture_mb + 256
        tasks = PROCESS_LIMIT + workers * (fv.concurrency_per_worker + 8)
        try:
            group = await asyncio.to_thread(
                cgroups.create,
                support,
                f"{fv.name}-v{fv.version}",
                memory_bytes=megabytes << 20,
                max_pids=tasks,
                cpus=max(1.0, (os.cpu_count() or 1) - 0.5),
            )
        except OSError as exc:
            self._warn_cgroup(fv, exc)
            return None
        try:
            await asyncio.to_thread(group.add, pid)
        except OSError as exc:
            self._warn_cgroup(fv, exc)
            await asyncio.to_thread(group.remove)
            return None
        return group

    def _warn_cgroup(self, fv: FunctionVersion, exc: OSError) -> None:
        if not self._cgroup_warned:
            self._cgroup_warned = True
            log.warning("cannot give %s a cgroup: %s", fv.name, exc)

    async def _confine(self, worker: WorkerProcess) -> None:
        """Put an unsandboxed ``worker`` in a cgroup of its own, when the machine has them:
        memory (its memory and its /tmp), tasks (a fork bomb), one CPU. Moving a process
        costs ~10 ms on cgroup v1: sandboxed workers are born in their sandbox's cgroup
        instead (and one spawned in a sandbox of its own has its uid's RLIMIT_NPROC)."""
        support = self.isolation.cgroups
        if not support.available or self._sandboxed:
            return
        fv = worker.fv
        megabytes = fv.memory_mb + fv.ephemeral_storage_mb + ADDRESS_SPACE_HEADROOM_MB
        try:
            group = await asyncio.to_thread(
                cgroups.create,
                support,
                fv.name,
                memory_bytes=megabytes << 20,
                max_pids=PROCESS_LIMIT,
                cpus=1.0,
            )
        except OSError as exc:
            self._warn_cgroup(fv, exc)
            return
        worker.cgroup = group
        try:
            await asyncio.to_thread(group.add, worker.pid)
        except OSError as exc:  # gone already: its handshake says so
            log.debug("cannot move worker %s into its cgroup: %s", worker.pid, exc)

    async def _handshake(self, worker: WorkerProcess) -> WorkerProcess:
        self._launching.add(worker)
        try:
            await self._confine(worker)
            await worker.handshake()
        finally:
            self._launching.discard(worker)
        self._workers.add(worker)
        return worker

    # -- the zygote ------------------------------------------------------------------------

    async def _live_zygote(self) -> _Zygote | None:
        """The running zygote; started (again) if it is not running. None: spawn."""
        zygote = self._zygote
        if zygote is not None and zygote.forker is not None and zygote.forker.alive:
            return zygote
        if self._closed or not self._use_zygote:
            return None
        if self._zygote_starting is None:
            if time.monotonic() < self._zygote_retry_at:
                return None
            if zygote is not None:
                self._zygote = None
                log.warning("the zygote (pid %s) is gone; starting a new one", zygote_pid(zygote))
                stopping = asyncio.ensure_future(_stop_zygote(zygote))
                self._background.add(stopping)
                stopping.add_done_callback(self._background.discard)
            self._zygote_starting = asyncio.ensure_future(self._start_zygote())
        starting = self._zygote_starting
        try:
            return await asyncio.shield(starting)
        finally:
            if self._zygote_starting is starting and starting.done():
                self._zygote_starting = None

    async def _start_zygote(
        self, sandbox: list[str] | None = None, extra_env: dict[str, str] | None = None
    ) -> _Zygote | None:
        """The shared zygote; or, given a ``sandbox`` command line, a version's zygote in
        its sandbox (None if it cannot start: its launches spawn)."""
        loop = asyncio.get_running_loop()
        ours, theirs = control_socketpair(pid_namespace=sandbox is not None)
        zygote: _Zygote | None = None
        try:
            with theirs:
                _, zygote = await loop.subprocess_exec(
                    _Zygote,
                    *(sandbox or []),
                    self._python,
                    *_ZYGOTE,
                    stdin=theirs.fileno(),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=None,
                    env={**interpreter_environment(), **(extra_env or {})},
                    cwd="/",
                    start_new_session=True,
                )
            assert zygote.transport is not None
            zygote.forker = Forker(
                ours, zygote.transport.get_pid(), pid_namespace=sandbox is not None
            )
            hello = await asyncio.wait_for(
                asyncio.shield(zygote.forker.notice), _ZYGOTE_START_TIMEOUT_S
            )
            if hello is None or hello.get("t") != "ready":
                raise OSError("the zygote exited at start")
            if hello["threads"] != 1:
                raise OSError(f"the zygote runs {hello['threads']} threads: forking is unsafe")
        except (OSError, TimeoutError) as exc:
            ours.close()
            if zygote is not None:
                await _stop_zygote(zygote)
            if sandbox is not None:
                log.warning("cannot start a sandbox: %s; spawning", exc or "no answer")
                return None
            self.zygote_problem = f"cannot start the zygote: {exc or 'no answer'}"
            self._zygote_retry_at = time.monotonic() + _ZYGOTE_RETRY_S
            log.warning("%s; spawning workers", self.zygote_problem)
            return None
        if self._closed:
            await _stop_zygote(zygote)
            return None
        if sandbox is not None:
            return zygote
        self.zygote_problem = None
        self._zygote = zygote
        return zygote


def zygote_pid(zygote: _Zygote) -> int | None:
    return zygote.transport.get_pid() if zygote.transport is not None else None


async def _stop_zygote(zygote: _Zygote) -> None:
    """Close its socket (it exits on the end of it), then kill it if it lingers."""
    if zygote.forker is not None:
        zygote.forker.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(zygote.exited), 2.0)
    if zygote.transport is not None:
        if not zygote.exited.done():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                zygote.transport.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(zygote.exited), 5.0)
        zygote.transport.close()


def _kill_forker(template: _Template) -> None:
    forker = template.forker
    if forker is not None and forker.alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(forker.pid, signal.SIGKILL)


def _cwd(scratch: Path | None) -> str:
    """A new process's working directory: its scratch directory, or its sandbox's /tmp."""
    return "/tmp" if scratch is None else str(scratch)


async def _kill_template(template: _Template) -> None:
    """SIGKILL the template process, wait until it is gone, remove its scratch directory.
    A sandboxed one waits for the workers it forked to exit first (they are stopped by
    their owner), and stops its sandbox last (that kills whatever is left in it)."""
    forker = template.forker
    template.forker = None
    sandbox, group = template.sandbox, template.cgroup
    template.sandbox = template.cgroup = None
    if sandbox is not None and forker is not None and forker.alive:
        await forker.no_children()
    if forker is not None:
        if forker.alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(forker.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(forker.gone), 5.0)
        forker.close()
    if template.scratch is not None:
        await asyncio.to_thread(shutil.rmtree, template.scratch, True)
        template.scratch = None
    if sandbox is not None:
        if sandbox.forker is not None and sandbox.forker.alive:
            await sandbox.forker.no_children()
        await _stop_zygote(sandbox)
    if group is not None:
        await asyncio.to_thread(group.remove)
