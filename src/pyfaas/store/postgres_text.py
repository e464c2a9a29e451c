"""PostgreSQL's text cannot hold U+0000 (psycopg refuses to send it). Anything reaches the
store as text: a name in a URL, a description, a token's name, a line a handler prints.
So on PostgreSQL every string parameter is sent with U+0000 replaced by U+FFFD, the
replacement character: a write keeps the rest of the text, and a lookup finds what such a
write stored (names that pyfaas validates never hold either, so they are simply not found).
SQLite stores U+0000 as it is and needs none of this."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

NUL = "\x00"
REPLACEMENT = "\ufffd"


def replace_nul_characters(engine: AsyncEngine) -> None:
    """Install the replacement on ``engine`` (a PostgreSQL engine; a no-op on others)."""
    if engine.dialect.name != "postgresql":
        return
    sa.event.listen(engine.sync_engine, "before_cursor_execute", _before_execute, retval=True)


def _before_execute(
    _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool
) -> tuple[str, Any]:
    rows = parameters if executemany and isinstance(parameters, list | tuple) else [parameters]
    if any(_holds_nul(row) for row in rows):
        replaced = [_replaced(row) for row in rows]
        parameters = replaced if executemany else replaced[0]
    return statement, parameters


def _values(parameters: Any) -> Iterable[Any]:
    if isinstance(parameters, Mapping):
        return parameters.values()
    if isinstance(parameters, list | tuple):
        return parameters
    return ()


def _holds_nul(parameters: Any) -> bool:
    return any(isinstance(value, str) and NUL in value for value in _values(parameters))


def _replaced(parameters: Any) -> Any:
    if isinstance(parameters, Mapping):
        return {key: _text(value) for key, value in parameters.items()}
    if isinstance(parameters, list | tuple):
        return type(parameters)(_text(value) for value in parameters)
    return parameters


def _text(value: Any) -> Any:
    return value.replace(NUL, REPLACEMENT) if isinstance(value, str) else value
