"""The Store: every query pyfaas makes, over one async engine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from pyfaas.model import (
    FunctionConfig,
    FunctionExists,
    FunctionNotFound,
    FunctionRecord,
    LogQuery,
    LogRecord,
)
from pyfaas.store.access import SecretStore, TokenStore
from pyfaas.store.activity import ActivityStore
from pyfaas.store.engine import Transactions, open_engine
from pyfaas.store.events import EventStore
from pyfaas.store.logs import LogRow, LogStore
from pyfaas.store.rollouts import RolloutStore
from pyfaas.store.schedules import ScheduleStore
from pyfaas.store.shared import ChangeFeed, CodeBlobStore
from pyfaas.store.sources import SourceMappingStore
from pyfaas.store.tables import function_versions, functions, invocation_logs
from pyfaas.store.urls import UrlStore
from pyfaas.store.usage import UsageStore
from pyfaas.store.versions import VersionStore

# Statements are built once; SQLAlchemy then reuses their compiled form from its cache.
_f, _l = functions.c, invocation_logs.c
_INSERT_FUNCTION = functions.insert()
# SET takes every column in the parameters; _update_function leaves created_at out.
_UPDATE_FUNCTION = functions.update().where(_f.name == sa.bindparam("match_name"))
_SELECT_FUNCTION = sa.select(functions).where(_f.name == sa.bindparam("name"))
_LIST_FUNCTIONS = sa.select(functions).order_by(_f.name)
_DELETE_FUNCTION = functions.delete().where(_f.name == sa.bindparam("name"))
_DELETE_LOGS = invocation_logs.delete().where(_l.function == sa.bindparam("name"))
_CODE_REFERENCED = sa.select(sa.literal(1)).where(_f.code_sha256 == sa.bindparam("sha")).limit(1)
# Published versions keep their code too.
_VERSION_CODE_REFERENCED = (
    sa.select(sa.literal(1)).where(function_versions.c.code_sha256 == sa.bindparam("sha")).limit(1)
)


class Store:
    """Persistence of functions and their logs; the only class in pyfaas that speaks SQL.

    Every method is a coroutine on an async driver (never blocks the event loop). Build one
    with :func:`open_store`; close it with :meth:`close`.
    """

    def __init__(self, url: str, engine: AsyncEngine) -> None:
        self.url = url
        self._engine = engine
        self._tx = Transactions(engine)
        self.events = EventStore(engine, self._tx)
        self.urls = UrlStore(engine, self._tx)
        self.schedules = ScheduleStore(engine, self._tx)
        self.usage = UsageStore(engine, self._tx)
        self.logs = LogStore(engine, self._tx)
        self.sources = SourceMappingStore(engine, self._tx)
        self.tokens = TokenStore(engine, self._tx)
        self.secrets = SecretStore(engine, self._tx)
        self.versions = VersionStore(engine, self._tx)
        self.rollouts = RolloutStore(engine, self._tx)
        self.activity = ActivityStore(engine)
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.code_blobs = None if self.is_sqlite else CodeBlobStore(engine, self._tx)
        self.changes = ChangeFeed(url, engine)

    async def close(self) -> None:
        """Close every pooled connection. The store is unusable afterwards."""
        await self.changes.close()
        await asyncio.to_thread(self._tx.close)
        await self._tx.dispose()
        await self._engine.dispose()

    async def create_function(self, record: FunctionRecord) -> None:
        """Insert a new function. Raises FunctionExists if the name is taken.

        The primary key decides, so two racing creates get exactly one winner.
        """
        try:
            async with self._tx.begin() as conn:
                await conn.execute(_INSERT_FUNCTION, _row(record))
        except sa.exc.IntegrityError:
            raise FunctionExists(record.name) from None

    async def put_function(self, record: FunctionRecord) -> bool:
        """Insert or replace a function; True if it was created.

        An existing row keeps its ``created_at``. Two racing puts of a new name are safe:
        the one whose insert loses to the primary key updates instead.
        """
        row = _row(record)
        for _ in range(3):
            if await self._update_function(row):
                return False
            try:
                async with self._tx.begin() as conn:
                    await conn.execute(_INSERT_FUNCTION, row)
                return True
            except sa.exc.IntegrityError:
                continue  # created meanwhile by someone else: update it
        raise FunctionExists(record.name)  # created and deleted under us, three times over

    async def _update_function(self, row: dict[str, Any]) -> bool:
        async with self._tx.begin() as conn:
            changes = {k: v for k, v in row.items() if k != "created_at"}
            result = await conn.execute(_UPDATE_FUNCTION, {**changes, "match_name": row["name"]})
        return bool(result.rowcount)

    async def get_function(self, name: str) -> FunctionRecord:
        """The function called ``name``. Raises FunctionNotFound."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(_SELECT_FUNCTION, {"name": name})).first()
        if row is None:
            raise FunctionNotFound(name)
        return _record(row._mapping)

    async def list_functions(self) -> list[FunctionRecord]:
        """Every function, ordered by name."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_LIST_FUNCTIONS)).all()
        return [_record(r._mapping) for r in rows]

    async def delete_function(self, name: str) -> None:
        """Delete a function and its logs in one transaction. Raises FunctionNotFound."""
        async with self._tx.begin() as conn:
            deleted = await conn.execute(_DELETE_FUNCTION, {"name": name})
            if not deleted.rowcount:
                raise FunctionNotFound(name)  # leaving the block rolls back: nothing changes
            await conn.execute(_DELETE_LOGS, {"name": name})

    async def code_referenced(self, code_sha256: str) -> bool:
        """Whether any function or published version runs this code (code nobody
        references can be collected)."""
        async with self._engine.connect() as conn:
            for statement in (_CODE_REFERENCED, _VERSION_CODE_REFERENCED):
                if (await conn.execute(statement, {"sha": code_sha256})).first() is not None:
                    return True
        return False

    async def append_logs(self, records: Sequence[LogRecord]) -> list[LogRecord]:
        """Store a batch of log records in one statement; return them with their ids.

        Ids are assigned in the order given, so they increase within and across batches.
        """
        return await self.logs.append(records)

    async def append_log_rows(self, rows: Sequence[LogRow]) -> Sequence[int]:
        """Store a batch of LogRow tuples (store.logs: log_row, invocation_row) in one
        statement; return their ids, in the order given (increasing, like
        :meth:`append_logs`)."""
        return await self.logs.append_rows(rows)

    async def query_logs(
        self,
        function: str,
        *,
        request_id: str | None = None,
        after_id: int = 0,
        limit: int = 1000,
        tail: bool = False,
    ) -> list[LogRecord]:
        """Log records of ``function`` with ids above ``after_id``, in ascending id order.

        At most ``limit`` records: the first ones, or with ``tail`` the last ones (still
        ascending). Polling with ``after_id`` = the last id seen follows a log.
        """
        return await self.logs.search(
            LogQuery(function, request_id=request_id, after_id=after_id, limit=limit, tail=tail)
        )


async def open_store(url: str) -> Store:
    """Migrate the database at ``url`` to the newest schema, then open it for serving.

    ``url`` is ``sqlite:////abs/path/pyfaas.db`` or ``postgresql+psycopg://user@host/db``.
    Raises ConfigurationError for another scheme or an unreachable database.
    """
    return Store(url, await open_engine(url))


def _row(record: FunctionRecord) -> dict[str, Any]:
    cfg = record.config
    return {
        "name": cfg.name,
        "handler": cfg.handler,
        "runtime": cfg.runtime,
        "memory_mb": cfg.memory_mb,
        "timeout_s": cfg.timeout_s,
        "environment": json.dumps(cfg.environment, sort_keys=True),
        "description": cfg.description,
        "code_sha256": record.code_sha256,
        "code_size": record.code_size,
        "layer_sha256": record.layer_sha256,
        "version": record.version,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "reserved_concurrency": cfg.reserved_concurrency,
        "provisioned_concurrency": cfg.provisioned_concurrency,
        "concurrency_per_worker": cfg.concurrency_per_worker,
        "idle_timeout_s": cfg.idle_timeout_s,
        "maximum_retry_attempts": cfg.maximum_retry_attempts,
        "maximum_event_age_s": cfg.maximum_event_age_s,
        "on_success": cfg.on_success,
        "on_failure": cfg.on_failure,
        "wsgi": cfg.wsgi,
        "asgi": cfg.asgi,
        "price_plan": cfg.price_plan,
        "secrets": json.dumps(cfg.secrets, sort_keys=True),
        "ephemeral_storage_mb": cfg.ephemeral_storage_mb,
        "network": cfg.network,
        "gpus": cfg.gpus,
    }


def _record(row: sa.RowMapping) -> FunctionRecord:
    return FunctionRecord(
        config=FunctionConfig(
            name=row["name"],
            handler=row["handler"],
            runtime=row["runtime"],
            memory_mb=row["memory_mb"],
            timeout_s=row["timeout_s"],
            environment=json.loads(row["environment"]),
            description=row["description"],
            reserved_concurrency=row["reserved_concurrency"],
            provisioned_concurrency=row["provisioned_concurrency"],
            concurrency_per_worker=row["concurrency_per_worker"],
            idle_timeout_s=row["idle_timeout_s"],
            maximum_retry_attempts=row["maximum_retry_attempts"],
            maximum_event_age_s=row["maximum_event_age_s"],
            on_success=row["on_success"],
            on_failure=row["on_failure"],
            wsgi=row["wsgi"],
            asgi=row["asgi"],
            price_plan=row["price_plan"],
            secrets=json.loads(row["secrets"]),
            ephemeral_storage_mb=row["ephemeral_storage_mb"],
            network=row["network"],
            gpus=row["gpus"],
        ),
        code_sha256=row["code_sha256"],
        code_size=row["code_size"],
        layer_sha256=row["layer_sha256"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
