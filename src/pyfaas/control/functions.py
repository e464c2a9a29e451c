"""Deploying, listing and deleting functions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyfaas.executor import ExecutorBackend
from pyfaas.model import (
    LATEST,
    FunctionConfig,
    FunctionExists,
    FunctionNotFound,
    FunctionRecord,
    FunctionVersion,
    Limits,
)
from pyfaas.packaging import Bundle, CodeStore
from pyfaas.store import Store


@dataclass(frozen=True, slots=True)
class DeployOutcome:
    """What a deploy did: ``created`` a new function, or updated one (``changed`` or not)."""

    record: FunctionRecord
    created: bool
    changed: bool
    init_duration_ms: float | None


class FunctionService:
    """Deploys functions and resolves names to runnable versions.

    A deploy validates everything before anything is written: the config, the bundle, the
    requirements layer, and the handler (imported in a real worker). Resolved versions are
    cached in memory so that an invoke does not touch the database.
    """

    def __init__(
        self,
        store: Store,
        code: CodeStore,
        executor: ExecutorBackend,
        limits: Limits,
        *,
        region: str = "us-east-1",
        account_id: str = "000000000000",
    ) -> None:
        self._store = store
        self._code = code
        self._executor = executor
        self._limits = limits
        self._region = region
        self._account_id = account_id
        self._resolved: dict[str, FunctionVersion] = {}
        # Deploys and deletes of one name are serialised; different names go in parallel.
        self._locks: dict[str, asyncio.Lock] = {}
        # Deploys holding each stored code, so a failing one never removes another's code.
        self._in_flight: dict[str, int] = {}

    async def deploy(
        self,
        config: FunctionConfig,
        zip_path: Path,
        *,
        create_only: bool = False,
        on_output: Callable[[str], None] | None = None,
    ) -> DeployOutcome:
        """Create or update a function from a zip bundle.

        Raises InvalidFunctionConfig, InvalidBundle, PayloadTooLarge (nothing is written),
        and FunctionExists when ``create_only`` and the name is taken.
        """
        config.validate(self._limits)
        async with self._lock(config.name):
            existing = await self._find(config.name)
            if create_only and existing is not None:
                raise FunctionExists(config.name)
            bundle = await self._code.ingest_zip(zip_path)
            self._in_flight[bundle.sha256] = self._in_flight.get(bundle.sha256, 0) + 1
            try:
                return await self._deploy_bundle(config, bundle, existing, create_only, on_output)
            except BaseException:
                await self._forget(bundle)
                raise
            finally:
                self._release(bundle.sha256)

    async def _deploy_bundle(
        self,
        config: FunctionConfig,
        bundle: Bundle,
        existing: FunctionRecord | None,
        create_only: bool,
        on_output: Callable[[str], None] | None,
    ) -> DeployOutcome:
        layer = None
        if bundle.requirements:
            layer = await self._code.ensure_layer(bundle.requirements, on_output)
        now = time.time()
        record = FunctionRecord(
            config=config,
            code_sha256=bundle.sha256,
            code_size=bundle.size,
            layer_sha256=layer.sha256 if layer else None,
            version=LATEST,
            created_at=existing.created_at if existing else now,
            updated_at=now,
        )
        if existing is not None and _same_deployment(existing, record):
            return DeployOutcome(existing, created=False, changed=False, init_duration_ms=None)
        fv = self.version_of(record)
        init_ms = await self._executor.validate(fv)
        if create_only:
            await self._store.create_function(record)
            created = True
        else:
            created = await self._store.put_function(record)
        self._resolved[config.name] = fv
        if existing is not None:
            # Workers of the old code finish what they run, then go; the new one stays.
            await self._executor.retire(config.name, keep=fv)
        return DeployOutcome(record, created=created, changed=True, init_duration_ms=init_ms)

    async def _forget(self, bundle: Bundle) -> None:
        """After a failed deploy, remove the code it stored, unless something else uses it."""
        if (
            bundle.created
            and self._in_flight.get(bundle.sha256) == 1
            and not await self._store.code_referenced(bundle.sha256)
        ):
            await self._code.discard(bundle.sha256)

    def _release(self, sha256: str) -> None:
        left = self._in_flight.pop(sha256) - 1
        if left:
            self._in_flight[sha256] = left

    async def get(self, name: str) -> FunctionRecord:
        """Raises FunctionNotFound."""
        return await self._store.get_function(name)

    async def list(self) -> list[FunctionRecord]:
        return await self._store.list_functions()

    async def delete(self, name: str) -> None:
        """Remove the function, its logs and its workers. Raises FunctionNotFound."""
        async with self._lock(name):
            await self._store.delete_function(name)
            self._resolved.pop(name, None)
            await self._executor.retire(name)

    async def resolve(self, name: str) -> FunctionVersion:
        """The runnable version behind ``name``; cached. Raises FunctionNotFound."""
        fv = self._resolved.get(name)
        if fv is None:
            fv = self.version_of(await self._store.get_function(name))
            self._resolved[name] = fv
        return fv

    def version_of(self, record: FunctionRecord) -> FunctionVersion:
        cfg = record.config
        layer_dir = None
        if record.layer_sha256:
            layer_dir = str(self._code.layer_dir(record.layer_sha256))
        return FunctionVersion(
            name=cfg.name,
            version=record.version,
            handler=cfg.handler,
            runtime=cfg.runtime,
            memory_mb=cfg.memory_mb,
            timeout_s=cfg.timeout_s,
            environment=tuple(sorted(cfg.environment.items())),
            code_sha256=record.code_sha256,
            code_dir=str(self._code.code_dir(record.code_sha256)),
            layer_dir=layer_dir,
            region=self._region,
            account_id=self._account_id,
        )

    async def _find(self, name: str) -> FunctionRecord | None:
        try:
            return await self._store.get_function(name)
        except FunctionNotFound:
            return None

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())


def _same_deployment(a: FunctionRecord, b: FunctionRecord) -> bool:
    """Same configuration, code and layer: redeploying it changes nothing."""
    return (a.config, a.code_sha256, a.layer_sha256) == (b.config, b.code_sha256, b.layer_sha256)
