"""Opening a database: URL checks, SQLite pragmas, migrations to head, the serving engine."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from pyfaas.model import ConfigurationError
from pyfaas.store.postgres_text import replace_nul_characters

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same in every pyfaas server sharing a database.
_PG_MIGRATION_LOCK = 0x70796661_6173  # "pyfaas"
# Alembic's `context` and `op` are module-level proxies: one migration per process at a time.
_MIGRATING = threading.Lock()
T = TypeVar("T")
_SUPPORTED = "use sqlite:////abs/path/pyfaas.db or postgresql+psycopg://user@host:port/db"


def database_urls(url: str) -> tuple[URL, URL]:
    """(sync URL for migrations, async URL for serving) of a configured store URL.

    Creates the parent directory of a SQLite file. Raises ConfigurationError (the URL is
    server configuration: `pyfaas serve` reports it as such before serving).
    """
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigurationError(f"store URL {url!r} is not a URL; {_SUPPORTED}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigurationError(f"SQLite needs a file, not {url!r}; {_SUPPORTED}")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return parsed.set(drivername="sqlite"), parsed.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":
        # psycopg 3 serves both: blocking for Alembic, async for the store.
        pg = parsed.set(drivername="postgresql+psycopg")
        return pg, pg
    raise ConfigurationError(f"unsupported store URL scheme {parsed.drivername!r}; {_SUPPORTED}")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, synchronous: str = "FULL") -> None:
    # WAL lets readers run beside the one writer. FULL fsyncs the WAL at every commit: an
    # accepted async event survives a power cut, not only a crash (callers batch writes, so
    # the fsyncs are few). busy_timeout turns lock contention into waiting, not errors.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _sqlite_pragmas_unsynced(dbapi_connection: Any, record: Any) -> None:
    # NORMAL in WAL mode: a commit is written to the WAL but not fsynced (the next FULL commit
    # or checkpoint syncs it). A crash of the process loses nothing; a power cut may lose the
    # last such commits, never a FULL one or what it depends on.
    _sqlite_pragmas(dbapi_connection, record, synchronous="NORMAL")


def _sqlite_begin_immediate(connection: sa.Connection) -> None:
    # The sqlite3 module does not put DDL in a transaction by itself. An IMMEDIATE one takes
    # the write lock first, so two servers starting on one file migrate one after the other.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(sync_url: URL) -> None:
    """Bring the schema to the newest revision (blocking; a no-op when it is there already).

    Safe to run from several threads or processes at once: SQLite serialises on its write
    lock, PostgreSQL on an advisory lock. Raises ConfigurationError if the database is
    unreachable.
    """
    with _MIGRATING:
        _migrate(sync_url)


def _migrate(sync_url: URL) -> None:
    is_sqlite = sync_url.get_backend_name() == "sqlite"
    engine = sa.create_engine(sync_url, connect_args={"isolation_level": None} if is_sqlite else {})
    if is_sqlite:
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin_immediate)
    try:
        with engine.begin() as connection:
            if not is_sqlite:
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            config = Config()
            # Config values go through configparser interpolation: '%' must be doubled.
            config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except sa.exc.OperationalError as exc:
        raise ConfigurationError(f"cannot open the store database: {exc.orig}") from None
    finally:
        engine.dispose()


async def open_engine(url: str) -> AsyncEngine:
    """Migrate (in a thread), then return the async engine the store serves from.

    Raises ConfigurationError for a bad URL or an unreachable database.
    """
    sync_url, async_url = database_urls(url)
    await asyncio.to_thread(migrate, sync_url)
    is_sqlite = async_url.get_backend_name() == "sqlite"
    # A server outlives database restarts; pinging a pooled PostgreSQL connection is cheap.
    engine = create_async_engine(async_url, pool_pre_ping=not is_sqlite)
    if is_sqlite:
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    replace_nul_characters(engine)
    return engine


class Transactions:
    """Write transactions of one server process.

    SQLite has one writer at a time; connections that collide wait in SQLite's busy handler,
    which sleeps 1, 2, 5, 10... ms. Queuing the writers of this process on an asyncio lock
    instead hands the database from one to the next without sleeping. PostgreSQL locks rows,
    not the database: no lock there.

    On SQLite, batches written on every invocation (usage records, logs) go through
    :meth:`in_thread` instead: aiosqlite hops to its thread and back for each statement,
    BEGIN and COMMIT (about a millisecond of CPU per transaction on a busy machine). Work
    handed to :meth:`in_thread` in the same turn of the event loop (the usage and the log
    writers flush together) shares one transaction and one thread hop: one fsync for both.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        self._lock = asyncio.Lock() if self.sqlite else None
        # SQLite: connections whose commits are not fsynced, for writes that may be lost to
        # a power cut without losing what they describe (begin(synced=False)).
        self._unsynced: AsyncEngine | None = None
        if self.sqlite:
            self._unsynced = create_async_engine(engine.url)
            sa.event.listen(self._unsynced.sync_engine, "connect", _sqlite_pragmas_unsynced)
        self._path = engine.url.database or ""
        self._direct: sqlite3.Connection | None = None
        # A write cancelled on the loop goes on in its thread: the next waits for it here.
        self._direct_lock = threading.Lock()
        self._queued: list[_Job[Any]] = []
        self._committer: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def begin(self, *, synced: bool = True) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed when the block ends (rolled back if it raises).

        ``synced=False``: the commit does not wait for the disk (SQLite: a connection with
        synchronous=NORMAL; PostgreSQL: synchronous_commit off for this transaction). For
        writes whose loss to a power cut or a database crash (not to a crash of the pyfaas
        server) only makes work happen again: an async event's lease and outcome, never its
        acceptance.
        """
        if self._lock is None:
            async with self._engine.begin() as conn:
                if not synced:
                    await conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                yield conn
            return
        engine = self._engine if synced or self._unsynced is None else self._unsynced
        async with self._lock, engine.begin() as conn:
            yield conn

    async def dispose(self) -> None:
        """Close the pooled connections of begin(synced=False)."""
        if self._unsynced is not None:
            await self._unsynced.dispose()

    async def in_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """SQLite only: run ``work`` in a write transaction on this process's own sqlite3
        connection, in a worker thread, queued with the other writers; return its result.

        Work handed in during the same turn of the event loop shares one transaction; if
        one raises, the others are written all the same (in transactions of their own) and
        its caller gets the exception. ``work`` must only execute statements (the
        transaction is begun and committed around it) and may run twice (the second time
        after its first was rolled back). A caller that is cancelled does not stop its work:
        it is written all the same.
        """
        assert self._lock is not None, "in_thread is for SQLite stores"
        job: _Job[T] = _Job(work, asyncio.get_running_loop().create_future())
        self._queued.append(job)
        if self._committer is None:
            # Started, not run: work queued before it runs (this turn) joins the transaction.
            self._committer = asyncio.create_task(self._commit_queued(), name="pyfaas-commit")
        return await job.done

    async def _commit_queued(self) -> None:
        assert self._lock is not None
        try:
            while self._queued:
                jobs, self._queued = self._queued, []
                try:
                    async with self._lock:
                        outcomes = await asyncio.to_thread(self._in_transaction, jobs)
                except Exception as exc:  # BEGIN or COMMIT failed: every job with it
                    outcomes = [exc] * len(jobs)
                except BaseException:  # cancelled (the loop is closing): callers must not hang
                    for job in jobs + self._queued:
                        job.settle(RuntimeError("the store's write thread was stopped"))
                    raise
                for job, outcome in zip(jobs, outcomes, strict=True):
                    job.settle(outcome)
        finally:
            self._committer = None

    def _in_transaction(self, jobs: list[_Job[Any]]) -> list[Any]:
        """Run ``jobs`` in one transaction; return each one's result or exception.

        No savepoint per job (each statement is a hand-over of the GIL between this thread
        and the event loop): if a job raises, the transaction is rolled back and each job
        runs again in a transaction of its own, so that only the failing one fails.
        """
        with self._direct_lock:
            conn = self._direct
            if conn is None:
                conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
                _sqlite_pragmas(conn, None)
                self._direct = conn
            try:
                return _committed(conn, [job.work for job in jobs])
            except Exception:
                if len(jobs) == 1:
                    raise
            outcomes: list[Any] = []
            for job in jobs:
                try:
                    outcomes.append(_committed(conn, [job.work])[0])
                except Exception as exc:
                    outcomes.append(exc)
            return outcomes

    def close(self) -> None:
        """Close the connection of :meth:`in_thread` (blocking: waits for a write in progress)."""
        with self._direct_lock:
            if self._direct is not None:
                self._direct.close()
                self._direct = None


class _Job(Generic[T]):
    """Work for the write thread, and the future its caller waits on."""

    __slots__ = ("done", "work")

    def __init__(self, work: Callable[[sqlite3.Connection], T], done: asyncio.Future[T]) -> None:
        self.work = work
        self.done = done

    def settle(self, outcome: object) -> None:
        """Hand the caller its result, or raise ``outcome`` in it if it is an exception."""
        if self.done.done():  # the caller was cancelled
            return
        if isinstance(outcome, BaseException):
            self.done.set_exception(outcome)
        else:
            self.done.set_result(outcome)  # type: ignore[arg-type]


def _committed(
    conn: sqlite3.Connection, works: list[Callable[[sqlite3.Connection], Any]]
) -> list[Any]:
    """Run ``works`` in one write transaction and commit it; return their results. If one
    raises, the transaction is rolled back and the exception propagates."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        results = [work(conn) for work in works]
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return results
