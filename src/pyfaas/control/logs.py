"""Reading invocation logs back: queries, and following a function's log as it is written."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import AsyncIterator

from pyfaas.model import InvalidRequest, LogQuery, LogRecord, LogStats
from pyfaas.store import Store
from pyfaas.telemetry import LogWriter

# How many records a follower reads from the store at a time when it catches up.
CATCH_UP_PAGE = 500
# A record can be read from the store and then arrive from the feed as well: it was stored
# just before the follower read the store and published just after. Such records are among
# the newest ones read; the ids of this many are remembered to skip them.
REMEMBERED_IDS = 20_000


class LogQueryService:
    """Answers log queries; what was just logged is visible at once (pending writes go first)."""

    def __init__(self, store: Store, writer: LogWriter, heartbeat_s: float = 15.0) -> None:
        self._store = store
        self._writer = writer
        self._heartbeat_s = heartbeat_s

    async def query(
        self,
        function: str,
        *,
        request_id: str | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[LogRecord]:
        """The newest ``limit`` records (or those after ``after_id``), oldest first."""
        return await self.search(
            LogQuery(function, request_id=request_id, after_id=after_id, limit=limit)
        )

    async def search(self, query: LogQuery) -> list[LogRecord]:
        """The records ``query`` selects, oldest first. Without a cursor (``after_id`` 0)
        the newest ``limit`` of them, with one the first ``limit`` after it."""
        await self._writer.flush()
        return await self._store.logs.search(dataclasses.replace(query, tail=query.after_id == 0))

    async def page(self, query: LogQuery) -> tuple[list[LogRecord], int]:
        """``search(query)`` and the cursor to continue from: the last record's id, or when
        nothing matched, ``query.after_id`` or else the newest id in the store (so a follower
        starting from it misses nothing stored after the search)."""
        await self._writer.flush()
        newest = await self._store.logs.last_id() if query.after_id == 0 else 0
        records = await self.search(query)
        if records:
            return records, records[-1].id
        return records, query.after_id or newest

    async def check_cursor(self, after_id: int) -> None:
        """Raise InvalidRequest (``invalid_cursor``) unless ``after_id`` could have come from
        this store: not negative and not past the newest record."""
        if after_id < 0:
            raise InvalidRequest(
                f"cursor {after_id} is negative; resume with the id of the last record you got",
                code="invalid_cursor",
            )
        if after_id == 0:
            return
        await self._writer.flush()
        newest = await self._store.logs.last_id()
        if after_id > newest:
            raise InvalidRequest(
                f"cursor {after_id} is past the newest log record ({newest}): it did not come "
                "from this server's store; start again without a cursor",
                code="invalid_cursor",
            )

    def end_follows(self) -> None:
        """End every follow (the server is stopping); followers resume elsewhere or later
        with their cursor."""
        self._writer.feed.close()

    def stats(self, function: str) -> LogStats:
        """What this server lost of ``function``'s log output (truncated or dropped)."""
        return self._writer.stats(function)

    async def start_cursor(self, query: LogQuery) -> int:
        """Where a follow without a cursor starts: before the first record at or after
        ``query.since``, or after the newest record stored so far."""
        if query.since is not None:
            return 0
        await self._writer.flush()
        return await self._store.logs.last_id(query.function)

    async def follow(self, query: LogQuery, after_id: int) -> AsyncIterator[LogRecord | None]:
        """Yield ``query``'s records with ids above ``after_id`` as they are stored, oldest
        first, without end (see ``start_cursor`` for a follow without one). Yields None every
        ``heartbeat_s`` without records (so the caller can keep its connection alive).

        Ends when ``end_follows`` is called. Live records come from the writer's feed of
        this server, in-process: on a PostgreSQL shared by several servers, records written
        by other servers show up only when the follower catches up from the store (at the
        start, and when it falls behind).
        """
        feed = self._writer.feed
        with feed.subscribe(query.function) as subscription:
            await self._writer.flush()
            last = after_id
            caught_up: set[int] = set()
            lagged = True
            while True:
                if lagged:
                    # Anything stored from here on is queued; what is stored already is read
                    # from the store. A record in both is skipped the second time.
                    subscription.reset()
                    newest: deque[int] = deque(maxlen=REMEMBERED_IDS)
                    async for record in self._read_after(query, last):
                        newest.append(record.id)
                        last = max(last, record.id)
                        yield record
                    caught_up = set(newest)
                batch = await subscription.next_batch(self._heartbeat_s)
                if subscription.closed:
                    return
                lagged = batch is None
                if batch is None:
                    continue
                if not batch:
                    yield None
                    continue
                for record in batch:
                    if record.id in caught_up or not query.matches(record):
                        continue
                    last = max(last, record.id)
                    yield record

    async def _read_after(self, query: LogQuery, after_id: int) -> AsyncIterator[LogRecord]:
        while True:
            page = await self._store.logs.search(
                dataclasses.replace(query, after_id=after_id, limit=CATCH_UP_PAGE, tail=False)
            )
            for record in page:
                yield record
            if len(page) < CATCH_UP_PAGE:
                return
            after_id = page[-1].id
