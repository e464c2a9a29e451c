"""Applying what other servers sharing the database changed to this server's caches."""

from __future__ import annotations

from dataclasses import dataclass

from pyfaas.control import FunctionService
from pyfaas.control.access import TokenService
from pyfaas.control.secrets import SecretService
from pyfaas.control.urls import FunctionUrlService
from pyfaas.control.versions import VersionService
from pyfaas.events.schedules import Scheduler
from pyfaas.store.shared import Change


@dataclass(frozen=True, slots=True)
class ChangeApplier:
    """Receives the store's change feed: each change drops or reloads what it touches."""

    functions: FunctionService
    versions: VersionService
    urls: FunctionUrlService
    tokens: TokenService
    secrets: SecretService
    scheduler: Scheduler

    async def __call__(self, change: Change) -> None:
        if change.topic is None:  # notifications may have been missed: forget everything
            self.versions.forget()
            self.urls.forget()
            self.tokens.forget()
            self.scheduler.wake()
            await self.secrets.reload_all()
            await self.functions.reload_all()
        elif change.topic == "function":
            self.versions.forget(change.key)
            self.urls.forget(change.key)
            await self.functions.reload(change.key)
        elif change.topic == "alias":
            self.versions.forget(change.key)
        elif change.topic == "url":
            self.urls.forget(change.key)
        elif change.topic == "token":
            self.tokens.forget()
        elif change.topic == "secret":
            await self.secrets.reload(change.key)
