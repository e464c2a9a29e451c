"""Function URL configurations: create, list per function, update, delete."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from pyfaas.model import Conflict, FunctionNotFound
from pyfaas.model.urls import CorsConfig, FunctionUrlConfig
from pyfaas.store.engine import Transactions
from pyfaas.store.tables import function_urls, functions

_u = function_urls.c
_FUNCTION_EXISTS = sa.select(sa.literal(1)).where(functions.c.name == sa.bindparam("name"))
_LIST = (
    sa.select(function_urls)
    .where(_u.function == sa.bindparam("function"))
    .order_by(_u.qualifier.is_not(None), _u.qualifier)
)


def _match(function: str, qualifier: str | None) -> sa.ColumnElement[bool]:
    if qualifier is None:
        return sa.and_(_u.function == function, _u.qualifier.is_(None))
    return sa.and_(_u.function == function, _u.qualifier == qualifier)


class UrlStore:
    """Queries on the function_urls table. Every method is a coroutine; none blocks."""

    def __init__(self, engine: AsyncEngine, transactions: Transactions) -> None:
        self._engine = engine
        self._tx = transactions

    async def create(self, config: FunctionUrlConfig) -> None:
        """Store a new URL configuration.

        Raises FunctionNotFound, and Conflict (code function_url_exists) when the function
        (and qualifier) has a URL already: the unique indexes decide, so two racing
        creates get exactly one winner.
        """
        try:
            async with self._tx.begin() as conn:
                found = await conn.execute(_FUNCTION_EXISTS, {"name": config.function})
                if found.first() is None:
                    raise FunctionNotFound(config.function)
                await conn.execute(function_urls.insert(), _row(config))
        except sa.exc.IntegrityError:
            raise Conflict(
                f"function {config.function!r} has a URL already; change it with "
                f"PATCH /v1/functions/{config.function}/url (`pyfaas url update`)",
                code="function_url_exists",
            ) from None

    async def list_for(self, function: str) -> list[FunctionUrlConfig]:
        """The URL configurations of ``function``, the unqualified one first."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_LIST, {"function": function})).all()
        return [_config(r._mapping) for r in rows]

    async def update(
        self, function: str, qualifier: str | None, values: dict[str, Any]
    ) -> FunctionUrlConfig | None:
        """Change ``values`` (auth_type, cors, updated_at); None if there is no such URL."""
        row = dict(values)
        if "cors" in row:
            row["cors"] = _cors_json(row["cors"])
        statement = (
            function_urls.update()
            .where(_match(function, qualifier))
            .values(**row)
            .returning(*function_urls.c)
        )
        async with self._tx.begin() as conn:
            updated = (await conn.execute(statement)).first()
        return _config(updated._mapping) if updated is not None else None

    async def delete(self, function: str, qualifier: str | None) -> bool:
        """Remove the URL; False if there was none."""
        async with self._tx.begin() as conn:
            result = await conn.execute(function_urls.delete().where(_match(function, qualifier)))
        return bool(result.rowcount)


def _cors_json(cors: CorsConfig | None) -> str | None:
    return json.dumps(cors.to_dict(), sort_keys=True) if cors is not None else None


def _row(config: FunctionUrlConfig) -> dict[str, Any]:
    return {
        "function": config.function,
        "qualifier": config.qualifier,
        "url_id": config.url_id,
        "auth_type": config.auth_type,
        "cors": _cors_json(config.cors),
        "created_at": config.created_at,
        "updated_at": config.updated_at,
    }


def _config(row: sa.RowMapping) -> FunctionUrlConfig:
    cors = row["cors"]
    return FunctionUrlConfig(
        function=row["function"],
        qualifier=row["qualifier"],
        url_id=row["url_id"],
        auth_type=row["auth_type"],
        cors=CorsConfig.from_dict(json.loads(cors)) if cors is not None else None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
