"""Log retention: a background sweeper that deletes logs past their age or size budget."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from pyfaas.telemetry.tasks import cancel_and_wait

log = logging.getLogger("pyfaas.telemetry")


class RetainedLogs(Protocol):
    """The store operations the sweeper needs (store.LogStore implements them)."""

    async def delete_before(self, cutoff: float) -> int: ...

    async def trim(self, budget_bytes: int) -> int: ...


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long and how much log text to keep.

    ``max_age_s``: records older than this go (0 keeps them whatever their age).
    ``max_bytes_per_function``: each function keeps its newest records up to this many bytes
    of text (0 keeps them whatever their size). ``interval_s``: time between sweeps.
    """

    max_age_s: float = 7 * 24 * 3600
    max_bytes_per_function: int = 256 * 1024 * 1024
    interval_s: float = 60.0


class LogSweeper:
    """Applies a RetentionPolicy every ``interval_s``, off the request path.

    With several servers on one PostgreSQL each sweeps; the deletes are idempotent.
    """

    def __init__(self, logs: RetainedLogs, policy: RetentionPolicy) -> None:
        self._logs = logs
        self._policy = policy
        self._task: asyncio.Task[None] | None = None
        self.deleted = 0

    async def sweep(self) -> int:
        """Delete what the policy no longer keeps now; return how many records went."""
        deleted = 0
        if self._policy.max_age_s > 0:
            deleted += await self._logs.delete_before(time.time() - self._policy.max_age_s)
        if self._policy.max_bytes_per_function > 0:
            deleted += await self._logs.trim(self._policy.max_bytes_per_function)
        self.deleted += deleted
        return deleted

    async def start(self) -> None:
        if self._policy.max_age_s > 0 or self._policy.max_bytes_per_function > 0:
            self._task = asyncio.create_task(self._run(), name="pyfaas-log-sweeper")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._policy.interval_s)
            try:
                deleted = await self.sweep()
            except Exception:
                # A failed sweep keeps the logs a little longer; the next one tries again.
                log.exception("log retention sweep failed")
                continue
            if deleted:
                log.info("log retention: deleted %d records", deleted)
