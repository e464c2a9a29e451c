"""The Store: every query pyfaas makes, over one async engine."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from pyfaas.model import FunctionConfig, FunctionExists, FunctionNotFound, FunctionRecord, LogRecord
from pyfaas.store.engine import open_engine
from pyfaas.store.tables import functions, invocation_logs

_SELECT_FUNCTION = sa.select(functions).where(functions.c.name == sa.bindparam("name"))
_LIST_FUNCTIONS = sa.select(functions).order_by(functions.c.name)


class Store:
    """Persistence of functions and logs. Every method is a coroutine on an async driver."""

    def __init__(self, url: str, engine: AsyncEngine) -> None:
        self.url = url
        self._engine = engine

    async def close(self) -> None:
        await self._engine.dispose()

    async def create_function(self, record: FunctionRecord) -> None:
        """Insert a new function; raises FunctionExists if the name is taken."""
        try:
            async with self._engine.begin() as conn:
                await conn.execute(functions.insert().values(_row(record)))
        except sa.exc.IntegrityError:
            raise FunctionExists(record.name) from None

    async def put_function(self, record: FunctionRecord) -> bool:
        """Insert or replace a function, keeping its created_at; True if it was created."""
        row = _row(record)
        async with self._engine.begin() as conn:
            updated = await conn.execute(
                functions.update()
                .where(functions.c.name == record.name)
                .values({k: v for k, v in row.items() if k not in ("name", "created_at")})
            )
            if updated.rowcount:
                return False
            await conn.execute(functions.insert().values(row))
            return True

    async def get_function(self, name: str) -> FunctionRecord:
        """Raises FunctionNotFound."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(_SELECT_FUNCTION, {"name": name})).first()
        if row is None:
            raise FunctionNotFound(name)
        return _record(row._mapping)

    async def list_functions(self) -> list[FunctionRecord]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_LIST_FUNCTIONS)).all()
        return [_record(r._mapping) for r in rows]

    async def delete_function(self, name: str) -> None:
        """Delete a function and its logs in one transaction; raises FunctionNotFound."""
        async with self._engine.begin() as conn:
            deleted = await conn.execute(functions.delete().where(functions.c.name == name))
            if not deleted.rowcount:
                raise FunctionNotFound(name)
            await conn.execute(invocation_logs.delete().where(invocation_logs.c.function == name))

    async def code_referenced(self, code_sha256: str) -> bool:
        """Whether any function runs this code (blobs nobody references can be collected)."""
        query = sa.select(sa.literal(1)).where(functions.c.code_sha256 == code_sha256).limit(1)
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).first() is not None

    async def append_logs(self, records: Sequence[LogRecord]) -> None:
        """Store a batch of log records with one executemany."""
        if not records:
            return
        rows = [
            {
                "function": r.function,
                "request_id": r.request_id,
                "timestamp": r.timestamp,
                "text": r.text,
            }
            for r in records
        ]
        async with self._engine.begin() as conn:
            await conn.execute(invocation_logs.insert(), rows)

    async def query_logs(
        self,
        function: str,
        *,
        request_id: str | None = None,
        after_id: int = 0,
        limit: int = 1000,
        tail: bool = False,
    ) -> list[LogRecord]:
        """Records of ``function`` in id order; ``tail`` takes the last ``limit`` of them."""
        t = invocation_logs
        query = sa.select(t).where(t.c.function == function, t.c.id > after_id)
        if request_id is not None:
            query = query.where(t.c.request_id == request_id)
        query = query.order_by(t.c.id.desc() if tail else t.c.id).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        records = [
            LogRecord(
                function=r.function,
                request_id=r.request_id,
                timestamp=r.timestamp,
                text=r.text,
                id=r.id,
            )
            for r in rows
        ]
        return records[::-1] if tail else records


async def open_store(url: str) -> Store:
    """Open (and migrate) the database at ``url``. Raises ConfigurationError."""
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
    }


def _record(row: Any) -> FunctionRecord:
    return FunctionRecord(
        config=FunctionConfig(
            name=row["name"],
            handler=row["handler"],
            runtime=row["runtime"],
            memory_mb=row["memory_mb"],
            timeout_s=row["timeout_s"],
            environment=json.loads(row["environment"]),
            description=row["description"],
        ),
        code_sha256=row["code_sha256"],
        code_size=row["code_size"],
        layer_sha256=row["layer_sha256"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
