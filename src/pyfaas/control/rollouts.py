"""Canary rollouts watched by the server: shift a share of an alias to a new version, watch
that version's error rate in the usage records, roll back or keep (or promote) the split.

The watch lives in the server, not in the client that asked for it: a rollout goes on when
the CLI is interrupted or its machine sleeps, a restarted server takes up the rollouts it
was watching, and anyone can read where one stands (GET .../rollout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from typing import Any

from pyfaas.control.versions import VersionService
from pyfaas.metering.writer import UsageWriter
from pyfaas.model import Conflict, FunctionNotFound, InvalidRequest
from pyfaas.model.rollouts import (
    PASSED,
    PROMOTED,
    ROLLED_BACK,
    STOPPED,
    WATCHING,
    Rollout,
    RolloutRequest,
)
from pyfaas.model.versions import Alias, AliasNotFound, check_alias_name
from pyfaas.store.rollouts import RolloutStore
from pyfaas.store.usage import UsageStore

log = logging.getLogger("pyfaas.control")


class RolloutService:
    """Starts rollouts and watches them until each window ends (every ``poll_s``)."""

    def __init__(
        self,
        store: RolloutStore,
        versions: VersionService,
        usage: UsageStore,
        writer: UsageWriter | None,
        *,
        poll_s: float = 0.5,
    ) -> None:
        self._store = store
        self._versions = versions
        self._usage = usage
        self._writer = writer  # None: metering is off, and nothing can be measured
        self._poll_s = poll_s
        self._watches: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._closing = asyncio.Event()

    async def start(self) -> None:
        """Take up the rollouts a previous server was watching (their windows go on)."""
        for rollout in await self._store.watching():
            self._watch(rollout)

    async def close(self) -> None:
        """Stop watching (the rollouts stay recorded, for the next server to take up). A
        check under way finishes first, so an alias is never moved without its rollout
        saying so."""
        self._closing.set()
        await asyncio.gather(*self._watches.values(), return_exceptions=True)
        self._watches.clear()

    async def begin(self, function: str, alias_name: str, fields: dict[str, Any]) -> Rollout:
        """Point the alias at its version and ``weight`` of the traffic at the new one, and
        watch. Raises FunctionNotFound, AliasNotFound, VersionNotFound, InvalidRequest
        (unknown_field, invalid_version, invalid_routing, invalid_rollout), Conflict
        (rollout_in_progress, metering_off)."""
        check_alias_name(alias_name)
        request = RolloutRequest.parse(fields)
        if self._writer is None:
            raise Conflict(
                "metering is off on this server, so a rollout cannot measure the new "
                "version's errors; turn metering on, or shift the alias by hand",
                code="metering_off",
            )
        alias = await self._versions.get_alias(function, alias_name)
        if alias.version == request.version:
            raise InvalidRequest(
                f"alias {function}:{alias_name} already points at version {request.version}; "
                "a rollout goes from the alias's version to another one",
                code="invalid_rollout",
            )
        await self._versions.get_version(function, str(request.version))
        now = time.time()
        rollout = Rollout(
            function=function,
            alias=alias_name,
            previous_version=alias.version,
            version=request.version,
            weight=request.weight,
            window_s=request.window_s,
            error_threshold=request.error_threshold,
            promote=request.promote,
            state=WATCHING,
            started_at=now,
            ends_at=now + request.window_s,
        )
        await self._store.begin(rollout)
        try:
            weights = {str(request.version): request.weight}
            await self._versions.patch_alias(
                function, alias_name, {"additional_version_weights": weights}
            )
        except BaseException:
            await self._store.discard(function, alias_name)
            raise
        self._watch(rollout)
        return rollout

    async def get(self, function: str, alias_name: str) -> Rollout:
        """The alias's latest rollout. Raises FunctionNotFound, AliasNotFound,
        RolloutNotFound, InvalidRequest (invalid_alias_name)."""
        await self._versions.get_alias(function, alias_name)
        return await self._store.get(function, alias_name)

    # --- watching ----------------------------------------------------------------------------

    def _watch(self, rollout: Rollout) -> None:
        key = (rollout.function, rollout.alias)
        old = self._watches.pop(key, None)
        if old is not None:
            old.cancel()
        task = asyncio.create_task(self._run(rollout), name=f"rollout {key[0]}:{key[1]}")
        self._watches[key] = task
        task.add_done_callback(self._watched)

    def _watched(self, task: asyncio.Task[None]) -> None:
        for key, running in list(self._watches.items()):
            if running is task:
                del self._watches[key]

    async def _run(self, rollout: Rollout) -> None:
        while rollout.state == WATCHING:
            wait = max(0.0, min(self._poll_s, rollout.ends_at - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), wait)
            if self._closing.is_set():
                return
            try:
                rollout = await self._step(rollout)
            except (FunctionNotFound, AliasNotFound):
                return  # deleted: the rollout went with the alias
            except Exception:
                log.exception("rollout of %s:%s: a check failed", rollout.function, rollout.alias)
                continue
            await self._store.update(rollout)
        log.info(
            "rollout of %s:%s %s: %s",
            rollout.function,
            rollout.alias,
            rollout.state,
            rollout.message,
        )

    async def _step(self, rollout: Rollout) -> Rollout:
        """Measure the new version once, and decide."""
        now = time.time()
        rollout = await self._measure(rollout, now)
        alias = await self._versions.get_alias(rollout.function, rollout.alias)
        if (alias.version, alias.additional_version) != (rollout.previous_version, rollout.version):
            return _finish(
                rollout,
                STOPPED,
                f"the alias was changed meanwhile (to {_routing(alias)}): left as it is",
            )
        if rollout.crossed:
            await self._point(rollout, rollout.previous_version)
            return _finish(
                rollout,
                ROLLED_BACK,
                f"version {rollout.version} failed {_rate(rollout)}, above "
                f"{rollout.error_threshold:.1%}: {rollout.alias} is back on version "
                f"{rollout.previous_version} (100%)",
            )
        if now < rollout.ends_at:
            return rollout
        clean = f"version {rollout.version} failed {_rate(rollout)} in {rollout.window_s:g} s"
        if rollout.promote:
            await self._point(rollout, rollout.version)
            return _finish(rollout, PROMOTED, f"{clean}: {rollout.alias} now sends all to it")
        return _finish(rollout, PASSED, f"{clean}: the split stays ({_routing(alias)})")

    async def _measure(self, rollout: Rollout, now: float) -> Rollout:
        if self._writer is not None:
            await self._writer.flush()
        totals = await self._usage.usage_totals(
            start=rollout.started_at, end=now + 1, function=rollout.function, by_version=True
        )
        mine = [t for t in totals if t.version == str(rollout.version)]
        return replace(
            rollout,
            invocations=sum(t.invocations for t in mine),
            errors=sum(t.errors + t.timeouts + t.crashes for t in mine),
        )

    async def _point(self, rollout: Rollout, version: int) -> None:
        await self._versions.patch_alias(
            rollout.function,
            rollout.alias,
            {"version": version, "additional_version_weights": {}},
        )


def _finish(rollout: Rollout, state: str, message: str) -> Rollout:
    return replace(rollout, state=state, message=message, finished_at=time.time())


def _rate(rollout: Rollout) -> str:
    rate = rollout.error_rate
    share = "-" if rate is None else f"{rate:.1%}"
    return f"{rollout.errors} of {rollout.invocations} invocations ({share})"


def _routing(alias: Alias) -> str:
    if alias.additional_version is None:
        return f"{alias.version} (100%)"
    share = (alias.additional_weight or 0.0) * 100
    return f"{alias.version} ({100 - share:g}%), {alias.additional_version} ({share:g}%)"
