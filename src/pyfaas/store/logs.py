"""The SQL of invocation logs: batched appends, searches, and retention by age and size."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from pyfaas.model import LogQuery, LogRecord
from pyfaas.store.bulk import BulkInsert
from pyfaas.store.engine import Transactions
from pyfaas.store.tables import invocation_logs

_l = invocation_logs.c
# A record to store: (function, request_id, timestamp, text, size): size is the text's
# length in UTF-8 bytes (log_row makes it).
LogRow = tuple[str, str, float, str, int]
_COLUMNS = ("function", "request_id", "timestamp", "text", "size")
_INSERT = BulkInsert(invocation_logs, _COLUMNS)
# PostgreSQL: RETURNING on a many-row insert; SQLAlchemy sends multi-row VALUES and hands the
# ids back in the order of the parameters, so a follower can be told each record's id at once.
_INSERT_RETURNING = invocation_logs.insert().returning(_l.id, sort_by_parameter_order=True)
_MAX_ID = sa.select(sa.func.max(_l.id))
_MAX_ID_OF = sa.select(sa.func.max(_l.id)).where(_l.function == sa.bindparam("function"))
_DELETE_BEFORE = invocation_logs.delete().where(_l.timestamp < sa.bindparam("cutoff"))


def _trim_statement() -> sa.Delete:
    # Per function, the newest records whose sizes add up to the budget stay; older ones go.
    newest_first = (
        sa.select(
            _l.id,
            sa.func.sum(_l.size)
            .over(partition_by=_l.function, order_by=_l.id.desc())
            .label("kept"),
        )
    ).subquery()
    over = sa.select(newest_first.c.id).where(newest_first.c.kept > sa.bindparam("budget"))
    return invocation_logs.delete().where(_l.id.in_(over))


_TRIM = _trim_statement()


def _insert_sqlite(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> range:
    # SQLite would send one INSERT per row to keep RETURNING in order. It has one writer,
    # and a rowid table gives each new row max(rowid) + 1: the batch's ids are the
    # consecutive ones ending at the last inserted rowid.
    last = _INSERT.run_sqlite(conn, rows)
    return range(last - len(rows) + 1, last + 1)


def log_row(function: str, request_id: str, timestamp: float, text: str) -> LogRow:
    """A record as the store takes it, with its size."""
    # Most log text is ASCII: its length is its size, without encoding a copy.
    size = len(text) if text.isascii() else len(text.encode("utf-8", errors="replace"))
    return (function, request_id, timestamp, text, size)


def _contains(column: sa.ColumnElement[str], text: str, *, sqlite: bool) -> sa.ColumnElement[bool]:
    # A plain, case-sensitive substring on both databases (LIKE folds case on SQLite only and
    # treats % and _ as wildcards).
    if sqlite:
        return sa.func.instr(column, text) > 0
    return sa.func.strpos(column, text) > 0


class LogStore:
    """Invocation log records in the ``invocation_logs`` table (every method a coroutine)."""

    def __init__(self, engine: AsyncEngine, tx: Transactions) -> None:
        self._engine = engine
        self._tx = tx
        self._sqlite = engine.dialect.name == "sqlite"

    async def append(self, records: Sequence[LogRecord]) -> list[LogRecord]:
        """Store a batch in one transaction; return it with the ids the store assigned.

        Ids are assigned in the order given, so they increase within and across batches of
        one server.
        """
        ids = await self.append_rows(
            [log_row(r.function, r.request_id, r.timestamp, r.text) for r in records]
        )
        return [
            LogRecord(r.function, r.request_id, r.timestamp, r.text, id_)
            for r, id_ in zip(records, ids, strict=True)
        ]

    async def append_rows(self, rows: Sequence[LogRow]) -> Sequence[int]:
        """:meth:`append` for records as plain tuples (the log writer's batches: no record
        objects made for them; see log_row); returns their ids, in the order given."""
        if not rows:
            return []
        if self._sqlite:
            return await self._tx.in_thread(lambda conn: _insert_sqlite(conn, rows))
        named = [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
        async with self._tx.begin() as conn:
            ids: Sequence[int] = (await conn.execute(_INSERT_RETURNING, named)).scalars().all()
        return ids

    async def search(self, query: LogQuery) -> list[LogRecord]:
        """The records ``query`` selects, in ascending id order."""
        if query.limit <= 0:
            return []
        select = sa.select(invocation_logs).where(
            _l.function == query.function, _l.id > query.after_id
        )
        if query.request_id is not None:
            select = select.where(_l.request_id == query.request_id)
        if query.since is not None:
            select = select.where(_l.timestamp >= query.since)
        if query.until is not None:
            select = select.where(_l.timestamp <= query.until)
        if query.contains:
            select = select.where(_contains(_l.text, query.contains, sqlite=self._sqlite))
        # The (function, id) index serves both directions; a tail reads backwards from the end.
        select = select.order_by(_l.id.desc() if query.tail else _l.id.asc()).limit(query.limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select)).all()
        records = [LogRecord(r.function, r.request_id, r.timestamp, r.text, r.id) for r in rows]
        return records[::-1] if query.tail else records

    async def last_id(self, function: str | None = None) -> int:
        """The greatest record id (of ``function``, or of all), 0 when there is none."""
        params: dict[str, Any] = {}
        statement = _MAX_ID
        if function is not None:
            statement, params = _MAX_ID_OF, {"function": function}
        async with self._engine.connect() as conn:
            found = (await conn.execute(statement, params)).scalar()
        return int(found or 0)

    async def delete_before(self, cutoff: float) -> int:
        """Delete records older than ``cutoff`` (seconds since the epoch); return how many."""
        async with self._tx.begin() as conn:
            result = await conn.execute(_DELETE_BEFORE, {"cutoff": cutoff})
        return int(result.rowcount or 0)

    async def trim(self, budget_bytes: int) -> int:
        """Keep at most ``budget_bytes`` of log text per function, newest first; return how
        many records were deleted. Reads every record's size (not its text): run it from a
        background sweeper, not per request."""
        async with self._tx.begin() as conn:
            result = await conn.execute(_TRIM, {"budget": budget_bytes})
        return int(result.rowcount or 0)
