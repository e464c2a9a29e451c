"""Published versions and aliases: publish, list, delete; aliases set, read and removed."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from pyfaas.model import FunctionConfig, FunctionNotFound, FunctionRecord
from pyfaas.model.versions import (
    Alias,
    AliasNotFound,
    PublishedVersion,
    VersionNotFound,
    alias_exists,
    version_in_use,
)
from pyfaas.store.engine import Transactions
from pyfaas.store.tables import function_aliases, function_urls, function_versions, functions

_v, _a, _f = function_versions.c, function_aliases.c, functions.c
_NEXT_NUMBER = (
    functions.update()
    .where(_f.name == sa.bindparam("function"))
    .values(last_version=_f.last_version + 1)
    .returning(_f.last_version)
)
_LIST_VERSIONS = (
    sa.select(function_versions).where(_v.function == sa.bindparam("function")).order_by(_v.version)
)
_NEWEST_VERSION = _LIST_VERSIONS.order_by(None).order_by(_v.version.desc()).limit(1)
_GET_VERSION = sa.select(function_versions).where(
    _v.function == sa.bindparam("function"), _v.version == sa.bindparam("version")
)
_LIST_ALIASES = (
    sa.select(function_aliases).where(_a.function == sa.bindparam("function")).order_by(_a.name)
)
_GET_ALIAS = sa.select(function_aliases).where(
    _a.function == sa.bindparam("function"), _a.name == sa.bindparam("name")
)
_PROVISIONED = sa.select(function_aliases).where(_a.provisioned_concurrency > 0)
_USERS = sa.select(_a.name).where(
    _a.function == sa.bindparam("function"),
    sa.or_(_a.version == sa.bindparam("version"), _a.additional_version == sa.bindparam("version")),
)
_FUNCTION_EXISTS = sa.select(sa.literal(1)).where(_f.name == sa.bindparam("name"))


class VersionStore:
    """Queries on function_versions and function_aliases. Coroutines; none blocks."""

    def __init__(self, engine: AsyncEngine, transactions: Transactions) -> None:
        self._engine = engine
        self._tx = transactions

    async def publish(
        self, record: FunctionRecord, description: str, now: float
    ) -> PublishedVersion:
        """Store ``record`` (a function's $LATEST) as its next version number.

        Raises FunctionNotFound (deleted meanwhile).
        """
        async with self._tx.begin() as conn:
            number = (await conn.execute(_NEXT_NUMBER, {"function": record.name})).scalar()
            if number is None:
                raise FunctionNotFound(record.name)
            version = PublishedVersion(
                function=record.name,
                version=number,
                config=record.config,
                code_sha256=record.code_sha256,
                code_size=record.code_size,
                layer_sha256=record.layer_sha256,
                description=description,
                created_at=now,
            )
            await conn.execute(function_versions.insert(), _version_row(version))
        return version

    async def newest(self, function: str) -> PublishedVersion | None:
        """The highest-numbered version of ``function`` that still exists."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(_NEWEST_VERSION, {"function": function})).first()
        return None if row is None else _version(row._mapping)

    async def list_versions(self, function: str) -> list[PublishedVersion]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_LIST_VERSIONS, {"function": function})).all()
        return [_version(r._mapping) for r in rows]

    async def get_version(self, function: str, version: int) -> PublishedVersion:
        """Raises VersionNotFound."""
        async with self._engine.connect() as conn:
            params = {"function": function, "version": version}
            row = (await conn.execute(_GET_VERSION, params)).first()
        if row is None:
            raise VersionNotFound(function, version)
        return _version(row._mapping)

    async def delete_version(self, function: str, version: int) -> PublishedVersion:
        """Delete a version and the URL of that qualifier; return what was deleted.

        Raises VersionNotFound, Conflict (version_in_use) when an alias points to it.
        """
        params = {"function": function, "version": version}
        try:
            async with self._tx.begin() as conn:
                row = (await conn.execute(_GET_VERSION, params)).first()
                if row is None:
                    raise VersionNotFound(function, version)
                users = list((await conn.execute(_USERS, params)).scalars())
                if users:
                    raise version_in_use(function, version, users)
                await conn.execute(
                    function_versions.delete().where(_v.function == function, _v.version == version)
                )
                await conn.execute(_delete_urls(function, str(version)))
        except sa.exc.IntegrityError:  # an alias took it between the check and the delete
            raise version_in_use(function, version, ["(one set just now)"]) from None
        return _version(row._mapping)

    async def code_of(self, function: str) -> set[str]:
        """The code hashes ``function`` uses, in $LATEST and every version."""
        async with self._engine.connect() as conn:
            latest = await conn.execute(sa.select(_f.code_sha256).where(_f.name == function))
            versions = await conn.execute(
                sa.select(_v.code_sha256).where(_v.function == function).distinct()
            )
            return set(latest.scalars()) | set(versions.scalars())

    # --- aliases -------------------------------------------------------------------------

    async def put_alias(self, alias: Alias, *, create: bool | None) -> Alias:
        """Create or replace ``alias`` (``create``: True only create, False only replace,
        None either). Its ``created_at`` is kept on replace; returns what is stored.

        Raises FunctionNotFound, VersionNotFound (a version it names does not exist),
        AliasNotFound (``create`` False and no such alias).
        """
        row = _alias_row(alias)
        try:
            async with self._tx.begin() as conn:
                if (await conn.execute(_FUNCTION_EXISTS, {"name": alias.function})).first() is None:
                    raise FunctionNotFound(alias.function)
                for number in alias.versions:
                    params = {"function": alias.function, "version": number}
                    if (await conn.execute(_GET_VERSION, params)).first() is None:
                        raise VersionNotFound(alias.function, number)
                key = {"function": alias.function, "name": alias.name}
                found = (await conn.execute(_GET_ALIAS, key)).first()
                if found is None:
                    if create is False:
                        raise AliasNotFound(alias.function, alias.name)
                    await conn.execute(function_aliases.insert(), row)
                elif create is True:
                    raise alias_exists(alias.function, alias.name)
                else:
                    row["created_at"] = found._mapping["created_at"]
                    changes = {k: v for k, v in row.items() if k not in ("function", "name")}
                    await conn.execute(
                        function_aliases.update()
                        .where(_a.function == alias.function, _a.name == alias.name)
                        .values(**changes)
                    )
        except sa.exc.IntegrityError:
            # A version deleted, or the alias created, between the checks and the write.
            raise VersionNotFound(alias.function, alias.version) from None
        return _alias(row)

    async def get_alias(self, function: str, name: str) -> Alias:
        """Raises AliasNotFound."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(_GET_ALIAS, {"function": function, "name": name})).first()
        if row is None:
            raise AliasNotFound(function, name)
        return _alias(row._mapping)

    async def list_aliases(self, function: str) -> list[Alias]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_LIST_ALIASES, {"function": function})).all()
        return [_alias(r._mapping) for r in rows]

    async def provisioned_aliases(self) -> list[Alias]:
        """Every alias that keeps workers ready (for a server starting)."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_PROVISIONED)).all()
        return [_alias(r._mapping) for r in rows]

    async def delete_alias(self, function: str, name: str) -> Alias:
        """Delete the alias and its function URL; return it. Raises AliasNotFound."""
        async with self._tx.begin() as conn:
            row = (await conn.execute(_GET_ALIAS, {"function": function, "name": name})).first()
            if row is None:
                raise AliasNotFound(function, name)
            await conn.execute(
                function_aliases.delete().where(_a.function == function, _a.name == name)
            )
            await conn.execute(_delete_urls(function, name))
        return _alias(row._mapping)


def _delete_urls(function: str, qualifier: str) -> sa.Delete:
    u = function_urls.c
    return function_urls.delete().where(u.function == function, u.qualifier == qualifier)


def _version_row(v: PublishedVersion) -> dict[str, Any]:
    return {
        "function": v.function,
        "version": v.version,
        "config": json.dumps(v.config.to_dict(), sort_keys=True),
        "code_sha256": v.code_sha256,
        "code_size": v.code_size,
        "layer_sha256": v.layer_sha256,
        "description": v.description,
        "created_at": v.created_at,
    }


def _version(row: sa.RowMapping) -> PublishedVersion:
    return PublishedVersion(
        function=row["function"],
        version=row["version"],
        config=FunctionConfig(**json.loads(row["config"])),
        code_sha256=row["code_sha256"],
        code_size=row["code_size"],
        layer_sha256=row["layer_sha256"],
        description=row["description"],
        created_at=row["created_at"],
    )


def _alias_row(alias: Alias) -> dict[str, Any]:
    return {
        "function": alias.function,
        "name": alias.name,
        "version": alias.version,
        "additional_version": alias.additional_version,
        "additional_weight": alias.additional_weight,
        "description": alias.description,
        "provisioned_concurrency": alias.provisioned_concurrency,
        "created_at": alias.created_at,
        "updated_at": alias.updated_at,
    }


def _alias(row: Any) -> Alias:
    return Alias(
        function=row["function"],
        name=row["name"],
        version=row["version"],
        additional_version=row["additional_version"],
        additional_weight=row["additional_weight"],
        description=row["description"],
        provisioned_concurrency=row["provisioned_concurrency"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
