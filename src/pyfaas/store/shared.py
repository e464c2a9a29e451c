"""What several servers sharing one PostgreSQL database need beyond the tables they all
read: the code bundles (each server has its own disk) and a feed of changes, so that a
server drops what it cached as soon as another server changes it.

On SQLite (one server per file) code stays on the server's disk and the feed is silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from pyfaas.model import PyfaasError
from pyfaas.store.engine import Transactions
from pyfaas.store.tables import code_blobs, function_versions, functions

log = logging.getLogger("pyfaas.store")

CHANNEL = "pyfaas_changes"
# Reconnecting the listener after PostgreSQL went away: wait this long between tries.
RECONNECT_S = 1.0
_c = code_blobs.c
_GET_BLOB = sa.select(_c.zip).where(_c.sha256 == sa.bindparam("sha"))
# One statement: a deploy that references the code commits either before it (the blob
# stays) or after it (the deploy stores the blob again once its record is written).
_DELETE_UNREFERENCED = code_blobs.delete().where(
    _c.sha256 == sa.bindparam("sha"),
    ~sa.exists().where(functions.c.code_sha256 == sa.bindparam("sha")),
    ~sa.exists().where(function_versions.c.code_sha256 == sa.bindparam("sha")),
)


class CodeBlobStore:
    """Uploaded zips by the tree hash of their code. Every method is a coroutine."""

    def __init__(self, engine: AsyncEngine, transactions: Transactions) -> None:
        self._engine = engine
        self._tx = transactions
        self._insert = postgresql.insert(code_blobs).on_conflict_do_nothing()

    async def put(self, sha256: str, zip_bytes: bytes) -> None:
        """Keep ``zip_bytes`` as the bundle of ``sha256`` (the first one stored stays: the
        same tree hash means the same code)."""
        async with self._tx.begin() as conn:
            await conn.execute(
                self._insert, {"sha256": sha256, "zip": zip_bytes, "created_at": time.time()}
            )

    async def get(self, sha256: str) -> bytes | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(_GET_BLOB, {"sha": sha256})).first()
        return None if row is None else bytes(row[0])

    async def delete_unreferenced(self, sha256: str) -> None:
        """Remove the bundle of ``sha256`` unless a function or version runs it."""
        async with self._tx.begin() as conn:
            await conn.execute(_DELETE_UNREFERENCED, {"sha": sha256})


@dataclass(frozen=True, slots=True)
class Change:
    """Another server changed ``topic`` (``function``, ``alias``, ``url``, ``token``...) of
    ``key`` (a function name, or empty). ``Change(None, "")`` means anything may have
    changed: the feed was interrupted and notifications may have been missed."""

    topic: str | None
    key: str


OnChange = Callable[[Change], Awaitable[None]]


class ChangeFeed:
    """PostgreSQL LISTEN/NOTIFY between the servers of one database.

    ``publish`` tells the other servers (never this one) after a write has committed;
    ``start`` listens on one dedicated connection and hands each change to ``on_change``,
    in order. On SQLite both do nothing.
    """

    def __init__(self, url: str, engine: AsyncEngine) -> None:
        self.shared = engine.dialect.name == "postgresql"
        self.origin = secrets.token_hex(8)
        self._engine = engine
        self._conninfo = (
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def publish(self, topic: str, key: str = "") -> None:
        """Tell the other servers that ``topic`` of ``key`` changed (after the commit)."""
        if not self.shared:
            return
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.select(sa.func.pg_notify(CHANNEL, f"{self.origin}\t{topic}\t{key}"))
            )

    async def start(self, on_change: OnChange) -> None:
        """Listen for changes (returns once listening)."""
        if not self.shared:
            return
        self._task = asyncio.create_task(self._listen(on_change), name="pyfaas-changes")
        await self._listening.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen(self, on_change: OnChange) -> None:
        first = True
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                async with conn:
                    await conn.execute("LISTEN pyfaas_changes")  # CHANNEL
                    if not first:  # what was sent while nobody listened is lost
                        await _deliver(on_change, Change(None, ""))
                    first = False
                    self._listening.set()
                    async for note in conn.notifies():
                        origin, _, rest = note.payload.partition("\t")
                        if origin != self.origin:
                            topic, _, key = rest.partition("\t")
                            await _deliver(on_change, Change(topic, key))
            except psycopg.Error as exc:
                log.warning("change feed interrupted (%s): reconnecting", exc)
                self._listening.set()  # serving goes on; caches are dropped on reconnect
                first = False
                await asyncio.sleep(RECONNECT_S)


async def _deliver(on_change: OnChange, change: Change) -> None:
    try:
        await on_change(change)
    except PyfaasError as exc:  # e.g. code_unavailable: the next request answers it too
        log.warning("applying a change from another server: %s (%s)", exc.message, exc.code)
    except Exception:  # one failed reload must not stop the feed
        log.exception("applying a change from another server failed: %s", change)
