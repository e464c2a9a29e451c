"""The local backend: warm worker processes on this machine, one pool per function version."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pyfaas.executor.backend import FunctionStats
from pyfaas.executor.worker import WorkerDied, WorkerProcess
from pyfaas.model import (
    FunctionVersion,
    InvalidBundle,
    InvocationRequest,
    InvocationResult,
    Limits,
    ServiceUnavailable,
)

_INIT_ERROR_TYPES = {
    "handler_not_found": "Runtime.HandlerNotFound",
    "handler_syntax_error": "Runtime.UserCodeSyntaxError",
}


@dataclass
class _Counters:
    invocations: int = 0
    cold_starts: int = 0
    timeouts: int = 0
    crashes: int = 0


@dataclass
class _Pool:
    """Workers of one function version: idle ones (most recently used last) and busy ones."""

    fv: FunctionVersion
    idle: list[WorkerProcess] = field(default_factory=list)
    busy: set[WorkerProcess] = field(default_factory=set)
    starting: int = 0  # cold starts under way: the pool is in use though it holds no worker
    retired: bool = False


class LocalExecutor:
    """Runs invocations in worker processes on this machine.

    A version's idle worker is reused (warm); with none idle a new one starts (cold). A worker
    serves one invocation at a time. Idle workers are stopped after ``idle_timeout_s``.
    """

    def __init__(
        self,
        *,
        limits: Limits,
        scratch_dir: Path,
        idle_timeout_s: float = 600.0,
        python: str = sys.executable,
    ) -> None:
        self._limits = limits
        self._scratch = scratch_dir
        self._idle_timeout_s = idle_timeout_s
        self._python = python
        self._pools: dict[tuple[object, ...], _Pool] = {}
        self._counters: dict[str, _Counters] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self._stopping: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await asyncio.to_thread(self._scratch.mkdir, parents=True, exist_ok=True)
        self._reaper = asyncio.create_task(self._reap_idle(), name="pyfaas-idle-reaper")

    async def validate(self, fv: FunctionVersion) -> float:
        """Import the handler in a new worker, which then waits warm. Raises InvalidBundle."""
        worker = await self._start_worker(fv)
        worker.last_used = time.monotonic()
        self._pool(fv).idle.append(worker)
        return worker.init_ms

    async def invoke(self, fv: FunctionVersion, request: InvocationRequest) -> InvocationResult:
        """Run one invocation. Handler failures come back as results, never as exceptions."""
        if self._closed:
            raise ServiceUnavailable("the server is shutting down")
        counters = self._counters.setdefault(fv.name, _Counters())
        counters.invocations += 1
        pool = self._pool(fv)
        init_ms: float | None = None
        if pool.idle:
            worker = pool.idle.pop()
        else:
            pool.starting += 1
            try:
                worker = await self._start_worker(fv)
            except InvalidBundle as exc:
                return _error_result(
                    fv,
                    request,
                    _INIT_ERROR_TYPES.get(exc.code, "Runtime.ImportModuleError"),
                    exc.message,
                )
            finally:
                pool.starting -= 1
            counters.cold_starts += 1
            init_ms = worker.init_ms
        pool.busy.add(worker)
        try:
            reply = await worker.invoke(request, fv.timeout_s)
        except TimeoutError:
            counters.timeouts += 1
            pool.busy.discard(worker)
            self._stop_later(worker)
            return _timeout_result(fv, request, init_ms)
        except asyncio.CancelledError:
            pool.busy.discard(worker)
            self._stop_later(worker)
            raise
        except WorkerDied as exc:
            counters.crashes += 1
            pool.busy.discard(worker)
            self._stop_later(worker)
            return _error_result(
                fv,
                request,
                "Runtime.ExitError",
                f"RequestId: {request.request_id} Error: Runtime exited with error: {exc}",
                init_ms=init_ms,
            )
        pool.busy.discard(worker)
        max_rss_mb = reply["max_rss_kb"] // 1024
        body, error = reply["body"], reply["error"]
        if max_rss_mb > fv.memory_mb:
            # Lambda stops a function past its memory size; we learn it after the call.
            body = json.dumps(
                {
                    "errorMessage": f"RequestId: {request.request_id} Error: Runtime exited "
                    f"with error: memory used ({max_rss_mb} MB) exceeds the function's "
                    f"{fv.memory_mb} MB",
                    "errorType": "Runtime.OutOfMemory",
                }
            ).encode()
            error, reply["recycle"] = True, True
        if reply["recycle"] or pool.retired or self._closed:
            self._stop_later(worker)
        else:
            pool.idle.append(worker)
        return InvocationResult(
            request_id=request.request_id,
            body=body,
            function_error="Unhandled" if error else None,
            duration_ms=reply["duration_ms"],
            init_duration_ms=init_ms,
            max_memory_used_mb=max_rss_mb,
            logs=reply["logs"],
            version=fv.version,
        )

    async def retire(self, name: str, keep: FunctionVersion | None = None) -> None:
        """Stop the workers of ``name``'s versions (but ``keep``'s).

        Idle ones stop now; busy ones finish their invocation, then stop.
        """
        stopping = []
        for key, pool in list(self._pools.items()):
            if pool.fv.name == name and (keep is None or key != keep.pool_key):
                pool.retired = True
                del self._pools[key]
                stopping += pool.idle
                pool.idle = []
        if keep is None:
            self._counters.pop(name, None)
        await asyncio.gather(*(w.stop() for w in stopping))

    def stats(self, name: str) -> FunctionStats:
        busy = idle = 0
        for pool in self._pools.values():
            if pool.fv.name == name:
                busy += len(pool.busy)
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
        """Stop every worker and wait for them. Idempotent."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        workers = [w for p in self._pools.values() for w in (*p.idle, *p.busy)]
        self._pools.clear()
        await asyncio.gather(*(w.stop(grace_s=0.5) for w in workers), *self._stopping)

    def _stop_later(self, worker: WorkerProcess) -> None:
        task = asyncio.create_task(worker.stop(grace_s=0))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def _pool(self, fv: FunctionVersion) -> _Pool:
        pool = self._pools.get(fv.pool_key)
        if pool is None:
            pool = self._pools[fv.pool_key] = _Pool(fv)
        return pool

    async def _start_worker(self, fv: FunctionVersion) -> WorkerProcess:
        return await WorkerProcess.start(
            fv, python=self._python, scratch_root=self._scratch, limits=self._limits
        )

    async def _reap_idle(self) -> None:
        period = min(5.0, max(0.05, self._idle_timeout_s / 4))
        while True:
            await asyncio.sleep(period)
            cutoff = time.monotonic() - self._idle_timeout_s
            stale: list[WorkerProcess] = []
            for key, pool in list(self._pools.items()):
                keep = [w for w in pool.idle if w.last_used > cutoff]
                stale += [w for w in pool.idle if w.last_used <= cutoff]
                pool.idle = keep
                if not pool.idle and not pool.busy and not pool.starting:
                    del self._pools[key]
            if stale:
                await asyncio.gather(*(w.stop() for w in stale))


def _error_result(
    fv: FunctionVersion,
    request: InvocationRequest,
    error_type: str,
    message: str,
    *,
    init_ms: float | None = None,
    duration_ms: float = 0.0,
    logs: str = "",
) -> InvocationResult:
    body = json.dumps({"errorMessage": message, "errorType": error_type}).encode()
    return InvocationResult(
        request_id=request.request_id,
        body=body,
        function_error="Unhandled",
        duration_ms=duration_ms,
        init_duration_ms=init_ms,
        logs=logs,
        version=fv.version,
    )


def _timeout_result(
    fv: FunctionVersion, request: InvocationRequest, init_ms: float | None
) -> InvocationResult:
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    message = (
        f"RequestId: {request.request_id} Error: Task timed out after {fv.timeout_s:.2f} seconds"
    )
    return _error_result(
        fv,
        request,
        "Sandbox.Timedout",
        message,
        init_ms=init_ms,
        duration_ms=fv.timeout_s * 1000.0,
        logs=f"{when} {message}\n",
    )
