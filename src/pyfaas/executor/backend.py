"""The seam between the control plane and whatever runs workers (local processes, Ray)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from pyfaas.model import FunctionVersion, InvocationRequest, InvocationResult


@dataclass(frozen=True, slots=True)
class FunctionStats:
    """A function's workers right now, and counters since the server started."""

    workers_busy: int
    workers_idle: int
    invocations: int
    cold_starts: int
    timeouts: int
    crashes: int


class ExecutorBackend(Protocol):
    """What the control plane needs from an executor (local processes today, Ray later).

    Every method is a coroutine on the server's event loop and never blocks it.
    """

    async def start(self) -> None:
        """Start background work (the idle reaper). Call once, before anything else."""
        ...

    async def validate(self, fv: FunctionVersion) -> float:
        """Import fv's handler in a new worker (Lambda's init phase); return its init ms.

        The worker then waits warm, so the first invoke is warm. Raises InvalidBundle with
        code handler_module_not_found, handler_not_found, handler_syntax_error or
        handler_init_error (the worker is discarded); ServiceUnavailable when closed.
        """
        ...

    async def ensure_warm(self, fv: FunctionVersion) -> int:
        """Start workers until fv has ``fv.provisioned_concurrency``, initialized; keep them
        (replacing any that die) while fv is current. Returns how many started."""
        ...

    async def invoke(self, fv: FunctionVersion, request: InvocationRequest) -> InvocationResult:
        """Run one invocation. Whatever the handler does is a result (``function_error``
        set); raises only for platform problems (ServiceUnavailable)."""
        ...

    async def retire(
        self, name: str, keep: FunctionVersion | None = None, *, version: str | None = None
    ) -> None:
        """Stop the workers of every version of ``name`` except ``keep``'s (update, delete).
        With ``keep``, only pools of keep's version; with ``version``, that version's.

        Idle workers stop before this returns; busy ones finish their invocation first.
        """
        ...

    def stats(self, name: str) -> FunctionStats:
        """``name``'s workers right now and its counters. Non-blocking."""
        ...

    async def close(self) -> None:
        """Stop every worker and wait until all are gone. Idempotent."""
        ...


class PooledWorker(Protocol):
    """One warm worker as the executor's pools hold it: a local process
    (:class:`~pyfaas.executor.worker.WorkerProcess`) or a Ray actor
    (:class:`~pyfaas.executor.ray_backend.RayWorker`)."""

    fv: FunctionVersion
    start_kind: str
    init_ms: float
    last_used: float
    load: int
    draining: bool

    @property
    def alive(self) -> bool:
        """False once it can serve no more (exited, lost, or being stopped)."""
        ...

    async def invoke(self, request: InvocationRequest, timeout_s: float) -> dict[str, Any]:
        """Run one invocation; the runtime's "result" message. Raises WorkerTimedOut,
        WorkerDied (the handler's doing) or WorkerLost (the platform's)."""
        ...

    def stop(self, grace_s: float = 1.0) -> asyncio.Future[None]:
        """Stop it in the background; idempotent."""
        ...


class WorkerLauncher(Protocol):
    """Makes ready workers (handler imported) for the executor's pools."""

    async def start(self) -> None: ...

    async def launch(self, fv: FunctionVersion) -> PooledWorker:
        """A new worker of ``fv``, its ``init_ms`` set. Raises HandlerInitFailed, OSError,
        WorkerLost (the platform lost it while it started: retriable at once)."""
        ...

    async def drop(self, pool_key: tuple[object, ...]) -> None:
        """``pool_key``'s pool is empty or retired: let go of what is kept for it."""
        ...

    async def close(self) -> None: ...
