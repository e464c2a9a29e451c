"""The SQL of invocation logs: batched appends, searches, and retention by age and size."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from pyfaas.model import LogQuery, LogRecord
from pyfaas.model.logs import invocation_log_text
from pyfaas.model.usage import billed_ms
from pyfaas.store.bulk import BulkInsert
from pyfaas.store.engine import Transactions
from pyfaas.store.tables import invocation_logs

_l = invocation_logs.c
# A record to store: (function, request_id, timestamp, text, size, version, duration_us,
# billed_ms, memory_mb, max_memory_mb, init_us). size is the text's length in UTF-8 bytes.
# An invocation's record (invocation_row) holds its output as text and its REPORT figures;
# a plain one (log_row) all of its text, and None for the figures.
LogRow = tuple[str, str, float, str, int, Any, Any, Any, Any, Any, Any]
_COLUMNS = (
    "function",
    "request_id",
    "timestamp",
    "text",
    "size",
    "version",
    "duration_us",
    "billed_ms",
    "memory_mb",
    "max_memory_mb",
    "init_us",
)
_NO_REPORT = (None,) * 6
_INSERT = BulkInsert(invocation_logs, _COLUMNS)
# PostgreSQL: RETURNING on a many-row insert; SQLAlchemy sends multi-row VALUES and hands the
# ids back in the order of the parameters, so a follower can be told each record's id at once.
_INSERT_RETURNING = invocation_logs.insert().returning(_l.id, sort_by_parameter_order=True)
_MAX_ID = sa.select(sa.func.max(_l.id))
_MAX_ID_OF = sa.select(sa.func.max(_l.id)).where(_l.function == sa.bindparam("function"))
_DELETE_BEFORE = invocation_logs.delete().where(_l.timestamp < sa.bindparam("cutoff"))
# The id, then a LogRow.
_SELECT = sa.select(_l.id, *(_l[name] for name in _COLUMNS))


def _utf8_size(text: str) -> int:
    # Most log text is ASCII: its length is its size, without encoding a copy.
    return len(text) if text.isascii() else len(text.encode("utf-8", errors="replace"))


def log_row(function: str, request_id: str, timestamp: float, text: str) -> LogRow:
    """A plain record as the store takes it: all of its text, with its size."""
    return (function, request_id, timestamp, text, _utf8_size(text), *_NO_REPORT)


def invocation_row(
    function: str,
    request_id: str,
    started: float,
    output: str,
    version: str,
    duration_ms: float,
    memory_mb: int,
    max_memory_mb: int,
    init_ms: float | None,
) -> LogRow:
    """An invocation's record: its ``output`` and the figures its START/END/REPORT lines are
    made of when it is read (record_text). No text is made or stored for an invocation that
    wrote nothing."""
    if output and not output.endswith("\n"):
        output += "\n"
    return (
        function,
        request_id,
        started,
        output,
        _utf8_size(output) if output else 0,
        version,
        round(duration_ms * 1000),
        billed_ms(duration_ms),
        memory_mb,
        max_memory_mb,
        0 if init_ms is None else round(init_ms * 1000),
    )


def record_text(row: Any) -> str:
    """The whole text of a stored record (a LogRow, or a row of the table)."""
    (_, request_id, _, text, _, version, duration_us, billed, memory, max_memory, init) = row
    if duration_us is None:
        return str(text)
    return invocation_log_text(
        request_id, version, text, duration_us, billed, memory, max_memory, init
    )


def record_of(row: LogRow, id_: int) -> LogRecord:
    """A stored LogRow as the record readers get."""
    return LogRecord(row[0], row[1], row[2], record_text(row), id_)


def milliseconds_sql(us: sa.ColumnElement[int]) -> sa.ColumnElement[str]:
    """model.milliseconds_text in SQL, in integer arithmetic: the same text to the character,
    on SQLite and PostgreSQL."""
    hundredths = (us + 5) // 10
    fraction = hundredths % 100
    return (
        sa.cast(hundredths // 100, sa.Text)
        + "."
        + sa.case((fraction < 10, "0"), else_="")
        + sa.cast(fraction, sa.Text)
    )


def _invocation_lines_sql(output: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """An invocation record's START, ``output``, END and REPORT lines in SQL
    (model.invocation_log_text)."""
    rid = _l.request_id
    report = (
        "REPORT RequestId: "
        + rid
        + "\tDuration: "
        + milliseconds_sql(_l.duration_us)
        + " ms\tBilled Duration: "
        + sa.cast(_l.billed_ms, sa.Text)
        + " ms\tMemory Size: "
        + sa.cast(_l.memory_mb, sa.Text)
        + " MB\tMax Memory Used: "
        + sa.cast(_l.max_memory_mb, sa.Text)
        + " MB"
        + sa.case(
            (_l.init_us == 0, ""),
            else_="\tInit Duration: " + milliseconds_sql(_l.init_us) + " ms",
        )
        + "\n"
    )
    lines = (
        "START RequestId: "
        + rid
        + " Version: "
        + _l.version
        + "\n"
        + output
        + "END RequestId: "
        + rid
        + "\n"
        + report
    )
    return lines


def _text_sql() -> sa.ColumnElement[str]:
    """A record's whole text in SQL (record_text)."""
    return sa.case((_l.duration_us.is_(None), _l.text), else_=_invocation_lines_sql(_l.text))


def _trim_statement(sqlite: bool) -> sa.Delete:
    # Per function, the newest records whose sizes add up to the budget stay; older ones go.
    # An invocation's record counts the lines made around its output, not read from text.
    lines = _invocation_lines_sql(sa.literal(""))
    made = sa.func.length(sa.cast(lines, sa.LargeBinary)) if sqlite else sa.func.octet_length(lines)
    size = _l.size + sa.case((_l.duration_us.is_(None), 0), else_=made)
    newest_first = (
        sa.select(
            _l.id,
            sa.func.sum(size).over(partition_by=_l.function, order_by=_l.id.desc()).label("kept"),
        )
    ).subquery()
    over = sa.select(newest_first.c.id).where(newest_first.c.kept > sa.bindparam("budget"))
    return invocation_logs.delete().where(_l.id.in_(over))


def _insert_sqlite(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> range:
    # SQLite would send one INSERT per row to keep RETURNING in order. It has one writer,
    # and a rowid table gives each new row max(rowid) + 1: the batch's ids are the
    # consecutive ones ending at the last inserted rowid.
    last = _INSERT.run_sqlite(conn, rows)
    return range(last - len(rows) + 1, last + 1)


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
        self._trim = _trim_statement(self._sqlite)

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
        select = _SELECT.where(_l.function == query.function, _l.id > query.after_id)
        if query.request_id is not None:
            select = select.where(_l.request_id == query.request_id)
        if query.since is not None:
            select = select.where(_l.timestamp >= query.since)
        if query.until is not None:
            select = select.where(_l.timestamp <= query.until)
        if query.contains:
            text = _text_sql()
            select = select.where(_contains(text, query.contains, sqlite=self._sqlite))
        # The (function, id) index serves both directions; a tail reads backwards from the end.
        select = select.order_by(_l.id.desc() if query.tail else _l.id.asc()).limit(query.limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select)).all()
        records = [
            LogRecord(r.function, r.request_id, r.timestamp, record_text(r[1:]), r.id) for r in rows
        ]
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
            result = await conn.execute(self._trim, {"budget": budget_bytes})
        return int(result.rowcount or 0)
