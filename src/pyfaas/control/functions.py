"""Deploying, listing and deleting functions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyfaas.control.secrets import SecretService, redact_error
from pyfaas.metering import PriceBook
from pyfaas.model import (
    LATEST,
    FunctionConfig,
    FunctionExists,
    FunctionNotFound,
    FunctionRecord,
    FunctionVersion,
    InvalidFunctionConfig,
    Limits,
    PyfaasError,
    ServiceUnavailable,
)
from pyfaas.model.function import check_fields
from pyfaas.packaging import Bundle, CodeStore
from pyfaas.scaling import Scaler
from pyfaas.store import Store

log = logging.getLogger("pyfaas.control")
# Code stored or reused this recently is never collected (an ingest that just reused it has
# not yet told the deploy that holds it).
CODE_GRACE_S = 1.0


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
    cached in memory so that an invoke does not touch the database. On a database that
    several servers share, every deploy and delete is published on the store's change feed
    (the other servers :meth:`reload` the function) and the uploaded zip is kept in the
    database, from where a server that never saw the deploy unpacks the code.
    """

    def __init__(
        self,
        store: Store,
        code: CodeStore,
        scaler: Scaler,
        limits: Limits,
        *,
        region: str = "us-east-1",
        account_id: str = "000000000000",
        prices: PriceBook | None = None,
        secrets: SecretService | None = None,
    ) -> None:
        self._store = store
        self._code = code
        self._scaler = scaler
        self._limits = limits
        self._region = region
        self._account_id = account_id
        self._prices = prices or PriceBook()
        self._resolved: dict[str, FunctionVersion] = {}
        # Deploys and deletes of one name are serialised; different names go in parallel.
        self._locks: dict[str, asyncio.Lock] = {}
        # Deploys holding each stored code, so a failing one never removes another's code.
        self._in_flight: dict[str, int] = {}
        self._warming: set[asyncio.Task[None]] = set()
        self._secrets = secrets
        self._fetching: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        """Register every stored function with the scaler (reservations now; provisioned
        workers start in the background)."""
        for record in await self._store.list_functions():
            try:
                fv = self._resolved[record.name] = await self.runnable(record)
            except ServiceUnavailable as exc:  # resolving it later tries again
                log.warning("function %s is not runnable here yet: %s", record.name, exc)
                continue
            self._scaler.reserve(fv)
            if fv.provisioned_concurrency:
                task = asyncio.create_task(self._scaler.configure(fv))
                self._warming.add(task)
                task.add_done_callback(self._warmed)

    def _warmed(self, task: asyncio.Task[None]) -> None:
        self._warming.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("provisioned workers did not start: %s", task.exception())

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
        self._prices.check(config.price_plan)
        await self._require_secrets(config)
        async with self._lock(config.name):
            existing = await self._find(config.name)
            if create_only and existing is not None:
                raise FunctionExists(config.name)
            self._scaler.check_reservation(config.name, config.reserved_concurrency)
            bundle = await self._code.ingest_zip(zip_path)
            self._in_flight[bundle.sha256] = self._in_flight.get(bundle.sha256, 0) + 1
            try:
                return await self._deploy_bundle(
                    config, bundle, zip_path, existing, create_only, on_output
                )
            except BaseException:
                await self._forget(bundle)
                raise
            finally:
                self._release(bundle.sha256)

    async def _deploy_bundle(
        self,
        config: FunctionConfig,
        bundle: Bundle,
        zip_path: Path,
        existing: FunctionRecord | None,
        create_only: bool,
        on_output: Callable[[str], None] | None,
    ) -> DeployOutcome:
        layer = None
        if bundle.requirements:
            layer = await self._code.ensure_layer(bundle.requirements, on_output)
        blobs = self._store.code_blobs
        zip_bytes = None
        if blobs is not None:
            zip_bytes = await asyncio.to_thread(zip_path.read_bytes)
            await blobs.put(bundle.sha256, zip_bytes)
        outcome = await self._commit(
            config,
            existing,
            code=(bundle.sha256, bundle.size),
            layer_sha256=layer.sha256 if layer else None,
            create_only=create_only,
        )
        if blobs is not None and zip_bytes is not None:
            # Again, now that the record references it: another server's collection may
            # have removed it in between (it removes only what nothing references).
            await blobs.put(bundle.sha256, zip_bytes)
        return outcome

    async def _commit(
        self,
        config: FunctionConfig,
        existing: FunctionRecord | None,
        *,
        code: tuple[str, int],
        layer_sha256: str | None,
        create_only: bool,
    ) -> DeployOutcome:
        """Validate the handler in a worker, write the record, switch traffic to it."""
        now = time.time()
        record = FunctionRecord(
            config=config,
            code_sha256=code[0],
            code_size=code[1],
            layer_sha256=layer_sha256,
            version=LATEST,
            created_at=existing.created_at if existing else now,
            updated_at=now,
        )
        if existing is not None and _same_deployment(existing, record):
            return DeployOutcome(existing, created=False, changed=False, init_duration_ms=None)
        fv = self.version_of(record)
        init_ms = None
        if existing is None or self.version_of(existing).pool_key != fv.pool_key:
            try:
                init_ms = await self._scaler.validate(fv)
            except PyfaasError as exc:
                # An import error may quote a secret: the deploy's answer must not.
                redact_error(exc, fv.secret_values)
                raise
        if create_only:
            await self._store.create_function(record)
            created = True
        else:
            created = await self._store.put_function(record)
        self._resolved[config.name] = fv
        await self._store.changes.publish("function", config.name)
        if existing is not None:
            # Workers of the old code finish what they run, then go; the new one stays.
            await self._scaler.retire(config.name, keep=fv)
            if existing.code_sha256 != record.code_sha256:
                await self.collect_code({existing.code_sha256})
        await self._scaler.configure(fv)
        return DeployOutcome(record, created=created, changed=True, init_duration_ms=init_ms)

    async def update_config(self, name: str, changes: dict[str, Any]) -> DeployOutcome:
        """Change some configuration fields of ``name``, keeping its code (Lambda's
        UpdateFunctionConfiguration). A change that workers see (handler, memory, timeout,
        environment, concurrency_per_worker) is validated in a new worker first; scaling
        settings alone keep the warm workers.

        Raises FunctionNotFound, InvalidFunctionConfig (nothing is changed).
        """
        if not isinstance(changes, dict):
            raise InvalidFunctionConfig("the changes must be a JSON object of config fields")
        check_fields(changes)
        if changes.get("name", name) != name:
            raise InvalidFunctionConfig(
                "a function cannot be renamed; deploy it under the new name and delete the old",
                code="invalid_name",
            )
        async with self._lock(name):
            existing = await self._store.get_function(name)
            config = FunctionConfig.from_dict({**existing.config.to_dict(), **changes})
            config.validate(self._limits)
            self._prices.check(config.price_plan)
            await self._require_secrets(config)
            self._scaler.check_reservation(name, config.reserved_concurrency)
            return await self._commit(
                config,
                existing,
                code=(existing.code_sha256, existing.code_size),
                layer_sha256=existing.layer_sha256,
                create_only=False,
            )

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
            code = await self._store.versions.code_of(name)
            await self._store.delete_function(name)
            self._resolved.pop(name, None)
            await self._store.changes.publish("function", name)
            await self._scaler.forget(name)
            await self.collect_code(code)

    async def collect_code(self, shas: set[str]) -> None:
        """Remove the stored code of ``shas`` that no function or version runs any more
        (after a delete or an update). Code a deploy holds, or stored or reused in the last
        ``CODE_GRACE_S``, is kept: a deploy may be about to reference it."""
        for sha in shas:
            if sha in self._in_flight or await self._store.code_referenced(sha):
                continue
            if sha not in self._in_flight:  # checked again: the store query awaited
                await self._code.collect(sha, unused_for_s=CODE_GRACE_S)
                if self._store.code_blobs is not None:
                    await self._store.code_blobs.delete_unreferenced(sha)

    async def resolve(self, name: str) -> FunctionVersion:
        """The runnable version behind ``name``; cached. Raises FunctionNotFound."""
        fv = self._resolved.get(name)
        if fv is None:
            record = await self._store.get_function(name)
            fv = await self.runnable(record)
            self._resolved[name] = fv
        return fv

    async def runnable(self, record: FunctionRecord) -> FunctionVersion:
        """The runnable version of ``record``, its code on this server's disk first: on a
        shared database, code deployed through another server is unpacked from the
        database (and its requirements layer built) the first time it is needed, and so
        are the secrets it uses.

        Raises ServiceUnavailable (code_unavailable) when the database does not hold it.
        """
        blobs = self._store.code_blobs
        sha = record.code_sha256
        if blobs is not None and not self._code.code_dir(sha).is_dir():
            async with self._fetching.setdefault(sha, asyncio.Lock()):
                if not self._code.code_dir(sha).is_dir():
                    zip_bytes = await blobs.get(sha)
                    if zip_bytes is None:
                        raise ServiceUnavailable(
                            f"the code of {record.name} is neither on this server nor in the "
                            "database; deploy it again",
                            code="code_unavailable",
                        )
                    bundle = await self._code.unpack(zip_bytes)
                    if bundle.requirements and record.layer_sha256:
                        await self._code.ensure_layer(bundle.requirements)
        if self._secrets is not None and record.config.secrets:
            # Set through another server, maybe: read into memory before workers need them.
            with contextlib.suppress(InvalidFunctionConfig):
                await self._secrets.require(record.config.secrets)
        return self.version_of(record)

    async def reload(self, name: str) -> None:
        """Another server deployed, updated or deleted ``name``: read it again. Workers of
        code or settings it no longer runs finish what they run, then go; a deleted
        function's go at once."""
        async with self._lock(name):
            old = self._resolved.pop(name, None)
            record = await self._find(name)
            if record is None:
                if old is not None:
                    await self._scaler.forget(name)
                    await self.collect_code({old.code_sha256})
                return
            fv = self._resolved[name] = await self.runnable(record)
            if old is not None and old.pool_key == fv.pool_key:
                self._scaler.reserve(fv)
                return
            if old is not None:
                await self._scaler.retire(name, keep=fv)
            await self._scaler.configure(fv)
            if old is not None and old.code_sha256 != fv.code_sha256:
                await self.collect_code({old.code_sha256})

    async def reload_all(self) -> None:
        """Changes from other servers may have been missed: read every function again."""
        names = set(self._resolved) | {r.name for r in await self._store.list_functions()}
        for name in sorted(names):
            await self.reload(name)

    def arn_of(self, name: str) -> str:
        """The Lambda ARN of function ``name`` on this server (it need not exist)."""
        return f"arn:aws:lambda:{self._region}:{self._account_id}:function:{name}"

    def version_of(self, record: FunctionRecord) -> FunctionVersion:
        cfg = record.config
        secret_env = self._secrets.environment(cfg.secrets) if self._secrets else {}
        layer_dir = None
        if record.layer_sha256:
            layer_dir = str(self._code.layer_dir(record.layer_sha256))
        return FunctionVersion(
            name=cfg.name,
            version=record.version,
            handler=cfg.worker_handler,
            runtime=cfg.runtime,
            memory_mb=cfg.memory_mb,
            timeout_s=cfg.timeout_s,
            environment=tuple(sorted({**cfg.environment, **secret_env}.items())),
            code_sha256=record.code_sha256,
            code_dir=str(self._code.code_dir(record.code_sha256)),
            layer_dir=layer_dir,
            region=self._region,
            account_id=self._account_id,
            concurrency_per_worker=cfg.concurrency_per_worker,
            reserved_concurrency=cfg.reserved_concurrency,
            provisioned_concurrency=cfg.provisioned_concurrency,
            idle_timeout_s=cfg.idle_timeout_s,
            maximum_retry_attempts=cfg.maximum_retry_attempts,
            maximum_event_age_s=cfg.maximum_event_age_s,
            on_success=cfg.on_success,
            on_failure=cfg.on_failure,
            price_plan=self._prices.plan(cfg.price_plan).name,
            secret_values=tuple(sorted(set(secret_env.values()))),
            ephemeral_storage_mb=cfg.ephemeral_storage_mb,
            network=cfg.network,
            gpus=cfg.gpus,
        )

    async def _require_secrets(self, config: FunctionConfig) -> None:
        if not config.secrets:
            return
        if self._secrets is None:
            raise InvalidFunctionConfig("this server keeps no secrets", code="unknown_secret")
        await self._secrets.require(config.secrets)

    async def refresh_secrets(self, changed: set[str]) -> None:
        """Functions using a secret in ``changed`` get their new value: new workers, the
        old ones finish what they run, then go."""
        for record in await self._store.list_functions():
            if not changed & set(record.config.secrets.values()):
                continue
            async with self._lock(record.name):
                fv = await self.runnable(record)
                old = self._resolved.get(record.name)
                self._resolved[record.name] = fv
                if old is not None and old.pool_key != fv.pool_key:
                    await self._scaler.retire(record.name, keep=fv)
                    await self._scaler.configure(fv)

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
