"""Group commit: many writes per transaction (and per fsync), each caller waiting for its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from pyfaas.model import ServiceUnavailable
from pyfaas.store.events import EventStore, NewEvent

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Passes submitted items to ``commit`` in batches; ``submit`` returns the item's result.

    While one batch commits, the next gathers: under load one fsync serves many items, and
    an item submitted to an idle committer is written at once, without waiting for company.
    """

    def __init__(
        self,
        commit: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        name: str,
        max_batch: int = 1000,
    ) -> None:
        self._commit = commit
        self._name = name
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.on_commit: Callable[[], None] = lambda: None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def submit(self, item: T) -> R:
        """Return ``item``'s result once its batch is committed. Raises ServiceUnavailable
        when closed, or the commit's error (then nothing of that batch was written)."""
        if self._closed:
            raise ServiceUnavailable("the server is shutting down; retry on another server")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        """Commit what was submitted, then stop."""
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    results = await self._commit([item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                self.on_commit()
            if self._closed:
                return


class Enqueuer(GroupCommit[NewEvent, tuple[str, bool]]):
    """Accepts async events durably: ``submit`` returns (request id, new?) after the commit."""

    def __init__(self, store: EventStore) -> None:
        super().__init__(store.enqueue, name="pyfaas-enqueuer")
