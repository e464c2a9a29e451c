"""Many-row INSERTs handed straight to the driver's executemany.

A Core ``insert()`` with a list of dicts makes SQLAlchemy build and convert every row's
parameters on the event loop (tens of microseconds a row): too much for the usage record and
the log of every invocation. ``BulkInsert`` sends plain tuples in the driver's own parameter
style, so the loop only builds the tuples; the driver binds them (on SQLite in a thread:
``run_sqlite`` inside ``Transactions.in_thread``). Only for columns whose Python values the
driver takes as they are: str, int, float, None. On PostgreSQL, engine events still run (NUL
characters are replaced: postgres_text); SQLite stores them as they are.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

# The positional marker of each DBAPI parameter style a pyfaas store uses.
_MARKERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
# Rows per statement on SQLite at most. A batch of up to this many rows goes as one
# statement whose VALUES list is padded up to the next power of two with rows of zeros
# (which the statement leaves out: a row's first value is text), so that a handful of
# statement texts serve every batch size from the sqlite3 module's statement cache, and a
# batch costs one statement step: the GIL changes hands (between the write thread and the
# event loop) once per statement. Zeros, not NULLs: the sqlite3 module of Python 3.11 binds
# an int in ~40 ns and None in ~500 ns (it looks for an adapter first), holding the GIL.
MAX_ROWS_PER_STATEMENT = 256


class BulkInsert:
    """``INSERT INTO table (columns...)`` for many rows at once, each row a tuple of the
    columns' values in the order given."""

    def __init__(
        self,
        table: sa.Table,
        columns: Sequence[str],
        derived: Mapping[str, str] | None = None,
    ) -> None:
        """``derived``: more columns, each an SQL expression of the given ones (``column1``
        is the first), which SQLite computes as it inserts (``run_sqlite`` only: rows for
        ``run`` hold every column)."""
        derived = dict(derived or {})
        missing = [name for name in (*columns, *derived) if name not in table.c]
        if missing:
            raise ValueError(f"{table.name} has no column(s) {', '.join(missing)}")
        first = table.c[columns[0]]
        if first.nullable or not isinstance(first.type, sa.String):
            # run_sqlite tells padding (0) from rows by their first value: text in a row.
            raise ValueError("the first column of a bulk insert must be text, NOT NULL")
        self._table = table.name
        self._columns = tuple(columns)
        self._derived = derived
        self._sql: dict[str, str] = {}
        self._multi_row_sql: dict[int, str] = {}

    def statement(self, paramstyle: str) -> str:
        """The SQL text for a driver of ``paramstyle`` (qmark, format or pyformat)."""
        sql = self._sql.get(paramstyle)
        if sql is None:
            marker = _MARKERS.get(paramstyle)
            if marker is None:
                raise ValueError(f"no bulk insert for the {paramstyle!r} parameter style")
            names = ", ".join(f'"{name}"' for name in self._columns)
            markers = ", ".join([marker] * len(self._columns))
            sql = self._sql[paramstyle] = (
                f'INSERT INTO "{self._table}" ({names}) VALUES ({markers})'
            )
        return sql

    async def run(self, conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert ``rows`` on ``conn`` (in its transaction) with one executemany."""
        if self._derived:
            raise TypeError("a bulk insert with derived columns is for run_sqlite only")
        if rows:
            await conn.exec_driver_sql(self.statement(conn.dialect.paramstyle), list(rows))

    def multi_row_statement(self, count: int) -> str:
        """``INSERT ... SELECT`` from ``count`` rows of qmark parameters, leaving out those
        whose first value is the integer 0 (SQLite)."""
        sql = self._multi_row_sql.get(count)
        if sql is None:
            row = f"({', '.join(['?'] * len(self._columns))})"
            names = ", ".join(f'"{name}"' for name in (*self._columns, *self._derived))
            given = [f"column{n}" for n in range(1, len(self._columns) + 1)]
            values = ", ".join([*given, *self._derived.values()])
            sql = self._multi_row_sql[count] = (
                f'INSERT INTO "{self._table}" ({names}) SELECT {values} '
                f"FROM (VALUES {', '.join([row] * count)}) WHERE column1 IS NOT 0"
            )
        return sql

    def run_sqlite(self, conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        """The same on a plain sqlite3 connection (blocking: Transactions.in_thread), one
        statement per MAX_ROWS_PER_STATEMENT rows; rows are inserted in the order given.
        Returns the rowid of the last row inserted (0 when ``rows`` is empty)."""
        width = len(self._columns)
        largest = max(1, min(MAX_ROWS_PER_STATEMENT, conn.getlimit(_VARIABLES) // width))
        last = 0
        for start in range(0, len(rows), largest):
            chunk = rows[start : start + largest]
            padded = min(largest, 1 << (len(chunk) - 1).bit_length())
            params = list(chain.from_iterable(chunk))
            params += [0] * ((padded - len(chunk)) * width)
            last = conn.execute(self.multi_row_statement(padded), params).lastrowid or 0
        return last


_VARIABLES = sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER
