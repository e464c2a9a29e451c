"""The local backend: warm worker processes on this machine, one pool per function version."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyfaas.executor import results
from pyfaas.executor.backend import FunctionStats, PooledWorker, WorkerLauncher
from pyfaas.executor.environment import STARTING_PROVISIONED
from pyfaas.executor.launcher import Launcher
from pyfaas.executor.sandbox import Isolation
from pyfaas.executor.worker import HandlerInitFailed, WorkerDied, WorkerTimedOut
from pyfaas.model import (
    FunctionVersion,
    InvocationRequest,
    InvocationResult,
    Limits,
    ServiceUnavailable,
    WorkerLost,
)


@dataclass
class _Counters:
    invocations: int = 0
    cold_starts: int = 0
    timeouts: int = 0
    crashes: int = 0


log = logging.getLogger("pyfaas.executor")


@dataclass(eq=False)
class _Launch:
    """A cold start under way in a pool whose workers serve several invocations: callers
    that find no worker with room join it (``claims``) rather than start one each."""

    worker: asyncio.Future[PooledWorker]
    claims: int = 1


@dataclass
class _Pool:
    """Workers of one function version: idle ones (most recently used last) and busy ones.

    Idle workers are taken from the end (LIFO): the warmest serve, and the ones at the front
    age out, so a pool shrinks back after a burst. With ``concurrency_per_worker`` N > 1, a
    busy worker takes more invocations while its ``load`` is under N.
    """

    fv: FunctionVersion
    idle: list[PooledWorker] = field(default_factory=list)
    busy: set[PooledWorker] = field(default_factory=set)
    starting: int = 0  # cold starts under way: the pool is in use though it holds no worker
    retired: bool = False
    launches: list[_Launch] = field(default_factory=list)

    @property
    def provisioned_workers(self) -> int:
        """Workers that keep ``fv.provisioned_concurrency`` invocations ready."""
        return -(-self.fv.provisioned_concurrency // self.fv.concurrency_per_worker)

    @property
    def size(self) -> int:
        """Workers it holds or is starting."""
        return len(self.idle) + len(self.busy) + self.starting


class LocalExecutor:
    """Runs invocations in worker processes on this machine.

    A version's idle worker is reused (warm); with none idle a new one starts (cold). A worker
    serves one invocation at a time. Idle workers are stopped after ``idle_timeout_s``. All
    methods are coroutines on the server's event loop and never block it.
    """

    def __init__(
        self,
        *,
        limits: Limits,
        scratch_dir: Path,
        idle_timeout_s: float = 600.0,
        python: str = sys.executable,
        isolation: Isolation | None = None,
        launcher: WorkerLauncher | None = None,
    ) -> None:
        self._limits = limits
        self._scratch = scratch_dir
        self._idle_timeout_s = idle_timeout_s
        # Another launcher makes these pools run elsewhere (ray_backend.RayLauncher: actors).
        self._launcher: WorkerLauncher = launcher or Launcher(
            python=python, scratch_root=scratch_dir, limits=limits, isolation=isolation
        )
        self._pools: dict[tuple[object, ...], _Pool] = {}
        self._counters: dict[str, _Counters] = {}
        # Every worker whose process exists, from spawn until its stop begins: what close()
        # must stop, including cold starts that no pool holds yet.
        self._workers: set[PooledWorker] = set()
        self._stopping: set[asyncio.Future[Any]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        """Create the scratch directory and start the idle reaper."""
        await asyncio.to_thread(self._scratch.mkdir, parents=True, exist_ok=True)
        await self._launcher.start()
        self._reaper = asyncio.create_task(self._reap_idle(), name="pyfaas-idle-reaper")

    async def validate(self, fv: FunctionVersion) -> float:
        """Import the handler in a new worker, which then waits warm; return the init ms.

        Raises InvalidBundle (code handler_*; the worker is discarded), ServiceUnavailable.
        """
        self._check_open()
        worker = await self._start_worker(fv)
        worker.last_used = time.monotonic()
        self._pool(fv).idle.append(worker)
        return worker.init_ms

    async def ensure_warm(self, fv: FunctionVersion) -> int:
        """Start workers until ``fv``'s pool holds ``fv.provisioned_concurrency`` of them,
        each initialized (Lambda's provisioned concurrency); return how many started.

        The reaper keeps that many and replaces any that die. A worker that cannot start is
        logged and retried by the reaper. Raises ServiceUnavailable when closed.
        """
        self._check_open()
        pool = self._pool(fv)
        missing = pool.provisioned_workers - pool.size
        if missing <= 0:
            return 0
        pool.starting += missing
        try:
            started = await asyncio.gather(
                *(self._start_worker(fv, provisioned=True) for _ in range(missing)),
                return_exceptions=True,
            )
        finally:
            pool.starting -= missing
        count = 0
        for worker in started:
            if isinstance(worker, BaseException) and not isinstance(worker, Exception):
                raise worker
            if isinstance(worker, Exception):
                log.warning("a provisioned worker of %s did not start: %s", fv.name, worker)
            else:
                worker.last_used = time.monotonic()
                self._release_new(worker)
                count += 1
        return count

    async def invoke(self, fv: FunctionVersion, request: InvocationRequest) -> InvocationResult:
        """Run one invocation and return its result.

        Whatever the handler does (raise, time out, crash, exhaust memory) comes back as a
        result with ``function_error`` set. Raises ServiceUnavailable when the executor is
        closed, or closes during the call, or cannot start a process.

        A worker that serves several invocations at once (``concurrency_per_worker`` > 1) and
        must not serve again (a timeout, sys.exit, out of memory) takes no new ones and is
        stopped when those still on it have ended, each by its own deadline. A crash fails
        exactly the invocations in flight on that worker.
        """
        counters = self._counters.get(fv.name)
        if counters is None:
            counters = self._counters[fv.name] = _Counters()
        counters.invocations += 1
        init_ms: float | None = None
        if fv.concurrency_per_worker > 1:
            acquire, release = self._acquire_shared, self._release_shared
            warm = None
        else:
            acquire, release = self._acquire, self._release
            warm = self._idle_worker(fv)  # the hot path: no coroutine when one is idle
        if warm is not None:
            worker = warm
        else:
            try:
                worker, init_ms = await acquire(fv, counters)
            except HandlerInitFailed as exc:
                return results.init_failed(fv, request, exc.code, exc.message, exc.logs)
        kind = None if init_ms is None else worker.start_kind
        sent = time.perf_counter()  # a crash is billed until the worker was seen dead
        try:
            reply = await worker.invoke(request, fv.timeout_s)
        except WorkerTimedOut as exc:
            release(worker, False)
            self._check_open()
            counters.timeouts += 1
            return results.timed_out(fv, request, init_ms, exc.logs, kind)
        except WorkerDied as exc:
            release(worker, False)
            self._check_open()  # close() stopped it: not the handler's doing
            counters.crashes += 1
            elapsed_ms = (time.perf_counter() - sent) * 1000
            return results.crashed(fv, request, init_ms, str(exc), kind, elapsed_ms)
        except WorkerLost:  # the platform lost it (a Ray node): the caller may retry
            release(worker, False)
            self._check_open()  # close() stopped it: the server is stopping, not a lost node
            counters.crashes += 1
            raise
        except BaseException:  # cancelled: the worker's state is unknown
            release(worker, False)
            raise
        result, reusable = results.from_reply(fv, request, reply, init_ms, kind)
        release(worker, reusable)
        return result

    async def _acquire_shared(
        self, fv: FunctionVersion, counters: _Counters
    ) -> tuple[PooledWorker, float | None]:
        """A slot on a worker of ``fv`` (its ``load`` counts it) and the init ms if the
        worker is new: the busiest worker with room (so the others can go idle and age
        out), else an idle one, else a cold start under way with room, else a new one."""
        self._check_open()
        pool = self._pool(fv)
        per_worker = fv.concurrency_per_worker
        best: PooledWorker | None = None
        for worker in pool.busy:
            has_room = worker.load < per_worker and not worker.draining and worker.alive
            if has_room and (best is None or worker.load > best.load):
                best = worker
        if best is not None:
            best.load += 1
            return best, None
        while pool.idle:
            worker = pool.idle.pop()
            if worker.alive:
                worker.load = 1
                pool.busy.add(worker)
                return worker, None
            self._discard(worker)
        for launch in pool.launches:
            if launch.claims < per_worker:
                launch.claims += 1
                try:
                    worker = await asyncio.shield(launch.worker)
                except asyncio.CancelledError:
                    started = launch.worker
                    if not started.done():
                        launch.claims -= 1  # not counted in the new worker's load yet
                    elif started.exception() is None:
                        self._release_shared(started.result(), reusable=True)
                    raise
                return worker, None
        launch = _Launch(asyncio.get_running_loop().create_future())
        pool.launches.append(launch)
        pool.starting += 1
        try:
            worker = await self._start_worker(fv)
        except BaseException as exc:
            launch.worker.set_exception(exc)
            launch.worker.exception()  # retrieved here if nobody joined
            raise
        else:
            worker.load = launch.claims
            pool.busy.add(worker)  # a retired pool's worker is stopped by its last release
            launch.worker.set_result(worker)
        finally:
            pool.starting -= 1
            pool.launches.remove(launch)
        counters.cold_starts += 1
        return worker, worker.init_ms

    def _release_shared(self, worker: PooledWorker, reusable: bool) -> None:
        """One invocation on ``worker`` ended. A worker that must not serve again takes no
        more and is stopped once the last one on it has ended; one with nothing in flight
        goes idle."""
        worker.load -= 1
        pool = self._pools.get(worker.fv.pool_key)
        # Its pool is gone or no longer holds it: retired, or the executor closed.
        if not reusable or pool is None or worker not in pool.busy:
            worker.draining = True
        if worker.load > 0:
            return
        if worker.draining or pool is None:
            self._discard(worker)
            return
        pool.busy.discard(worker)
        worker.last_used = time.monotonic()
        pool.idle.append(worker)

    async def retire(
        self, name: str, keep: FunctionVersion | None = None, *, version: str | None = None
    ) -> None:
        """Stop the workers of ``name``'s versions (but ``keep``'s), e.g. on update/delete.

        With ``keep`` only pools of its version (e.g. older ``$LATEST`` code) go; with
        ``version`` only that version's. Published versions' pools stay otherwise.
        Idle ones stop now (awaited); busy ones finish their invocation, then stop.
        """
        if keep is not None:
            version = keep.version
        stopping = []
        for key, pool in list(self._pools.items()):
            if (
                pool.fv.name == name
                and (version is None or pool.fv.version == version)
                and (keep is None or key != keep.pool_key)
            ):
                pool.retired = True
                del self._pools[key]
                stopping += [self._discard(w) for w in pool.idle]
                stopping.append(asyncio.ensure_future(self._launcher.drop(key)))
                pool.idle = []
        if version is None:
            self._counters.pop(name, None)
        await asyncio.gather(*stopping)

    def stats(self, name: str) -> FunctionStats:
        """``name``'s workers now (cold starts under way count as busy) and its counters."""
        busy = idle = 0
        for pool in self._pools.values():
            if pool.fv.name == name:
                busy += len(pool.busy) + pool.starting
                idle += len(pool.idle)
        c = self._counters.get(name, _Counters())
        return FunctionStats(
            workers_busy=busy,
            workers_idle=idle,
            invocations=c.invocations,
            cold_starts=c.cold_starts,
            timeouts=c.timeouts,
            crashes=c.crashes,
        )

    async def close(self) -> None:
        """Stop every worker (busy ones after a short grace) and wait until all are reaped.

        Idempotent. Calls in flight raise ServiceUnavailable; later ones too.
        """
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        self._pools.clear()
        for worker in list(self._workers):
            self._discard(worker, grace_s=0.5)
        await self._launcher.close()  # cold starts under way fail; zygote and templates go
        while self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    async def _acquire(
        self, fv: FunctionVersion, counters: _Counters
    ) -> tuple[PooledWorker, float | None]:
        """A worker for one invocation of ``fv``, marked busy, and its init ms if it is new.

        An idle worker if there is one, else a cold start. This is where admission control
        (a machine-wide cap, per-function concurrency) belongs: wait or raise TooManyRequests
        here, before a process is started.
        """
        worker = self._idle_worker(fv)
        if worker is not None:
            return worker, None
        pool = self._pool(fv)
        pool.starting += 1
        try:
            worker = await self._start_worker(fv)
        finally:
            pool.starting -= 1
        counters.cold_starts += 1
        # The pool may have been retired meanwhile; _release then stops the worker.
        pool.busy.add(worker)
        return worker, worker.init_ms

    def _idle_worker(self, fv: FunctionVersion) -> PooledWorker | None:
        """An idle worker of ``fv``, marked busy, or None. Raises ServiceUnavailable when
        closed."""
        self._check_open()
        pool = self._pool(fv)
        while pool.idle:
            worker = pool.idle.pop()
            if worker.alive:
                pool.busy.add(worker)
                return worker
            self._discard(worker)  # killed while idle (OOM killer, operator): reap, go on
        return None

    def _release(self, worker: PooledWorker, reusable: bool) -> None:
        """Back to idle after an invocation, or stopped if it must not serve again (or is
        dead, or its state is unknown)."""
        pool = self._pools.get(worker.fv.pool_key)
        if pool is None or worker not in pool.busy:
            # Retired (or the executor closed) while it ran.
            self._discard(worker)
            return
        pool.busy.discard(worker)
        if not reusable:
            self._discard(worker)
            return
        worker.last_used = time.monotonic()
        pool.idle.append(worker)

    async def _start_worker(self, fv: FunctionVersion, provisioned: bool = False) -> PooledWorker:
        """Start a worker (forked or spawned, see launcher.py) and wait for its handler
        import. Raises HandlerInitFailed, ServiceUnavailable."""
        token = STARTING_PROVISIONED.set(provisioned)
        try:
            worker = await self._launcher.launch(fv)
        except OSError as exc:
            self._check_open()
            raise ServiceUnavailable(f"cannot start a worker process: {exc}") from exc
        except BaseException:
            self._check_open()  # stopped by close(): not the bundle's fault
            raise
        finally:
            STARTING_PROVISIONED.reset(token)
        self._workers.add(worker)
        if self._closed:
            await self._discard(worker)
            self._check_open()
        return worker

    def _discard(self, worker: PooledWorker, grace_s: float = 0.0) -> asyncio.Future[None]:
        """Stop ``worker`` in the background; close() waits for it. Non-blocking."""
        self._workers.discard(worker)
        pool = self._pools.get(worker.fv.pool_key)
        if pool is not None:
            pool.busy.discard(worker)
        stopping = worker.stop(grace_s)
        self._stopping.add(stopping)
        stopping.add_done_callback(self._stopping.discard)
        return stopping

    def _check_open(self) -> None:
        if self._closed:
            raise ServiceUnavailable("the executor is shutting down; retry on another server")

    def _pool(self, fv: FunctionVersion) -> _Pool:
        pool = self._pools.get(fv.pool_key)
        if pool is None:
            pool = self._pools[fv.pool_key] = _Pool(fv)
        elif pool.fv is not fv:
            pool.fv = fv  # same workers, maybe new scaling settings (idle timeout, provisioned)
        return pool

    def _release_new(self, worker: PooledWorker) -> None:
        """A worker just started outside an invocation joins its pool's idle ones."""
        pool = self._pools.get(worker.fv.pool_key)
        if pool is None or pool.retired or self._closed:
            self._discard(worker)
        else:
            pool.idle.append(worker)

    async def _reap_idle(self) -> None:
        """Scale to zero: stop workers idle longer than their function's idle timeout, but
        keep (and replace) provisioned ones; drop empty pools."""
        while True:
            await asyncio.sleep(self._reap_period())
            now = time.monotonic()
            stale: list[asyncio.Future[None]] = []
            for key, pool in list(self._pools.items()):
                dead = [w for w in pool.idle if not w.alive]
                stale += [self._discard(w) for w in dead]
                pool.idle = [w for w in pool.idle if w.alive]  # oldest first
                cutoff = now - self._idle_timeout(pool.fv)
                removable = pool.size - pool.provisioned_workers
                keep: list[PooledWorker] = []
                for worker in pool.idle:
                    if removable > 0 and worker.last_used <= cutoff:
                        stale.append(self._discard(worker))
                        removable -= 1
                    else:
                        keep.append(worker)
                pool.idle = keep
                if pool.size < pool.provisioned_workers and not pool.retired:
                    self._top_up(pool.fv)
                elif not pool.size:
                    del self._pools[key]
                    stale.append(asyncio.ensure_future(self._launcher.drop(key)))
            if stale:
                await asyncio.gather(*stale)

    def _top_up(self, fv: FunctionVersion) -> None:
        task = asyncio.ensure_future(self.ensure_warm(fv))
        self._stopping.add(task)  # close() waits for it like for a stopping worker
        task.add_done_callback(self._stopping.discard)
        task.add_done_callback(_log_failure)

    def _idle_timeout(self, fv: FunctionVersion) -> float:
        return fv.idle_timeout_s if fv.idle_timeout_s is not None else self._idle_timeout_s

    def _reap_period(self) -> float:
        shortest = min(
            (self._idle_timeout(p.fv) for p in self._pools.values()), default=self._idle_timeout_s
        )
        return min(5.0, max(0.05, shortest / 4))


def _log_failure(task: asyncio.Future[Any]) -> None:
    exc = None if task.cancelled() else task.exception()
    if exc is not None and not isinstance(exc, ServiceUnavailable):  # closing: expected
        log.warning("starting provisioned workers failed: %s", exc)
