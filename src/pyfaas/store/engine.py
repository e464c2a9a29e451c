"""Opening a database: URL checks, SQLite pragmas, migrations to head."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pyfaas.model import ConfigurationError

MIGRATIONS = Path(__file__).parent / "migrations"


def _urls(url: str) -> tuple[str, str]:
    """(sync URL for migrations, async URL for serving); raises ConfigurationError."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigurationError(f"database URL {url!r} is not a URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigurationError("SQLite needs a file: sqlite:////path/to/pyfaas.db")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        sync = parsed.set(drivername="sqlite")
        return sync.render_as_string(False), parsed.set(
            drivername="sqlite+aiosqlite"
        ).render_as_string(False)
    if backend == "postgresql":
        pg = parsed.set(drivername="postgresql+psycopg")
        return pg.render_as_string(False), pg.render_as_string(False)
    raise ConfigurationError(
        f"unsupported database {backend!r}: use sqlite:///PATH or postgresql+psycopg://..."
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def migrate(sync_url: str) -> None:
    """Bring the schema to the newest revision (blocking)."""
    engine = sa.create_engine(sync_url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    try:
        with engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except sa.exc.OperationalError as exc:
        raise ConfigurationError(f"cannot open the database: {exc.orig}") from None
    finally:
        engine.dispose()


async def open_engine(url: str) -> AsyncEngine:
    """Migrate, then return an async engine for serving. Raises ConfigurationError."""
    sync_url, async_url = _urls(url)
    await asyncio.to_thread(migrate, sync_url)
    engine = create_async_engine(async_url, pool_pre_ping=not async_url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine
