"""The scaler: every invocation passes admission, then the executor runs it."""

from __future__ import annotations

from dataclasses import dataclass

from pyfaas.executor import ExecutorBackend
from pyfaas.model import FunctionVersion, InvocationRequest, InvocationResult
from pyfaas.scaling.admission import Admission


@dataclass(frozen=True, slots=True)
class ScalingStats:
    """A function's workers and calls right now, and its counters since the server started."""

    workers_busy: int
    workers_idle: int
    in_flight: int
    invocations: int
    cold_starts: int
    throttles: int
    timeouts: int
    crashes: int
    reserved_concurrency: int | None
    provisioned_concurrency: int


class Scaler:
    """Admission control and provisioned concurrency in front of an executor.

    The control plane calls :meth:`configure` whenever a function's version or scaling
    settings change (deploy, update, server start) and :meth:`forget` when it is deleted.
    Scale to zero is the executor's reaper, driven by each version's idle timeout.
    """

    def __init__(self, executor: ExecutorBackend, *, max_concurrency: int, wait_s: float) -> None:
        self.executor = executor
        self.admission = Admission(max_concurrency, wait_s)
        self._current: dict[str, FunctionVersion] = {}

    async def start(self) -> None:
        await self.executor.start()

    def check_reservation(self, name: str, reserved: int | None) -> None:
        """Raise InvalidFunctionConfig if ``name`` cannot reserve ``reserved``."""
        self.admission.check_reservation(name, reserved)

    def reserve(self, fv: FunctionVersion) -> None:
        """Apply ``fv``'s reservation only (a server starting: no workers yet)."""
        self._current[fv.name] = fv
        self.admission.reserve(fv.name, fv.reserved_concurrency)

    async def configure(self, fv: FunctionVersion) -> None:
        """Make ``fv`` the version its function runs: apply its reservation and start its
        provisioned workers (returns once they are initialized)."""
        self.reserve(fv)
        await self.executor.ensure_warm(fv)

    async def validate(self, fv: FunctionVersion) -> float:
        return await self.executor.validate(fv)

    async def invoke(self, fv: FunctionVersion, request: InvocationRequest) -> InvocationResult:
        """Run one invocation once admitted. Raises TooManyRequests when throttled."""
        admission = self.admission
        if not admission.try_enter(fv.name):  # no free slot: wait in line (a coroutine)
            await admission.enter(fv)
        try:
            return await self.executor.invoke(fv, request)
        finally:
            admission.leave(fv.name)

    async def retire(self, name: str, keep: FunctionVersion | None = None) -> None:
        await self.executor.retire(name, keep)

    async def warm(self, fv: FunctionVersion) -> None:
        """Keep ``fv.provisioned_concurrency`` workers of a published version ready (0 lets
        them scale to zero); the function's reservation is not touched."""
        await self.executor.ensure_warm(fv)

    async def retire_version(self, name: str, version: str) -> None:
        """A published version was deleted: stop its workers."""
        await self.executor.retire(name, version=version)

    async def forget(self, name: str) -> None:
        """``name`` was deleted: stop its workers, drop its reservation and counters."""
        self._current.pop(name, None)
        self.admission.forget(name)
        await self.executor.retire(name)

    def functions(self) -> list[str]:
        """The names of the functions it knows (deployed, not deleted)."""
        return list(self._current)

    def stats(self, name: str) -> ScalingStats:
        ex = self.executor.stats(name)
        fv = self._current.get(name)
        return ScalingStats(
            workers_busy=ex.workers_busy,
            workers_idle=ex.workers_idle,
            in_flight=self.admission.in_flight(name),
            invocations=ex.invocations,
            cold_starts=ex.cold_starts,
            throttles=self.admission.throttles.get(name, 0),
            timeouts=ex.timeouts,
            crashes=ex.crashes,
            reserved_concurrency=fv.reserved_concurrency if fv else None,
            provisioned_concurrency=fv.provisioned_concurrency if fv else 0,
        )

    async def close(self) -> None:
        await self.executor.close()
