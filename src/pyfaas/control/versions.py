"""Versions and aliases: publishing, routing ``name:3`` / ``name:live`` to a runnable version,
weighted aliases, their provisioned workers, and collecting the code nobody runs any more."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from typing import Any

from pyfaas.control.functions import FunctionService
from pyfaas.model import (
    LATEST,
    FunctionRecord,
    FunctionVersion,
    InvalidRequest,
    Limits,
)
from pyfaas.model.versions import (
    Alias,
    AliasNotFound,
    PublishedVersion,
    VersionNotFound,
    build_alias,
    check_alias_name,
    check_qualifier,
    parse_description,
    parse_version,
    split_qualifier,
)
from pyfaas.scaling import Scaler
from pyfaas.store.shared import ChangeFeed
from pyfaas.store.versions import VersionStore

log = logging.getLogger("pyfaas.control")

# How long a server trusts the aliases it read (servers sharing a PostgreSQL may change
# them); changes made through this server are seen at once.
ALIAS_TTL_S = 1.0


@dataclass
class _Known:
    """What a server knows of one function's versions and aliases, valid while its $LATEST
    is ``latest`` (a redeployed, or deleted and recreated, function is read again)."""

    latest: FunctionVersion
    loaded_at: float = -1e9
    aliases: dict[str, Alias] = field(default_factory=dict)
    versions: dict[int, FunctionVersion] = field(default_factory=dict)


class VersionService:
    """Publishes versions, keeps aliases, and resolves qualified names for every caller
    that runs a function (invoke, async events, function URLs).

    ``resolve("name")`` is FunctionService.resolve itself (the hot path is unchanged);
    ``resolve("name:3")`` and ``resolve("name:live")`` read the store once, then memory.
    """

    def __init__(
        self,
        store: VersionStore,
        functions: FunctionService,
        scaler: Scaler,
        limits: Limits,
        *,
        changes: ChangeFeed | None = None,
    ) -> None:
        self._store = store
        self._changes = changes  # other servers forget what they know of a changed function
        self._functions = functions
        self._scaler = scaler
        self._limits = limits
        self._known: dict[str, _Known] = {}
        # Publishes of one function take turns: racing ones of unchanged code make one version.
        self._publishing: dict[str, asyncio.Lock] = {}
        self._warming: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start the provisioned workers of every alias that asks for them (background)."""
        by_function: dict[str, set[int]] = {}
        for alias in await self._store.provisioned_aliases():
            by_function.setdefault(alias.function, set()).update(alias.versions)
        for name, numbers in by_function.items():
            task = asyncio.create_task(self._apply(name, numbers))
            self._warming.add(task)
            task.add_done_callback(self._warmed)

    def _warmed(self, task: asyncio.Task[None]) -> None:
        self._warming.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("provisioned workers of an alias did not start: %s", task.exception())

    def forget(self, name: str | None = None) -> None:
        """Another server changed the versions or aliases of ``name`` (None: of any
        function): read them again when next needed."""
        if name is None:
            self._known.clear()
        else:
            self._known.pop(name, None)

    async def _changed(self, name: str) -> None:
        self._known.pop(name, None)
        if self._changes is not None:
            await self._changes.publish("alias", name)

    # --- resolving ---------------------------------------------------------------------------

    def resolve(self, name: str) -> Awaitable[FunctionVersion]:
        """The version ``name`` (``fn``, ``fn:$LATEST``, ``fn:3``, ``fn:alias``) runs now; for
        a weighted alias, drawn by its weights. Raises FunctionNotFound, VersionNotFound,
        AliasNotFound, InvalidRequest (invalid_qualifier)."""
        if ":" not in name:
            return self._functions.resolve(name)
        return self._resolve_qualified(name)

    async def _resolve_qualified(self, name: str) -> FunctionVersion:
        base, qualifier = split_qualifier(name)
        if qualifier is None:
            return await self._functions.resolve(base)
        target = check_qualifier(qualifier)
        known = await self._known_for(base)
        if isinstance(target, str):
            alias = known.aliases.get(target)
            if alias is None:
                raise AliasNotFound(base, target)
            target = alias.pick(random.random())
        return await self._version(known, base, target)

    async def _known_for(self, name: str) -> _Known:
        latest = await self._functions.resolve(name)
        known = self._known.get(name)
        if known is None or known.latest is not latest:
            known = self._known[name] = _Known(latest)
        now = time.monotonic()
        if now - known.loaded_at > ALIAS_TTL_S:
            aliases = {a.name: a for a in await self._store.list_aliases(name)}
            if aliases != known.aliases:
                known.versions.clear()  # their provisioned shares may have changed
            known.aliases, known.loaded_at = aliases, now
        return known

    async def _version(self, known: _Known, name: str, number: int) -> FunctionVersion:
        fv = known.versions.get(number)
        if fv is None:
            published = await self._store.get_version(name, number)
            provisioned = sum(a.provisioned_for(number) for a in known.aliases.values())
            fv = known.versions[number] = replace(
                await self._functions.runnable(published.as_record()),
                # The function's reservation holds for all its versions together.
                reserved_concurrency=known.latest.reserved_concurrency,
                provisioned_concurrency=provisioned,
            )
        return fv

    # --- versions ----------------------------------------------------------------------------

    async def publish(self, name: str, description: object = None) -> tuple[PublishedVersion, bool]:
        """Snapshot ``name``'s $LATEST as a new version; (version, created). When nothing
        changed since the newest version, that one is returned (created False), as Lambda
        does. Raises FunctionNotFound, InvalidRequest (invalid_description)."""
        text = None if description is None else parse_description(description)
        async with self._publishing.setdefault(name, asyncio.Lock()):
            record = await self._functions.get(name)
            newest = await self._store.newest(name)
            if newest is not None and _same(newest, record):
                return newest, False
            if text is None:
                text = record.config.description
            return await self._store.publish(record, text, time.time()), True

    async def list_versions(self, name: str) -> list[PublishedVersion]:
        """Raises FunctionNotFound."""
        await self._functions.get(name)
        return await self._store.list_versions(name)

    async def get_version(self, name: str, version: str) -> PublishedVersion:
        """Raises FunctionNotFound, VersionNotFound, InvalidRequest (invalid_version)."""
        number = parse_version(version)
        await self._functions.get(name)
        return await self._store.get_version(name, number)

    async def delete_version(self, name: str, version: str) -> None:
        """Delete a published version, its workers, its URL, and its code if nothing else
        runs it. Raises FunctionNotFound, VersionNotFound, Conflict (version_in_use),
        InvalidRequest (invalid_version: $LATEST or not a number)."""
        if version == LATEST:
            raise InvalidRequest(
                f"$LATEST is the function itself: delete it with DELETE /v1/functions/{name} "
                f"(`pyfaas rm {name}`)",
                code="invalid_version",
            )
        number = parse_version(version)
        await self._functions.get(name)
        deleted = await self._store.delete_version(name, number)
        await self._changed(name)
        await self._scaler.retire_version(name, str(number))
        await self._functions.collect_code({deleted.code_sha256})

    # --- aliases -----------------------------------------------------------------------------

    async def put_alias(self, name: str, alias_name: str, fields: dict[str, Any]) -> Alias:
        """Create or replace the alias (all fields; ``version`` required). Its provisioned
        workers are started before this returns. Raises FunctionNotFound, VersionNotFound,
        InvalidRequest (invalid_alias_name, invalid_version, invalid_routing,
        invalid_description, invalid_concurrency, unknown_field)."""
        check_alias_name(alias_name)
        return await self._write_alias(name, build_alias(name, alias_name, fields, None), None)

    async def create_alias(self, name: str, alias_name: str, fields: dict[str, Any]) -> Alias:
        """Create the alias (as :meth:`put_alias`), refusing to replace one. Raises as
        :meth:`put_alias`, and Conflict (alias_exists)."""
        check_alias_name(alias_name)
        return await self._write_alias(name, build_alias(name, alias_name, fields, None), True)

    async def patch_alias(self, name: str, alias_name: str, fields: dict[str, Any]) -> Alias:
        """Change some fields of an existing alias (``additional_version_weights: {}`` ends
        a canary). Raises as :meth:`put_alias`, and AliasNotFound."""
        check_alias_name(alias_name)
        await self._functions.get(name)
        base = await self._store.get_alias(name, alias_name)
        return await self._write_alias(name, build_alias(name, alias_name, fields, base), False)

    async def _write_alias(self, name: str, alias: Alias, create: bool | None) -> Alias:
        latest = await self._functions.resolve(name)
        limit = latest.reserved_concurrency
        if limit is None:
            limit = self._limits.max_concurrency
        if alias.provisioned_concurrency > limit:
            raise InvalidRequest(
                f"provisioned_concurrency {alias.provisioned_concurrency} is more than "
                f"{name!r} may run at once ({limit}: its reserved concurrency, or the "
                "server's max_concurrency)",
                code="invalid_concurrency",
            )
        now = time.time()
        before = await self._find_alias(name, alias.name)
        stored = await self._store.put_alias(
            replace(alias, created_at=now, updated_at=now), create=create
        )
        affected = set(stored.versions) | (set(before.versions) if before else set())
        await self._apply(name, affected)
        return stored

    async def _find_alias(self, name: str, alias_name: str) -> Alias | None:
        try:
            return await self._store.get_alias(name, alias_name)
        except AliasNotFound:
            return None

    async def get_alias(self, name: str, alias_name: str) -> Alias:
        """Raises FunctionNotFound, AliasNotFound, InvalidRequest (invalid_alias_name)."""
        check_alias_name(alias_name)
        await self._functions.get(name)
        return await self._store.get_alias(name, alias_name)

    async def list_aliases(self, name: str) -> list[Alias]:
        """Raises FunctionNotFound."""
        await self._functions.get(name)
        return await self._store.list_aliases(name)

    async def delete_alias(self, name: str, alias_name: str) -> None:
        """Delete the alias and its URL; its versions' provisioned workers may then go.
        Raises FunctionNotFound, AliasNotFound, InvalidRequest (invalid_alias_name)."""
        check_alias_name(alias_name)
        await self._functions.get(name)
        deleted = await self._store.delete_alias(name, alias_name)
        await self._apply(name, set(deleted.versions))

    async def _apply(self, name: str, numbers: set[int]) -> None:
        """Re-read ``name``'s aliases and give each version in ``numbers`` its provisioned
        share now (starting workers, or letting them scale to zero)."""
        await self._changed(name)
        known = await self._known_for(name)
        for number in sorted(numbers):
            try:
                fv = await self._version(known, name, number)
            except VersionNotFound:
                continue
            await self._scaler.warm(fv)

    # --- function URLs -----------------------------------------------------------------------

    async def check_target(self, name: str, qualifier: str) -> None:
        """Raise VersionNotFound / AliasNotFound unless ``qualifier`` (already checked for
        syntax) names a version or alias of ``name``."""
        target = check_qualifier(qualifier)
        if isinstance(target, int):
            await self._store.get_version(name, target)
        else:
            await self._store.get_alias(name, target)


def _same(version: PublishedVersion, record: FunctionRecord) -> bool:
    """The version holds exactly $LATEST's code and configuration: publishing adds nothing."""
    return (version.config, version.code_sha256, version.layer_sha256) == (
        record.config,
        record.code_sha256,
        record.layer_sha256,
    )
