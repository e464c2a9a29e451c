"""Stored log records handed to followers in-process, as the LogWriter stores them."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence

from pyfaas.model import LogRecord
from pyfaas.store.logs import LogRow, record_of


class Subscription:
    """New records of one function, queued for one follower, bounded.

    A follower that falls behind by more than ``max_records`` records or ``max_bytes`` of
    text is not buffered further: its queue is emptied and ``next_batch`` says it lagged, so
    it reads what it missed from the store instead. The server's memory stays bounded
    whatever a slow client does.
    """

    def __init__(self, function: str, max_records: int, max_bytes: int) -> None:
        self.function = function
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._queue: deque[LogRecord] = deque()
        self._bytes = 0
        self._lagged = False
        self._closed = False
        self._ready = asyncio.Event()

    @property
    def closed(self) -> bool:
        """The server is stopping: the follower should end its stream."""
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    def reset(self) -> None:
        """Forget what is queued and any lag (the follower is about to read the store)."""
        self._queue.clear()
        self._bytes = 0
        self._lagged = False
        self._ready.clear()

    def push(self, record: LogRecord) -> None:
        if self._lagged:
            return
        if (
            len(self._queue) >= self._max_records
            or self._bytes + len(record.text) > self._max_bytes
        ):
            self._queue.clear()
            self._bytes = 0
            self._lagged = True
        else:
            self._queue.append(record)
            self._bytes += len(record.text)
        self._ready.set()

    async def next_batch(self, wait_s: float) -> list[LogRecord] | None:
        """Queued records, oldest first; ``[]`` after ``wait_s`` seconds with none; None if
        the follower lagged (read the store from its cursor, then ``reset``)."""
        if not self._queue and not self._lagged:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), wait_s)
        self._ready.clear()
        if self._lagged:
            return None
        batch = list(self._queue)
        self._queue.clear()
        self._bytes = 0
        return batch


class LogFeed:
    """Fans stored records out to the followers of their function."""

    def __init__(self, *, max_records: int = 5000, max_bytes: int = 16 * 1024 * 1024) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._closed = False
        # Called when the first follower comes or the last one goes (the LogWriter writes
        # more often while someone follows).
        self.on_followed: Callable[[], None] | None = None

    def close(self) -> None:
        """End every subscription, now and from now on (the server is stopping)."""
        self._closed = True
        for subs in self._subscribers.values():
            for sub in subs:
                sub.close()

    @contextlib.contextmanager
    def subscribe(self, function: str) -> Iterator[Subscription]:
        """Receive ``function``'s records stored from now on, until the block ends."""
        sub = Subscription(function, self._max_records, self._max_bytes)
        if self._closed:
            sub.close()
        first = not self._subscribers
        self._subscribers.setdefault(function, set()).add(sub)
        if first and self.on_followed is not None:
            self.on_followed()
        try:
            yield sub
        finally:
            subs = self._subscribers.get(function)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscribers[function]
                    if not self._subscribers and self.on_followed is not None:
                        self.on_followed()

    def publish(self, records: Iterable[LogRecord]) -> None:
        """Hand stored records (ids assigned, ascending) to their followers; never blocks."""
        if not self._subscribers:
            return
        for record in records:
            for sub in self._subscribers.get(record.function, ()):
                sub.push(record)

    def publish_rows(self, rows: Sequence[LogRow], ids: Sequence[int]) -> None:
        """:meth:`publish` for stored rows (store.logs.LogRow) and their ids: records (and
        their text) are made only for the functions someone follows."""
        subscribers = self._subscribers
        if not subscribers:
            return
        self.publish(
            record_of(row, id_) for row, id_ in zip(rows, ids, strict=True) if row[0] in subscribers
        )

    def followed(self) -> bool:
        """Whether anyone follows any function."""
        return bool(self._subscribers)
