"""Event source mappings as a service: create (with a connect check), change, delete, and a
poller per enabled mapping, kept in step with the store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid as uuids
from typing import Any

from pyfaas.brokers import SOURCES, BrokerError, SourceNotFound, SourceSettings
from pyfaas.events.dispatcher import Resolve, Run
from pyfaas.model import FunctionNotFound, InvalidRequest
from pyfaas.model.sources import EventSourceMapping, apply_changes, parse_mapping, redact_url
from pyfaas.sources.poller import DeadLetter, Poller, PollSettings
from pyfaas.store.sources import SourceMappingStore

log = logging.getLogger("pyfaas.sources")

CONNECT_CHECK_S = 15.0


class SourceService:
    """What the API offers about event source mappings, and the pollers behind them.

    Every server polls every enabled mapping (competing consumers on the broker); a change
    made through another server sharing the database is picked up within ``refresh_s``.
    """

    def __init__(
        self,
        store: SourceMappingStore,
        *,
        resolve: Resolve,
        run: Run,
        dead_letter: DeadLetter,
        settings: PollSettings,
        region: str,
        account_id: str,
        refresh_s: float = 5.0,
    ) -> None:
        self._store = store
        self._resolve = resolve
        self._run = run
        self._dead_letter = dead_letter
        self._settings = settings
        self._region = region
        self._account_id = account_id
        self._refresh_s = refresh_s
        self._pollers: dict[str, Poller] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._reconcile()
        self._task = asyncio.create_task(self._refresh_loop(), name="pyfaas-sources")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        async with self._lock:
            pollers, self._pollers = list(self._pollers.values()), {}
        await asyncio.gather(*(p.stop() for p in pollers))

    # --- the API's calls ---------------------------------------------------------------------

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Check, connect to the broker once, store, start polling. Raises InvalidRequest
        (bad fields, source_unreachable, source_not_found) or FunctionNotFound; nothing is
        stored unless every check passed."""
        mapping = parse_mapping(body, uuid=str(uuids.uuid4()), now=time.time())
        await self._check_functions(mapping)
        await self._check_broker(mapping)
        await self._store.create(mapping)
        await self._apply(mapping)
        return self.describe(mapping)

    async def get(self, uuid: str) -> dict[str, Any]:
        """Raises NotFound (event_source_mapping_not_found)."""
        return self.describe(await self._store.get(uuid))

    async def list(self, function: str | None = None) -> list[dict[str, Any]]:
        return [self.describe(m) for m in await self._store.list(function)]

    async def update(self, uuid: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change the settings Lambda lets UpdateEventSourceMapping change; the poller
        restarts with them. Raises NotFound, InvalidRequest, FunctionNotFound."""
        mapping = await self._store.get(uuid)
        changed = apply_changes(mapping, changes, now=time.time())
        if changed != mapping:
            await self._check_functions(changed)
            await self._store.update(changed)
            await self._apply(changed)
        return self.describe(changed)

    async def delete(self, uuid: str) -> dict[str, Any]:
        """Stop polling and forget the mapping (the broker's consumer group stays, with its
        position). Raises NotFound."""
        mapping = await self._store.get(uuid)
        await self._store.delete(uuid)
        async with self._lock:
            poller = self._pollers.pop(uuid, None)
        if poller is not None:
            await poller.stop()
        return {**self.describe(mapping), "state": "Deleting"}

    def describe(self, mapping: EventSourceMapping) -> dict[str, Any]:
        """The mapping with its state (Creating, Enabled, Disabled) and this server's view of
        its health."""
        out = mapping.to_dict()
        poller = self._pollers.get(mapping.uuid)
        if not mapping.enabled or poller is None:
            out.update(state="Disabled" if not mapping.enabled else "Creating", health="unknown")
            return out
        out["state"] = "Enabled" if poller.health.connected_once else "Creating"
        out.update(poller.health.to_dict(), in_flight=poller.in_flight)
        return out

    # --- checks ------------------------------------------------------------------------------

    async def _check_functions(self, mapping: EventSourceMapping) -> None:
        await self._resolve(mapping.function)  # FunctionNotFound: 404 function_not_found
        if mapping.on_failure is not None:
            try:
                await self._resolve(mapping.on_failure)
            except FunctionNotFound:
                raise InvalidRequest(
                    f"on_failure names function {mapping.on_failure!r}, which does not exist",
                    code="invalid_destination",
                ) from None

    async def _check_broker(self, mapping: EventSourceMapping) -> None:
        source = SOURCES[mapping.type](self._source_settings(mapping))
        where = redact_url(mapping.url)
        try:
            async with asyncio.timeout(CONNECT_CHECK_S):
                await source.connect()
        except SourceNotFound as exc:
            raise InvalidRequest(str(exc), code="source_not_found") from None
        except (BrokerError, TimeoutError) as exc:
            raise InvalidRequest(
                f"cannot connect to {mapping.type} at {where} ({exc or 'timed out'}): check the "
                "URL and that the broker is running",
                code="source_unreachable",
            ) from None
        finally:
            await source.close()

    # --- pollers -----------------------------------------------------------------------------

    def _source_settings(self, mapping: EventSourceMapping) -> SourceSettings:
        return SourceSettings(mapping, self._region, self._account_id, self._settings.lease_s)

    async def _apply(self, mapping: EventSourceMapping | None, uuid: str = "") -> None:
        """Make the poller of one mapping match it (None: it was deleted)."""
        key = mapping.uuid if mapping is not None else uuid
        async with self._lock:
            current = self._pollers.get(key)
            if current is not None and mapping is not None and current.mapping == mapping:
                return
            if current is not None:
                del self._pollers[key]
                await current.stop()
            if mapping is not None and mapping.enabled:
                poller = Poller(
                    mapping,
                    SOURCES[mapping.type](self._source_settings(mapping)),
                    resolve=self._resolve,
                    run=self._run,
                    dead_letter=self._dead_letter,
                    settings=self._settings,
                )
                self._pollers[key] = poller
                poller.start()

    async def _reconcile(self) -> None:
        stored = {m.uuid: m for m in await self._store.list()}
        for uuid in set(self._pollers) - set(stored):
            await self._apply(None, uuid)
        for mapping in stored.values():
            await self._apply(mapping)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self._reconcile()
            except Exception:
                log.exception("reloading event source mappings failed; retrying")
