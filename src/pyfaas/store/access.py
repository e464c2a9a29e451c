"""API tokens and encrypted secrets: the rows of access control (never a plain value)."""

from __future__ import annotations

import builtins
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from pyfaas.model.access import ApiToken
from pyfaas.store.engine import Transactions
from pyfaas.store.tables import api_tokens, functions, secrets

_t, _s = api_tokens.c, secrets.c
_TOKEN_BY_ID = sa.select(api_tokens).where(_t.id == sa.bindparam("id"))
_LIST_TOKENS = sa.select(api_tokens).order_by(_t.created_at, _t.id)
_SECRET = sa.select(secrets).where(_s.name == sa.bindparam("name"))
_LIST_SECRETS = sa.select(secrets).order_by(_s.name)
_SECRET_REFERENCES = sa.select(functions.c.name, functions.c.secrets).where(
    functions.c.secrets != "{}"
)


class TokenStore:
    """Queries on api_tokens. Every method is a coroutine; none blocks."""

    def __init__(self, engine: AsyncEngine, transactions: Transactions) -> None:
        self._engine = engine
        self._tx = transactions

    async def create(self, token: ApiToken, token_sha256: str) -> None:
        async with self._tx.begin() as conn:
            await conn.execute(
                api_tokens.insert(), {**_token_row(token), "token_sha256": token_sha256}
            )

    async def find(self, token_id: str) -> tuple[ApiToken, str] | None:
        """The token with this id and the SHA-256 it was stored with; None if unknown."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(_TOKEN_BY_ID, {"id": token_id})).first()
        if row is None:
            return None
        return _token(row._mapping), row._mapping["token_sha256"]

    async def list(self) -> list[ApiToken]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_LIST_TOKENS)).all()
        return [_token(r._mapping) for r in rows]

    async def revoke(self, token_id: str, at: float) -> ApiToken | None:
        """Mark the token revoked (once: a second revoke keeps the first time)."""
        statement = (
            api_tokens.update()
            .where(_t.id == token_id, _t.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        async with self._tx.begin() as conn:
            await conn.execute(statement)
            row = (await conn.execute(_TOKEN_BY_ID, {"id": token_id})).first()
        return None if row is None else _token(row._mapping)


class SecretStore:
    """Queries on secrets (ciphertexts only) and on which functions use them."""

    def __init__(self, engine: AsyncEngine, transactions: Transactions) -> None:
        self._engine = engine
        self._tx = transactions

    async def put(self, name: str, ciphertext: bytes, now: float) -> bool:
        """Insert or replace; True if the secret is new. A replace keeps created_at."""
        update = (
            secrets.update().where(_s.name == name).values(ciphertext=ciphertext, updated_at=now)
        )
        for _ in range(3):
            async with self._tx.begin() as conn:
                if (await conn.execute(update)).rowcount:
                    return False
            try:
                async with self._tx.begin() as conn:
                    await conn.execute(
                        secrets.insert(),
                        {
                            "name": name,
                            "ciphertext": ciphertext,
                            "created_at": now,
                            "updated_at": now,
                        },
                    )
                return True
            except sa.exc.IntegrityError:
                continue  # created meanwhile by another server: update it
        raise RuntimeError(f"secret {name!r} kept being created and deleted under us")

    async def get(self, name: str) -> dict[str, Any] | None:
        """The row (name, ciphertext, created_at, updated_at), or None."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(_SECRET, {"name": name})).first()
        return None if row is None else dict(row._mapping)

    async def list(self) -> builtins.list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_LIST_SECRETS)).all()
        return [dict(r._mapping) for r in rows]

    async def users(self) -> dict[str, builtins.list[str]]:
        """secret name -> the functions that reference it, sorted."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_SECRET_REFERENCES)).all()
        found: dict[str, builtins.list[str]] = {}
        for function, refs in rows:
            for secret in sorted(set(json.loads(refs).values())):
                found.setdefault(secret, []).append(function)
        return {k: sorted(v) for k, v in found.items()}

    async def delete(self, name: str) -> bool:
        async with self._tx.begin() as conn:
            result = await conn.execute(secrets.delete().where(_s.name == name))
        return bool(result.rowcount)


def _token_row(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "scopes": ",".join(token.scopes),
        "functions": None if token.functions is None else json.dumps(list(token.functions)),
        "created_at": token.created_at,
        "revoked_at": token.revoked_at,
    }


def _token(row: sa.RowMapping) -> ApiToken:
    functions_json = row["functions"]
    return ApiToken(
        id=row["id"],
        name=row["name"],
        scopes=tuple(row["scopes"].split(",")),
        functions=None if functions_json is None else tuple(json.loads(functions_json)),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
