"""The seam between the control plane and whatever runs workers (local processes, Ray)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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
    """What the control plane needs from an executor."""

    async def start(self) -> None: ...

    async def validate(self, fv: FunctionVersion) -> float:
        """Import fv's handler in a worker; return init ms. Raises InvalidBundle."""
        ...

    async def invoke(self, fv: FunctionVersion, request: InvocationRequest) -> InvocationResult:
        """Run one invocation; handler failures are results, not exceptions."""
        ...

    async def retire(self, name: str, keep: FunctionVersion | None = None) -> None:
        """Stop the workers of ``name`` except those of ``keep``."""
        ...

    def stats(self, name: str) -> FunctionStats: ...

    async def close(self) -> None: ...
