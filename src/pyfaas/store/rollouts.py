"""Alias rollouts: the latest one of each alias, written as it is watched."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from pyfaas.model.rollouts import WATCHING, Rollout, RolloutNotFound, rollout_in_progress
from pyfaas.model.versions import AliasNotFound
from pyfaas.store.engine import Transactions
from pyfaas.store.tables import alias_rollouts

_r = alias_rollouts.c
_KEY = (_r.function == sa.bindparam("function"), _r.alias == sa.bindparam("alias"))
_GET = sa.select(alias_rollouts).where(*_KEY)
_WATCHING = sa.select(alias_rollouts).where(_r.state == WATCHING)


class RolloutStore:
    """Queries on alias_rollouts. Coroutines; none blocks."""

    def __init__(self, engine: AsyncEngine, transactions: Transactions) -> None:
        self._engine = engine
        self._tx = transactions

    async def begin(self, rollout: Rollout) -> None:
        """Record a new rollout of its alias, replacing a finished one. Raises Conflict
        (rollout_in_progress) when one is being watched, AliasNotFound when the alias went."""
        key = {"function": rollout.function, "alias": rollout.alias}
        try:
            async with self._tx.begin() as conn:
                found = (await conn.execute(_GET, key)).first()
                if found is not None and found._mapping["state"] == WATCHING:
                    raise rollout_in_progress(
                        rollout.function, rollout.alias, found._mapping["version"]
                    )
                if found is not None:
                    await conn.execute(alias_rollouts.delete().where(*_KEY), key)
                await conn.execute(alias_rollouts.insert(), asdict(rollout))
        except sa.exc.IntegrityError:
            raise AliasNotFound(rollout.function, rollout.alias) from None

    async def update(self, rollout: Rollout) -> None:
        """Write what the watch measured and decided (nothing if the alias went)."""
        changes = {
            k: v for k, v in asdict(rollout).items() if k not in ("function", "alias", "started_at")
        }
        async with self._tx.begin() as conn:
            await conn.execute(
                alias_rollouts.update()
                .where(_r.function == rollout.function, _r.alias == rollout.alias)
                .values(**changes)
            )

    async def discard(self, function: str, alias: str) -> None:
        """Forget a rollout that could not start (its alias could not be changed)."""
        async with self._tx.begin() as conn:
            await conn.execute(
                alias_rollouts.delete().where(*_KEY), {"function": function, "alias": alias}
            )

    async def get(self, function: str, alias: str) -> Rollout:
        """Raises RolloutNotFound."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(_GET, {"function": function, "alias": alias})).first()
        if row is None:
            raise RolloutNotFound(function, alias)
        return _rollout(row._mapping)

    async def watching(self) -> list[Rollout]:
        """Every rollout still being watched (for a server starting)."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_WATCHING)).all()
        return [_rollout(r._mapping) for r in rows]


def _rollout(row: Any) -> Rollout:
    return Rollout(**{c.name: row[c.name] for c in alias_rollouts.columns})
