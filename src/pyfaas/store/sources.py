"""Event source mappings in the store, and dead-lettering the batches they could not deliver."""

from __future__ import annotations

from dataclasses import asdict, fields

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from pyfaas.model import NotFound
from pyfaas.model.events import DEAD
from pyfaas.model.sources import EventSourceMapping
from pyfaas.store.engine import Transactions
from pyfaas.store.tables import async_events, event_source_mappings

_m = event_source_mappings.c
_COLUMNS = [f.name for f in fields(EventSourceMapping)]
_SELECT = sa.select(event_source_mappings)


def mapping_not_found(uuid: str) -> NotFound:
    return NotFound(
        f"no event source mapping has uuid {uuid!r}; `pyfaas sources ls` lists them",
        code="event_source_mapping_not_found",
    )


class SourceMappingStore:
    """Queries on event_source_mappings; every method is a coroutine and none blocks."""

    def __init__(self, engine: AsyncEngine, transactions: Transactions) -> None:
        self._engine = engine
        self._tx = transactions
        dialect = sqlite if engine.dialect.name == "sqlite" else postgresql
        self._dead_insert = dialect.insert(async_events).on_conflict_do_nothing()

    async def create(self, mapping: EventSourceMapping) -> None:
        async with self._tx.begin() as conn:
            await conn.execute(event_source_mappings.insert(), asdict(mapping))

    async def get(self, uuid: str) -> EventSourceMapping:
        """Raises NotFound (event_source_mapping_not_found)."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(_SELECT.where(_m.uuid == uuid))).first()
        if row is None:
            raise mapping_not_found(uuid)
        return _mapping(row._mapping)

    async def list(self, function: str | None = None) -> list[EventSourceMapping]:
        """Every mapping (of ``function``), oldest first."""
        query = _SELECT.order_by(_m.created_at, _m.uuid)
        if function is not None:
            query = query.where(_m.function == function)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_mapping(r._mapping) for r in rows]

    async def update(self, mapping: EventSourceMapping) -> None:
        """Write every field of ``mapping``. Raises NotFound if it was deleted meanwhile."""
        values = {k: v for k, v in asdict(mapping).items() if k not in ("uuid", "created_at")}
        async with self._tx.begin() as conn:
            result = await conn.execute(
                event_source_mappings.update().where(_m.uuid == mapping.uuid).values(values)
            )
        if not result.rowcount:
            raise mapping_not_found(mapping.uuid)

    async def delete(self, uuid: str) -> None:
        """Raises NotFound (event_source_mapping_not_found)."""
        async with self._tx.begin() as conn:
            result = await conn.execute(event_source_mappings.delete().where(_m.uuid == uuid))
        if not result.rowcount:
            raise mapping_not_found(uuid)

    async def dead_letter(
        self,
        *,
        request_id: str,
        function: str,
        payload: bytes,
        key: str,
        attempts: int,
        last_error: str,
        now: float,
    ) -> None:
        """Put a batch that failed for good into the dead-letter queue as a dead async event
        of ``function`` (so `pyfaas dlq redrive` runs it again). ``key`` (the mapping and
        the batch's message ids) makes a batch delivered twice land there once."""
        row = {
            "request_id": request_id,
            "function": function,
            "payload": payload,
            "status": DEAD,
            "attempts": attempts,
            "failures": attempts,
            "enqueued_at": now,
            "updated_at": now,
            "next_attempt_at": now,
            "idempotency_key": key,
            "last_error": last_error,
            "condition": "RetriesExhausted",
        }
        async with self._tx.begin() as conn:
            await conn.execute(self._dead_insert, row)


def _mapping(row: sa.RowMapping) -> EventSourceMapping:
    values = {name: row[name] for name in _COLUMNS}
    values["enabled"] = bool(values["enabled"])
    values["report_batch_item_failures"] = bool(values["report_batch_item_failures"])
    return EventSourceMapping(**values)
