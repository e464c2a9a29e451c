"""Secrets: values encrypted at rest (AES-256-GCM), handed to workers as environment
variables, and redacted from what the platform reports of an invocation.

The key comes from ``PYFAAS_SECRET_KEY`` (32 bytes, URL-safe base64), else from
``$PYFAAS_HOME/secret.key``, created with mode 0600 at first start. Servers sharing a store
must share the key. Each ciphertext is bound to its secret's name (associated data), so a
row copied under another name does not decrypt. Decrypted values live in the server's
memory only.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets as random
import stat
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pyfaas.model import (
    ConfigurationError,
    Conflict,
    InvalidFunctionConfig,
    InvocationResult,
    NotFound,
    PyfaasError,
)
from pyfaas.model.secrets import SecretInfo, validate_secret_name, validate_secret_value
from pyfaas.store.access import SecretStore
from pyfaas.store.shared import ChangeFeed

log = logging.getLogger("pyfaas.control")

KEY_FILE = "secret.key"
REDACTED = "[pyfaas: secret redacted]"
# Shorter values are not redacted: replacing every "ab" in a log would hide the log, and
# a value that short is no secret anyway.
MIN_REDACTED_LENGTH = 4
_NONCE = 12


def load_key(home: Path, configured: str | None) -> bytes:
    """The 32-byte key: ``configured`` (base64), else the key file under ``home``, created
    (0600) when missing. Raises ConfigurationError for a bad key or an unsafe key file."""
    if configured:
        return _decode_key(configured, "PYFAAS_SECRET_KEY")
    path = home / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigurationError(
                f"the secrets key file {path} is readable by others (mode {mode:o}): "
                f"`chmod 600 {path}`"
            ) from None
        return _decode_key(path.read_text().strip(), str(path))
    with os.fdopen(fd, "w") as out:
        out.write(base64.urlsafe_b64encode(random.token_bytes(32)).decode() + "\n")
    log.info("created the secrets key %s (mode 0600): back it up with the database", path)
    return _decode_key(path.read_text().strip(), str(path))


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.encode())
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ConfigurationError(
            f"{where} must be 32 bytes in URL-safe base64 (44 characters); make one with "
            "python -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
        )
    return key


class SecretService:
    """Sets, lists and deletes secrets; keeps their values decrypted in memory for workers.

    ``start`` decrypts every stored secret once: a store written with another key is a
    ConfigurationError before the server serves.
    """

    def __init__(
        self, store: SecretStore, key: bytes, *, changes: ChangeFeed | None = None
    ) -> None:
        self._store = store
        self._changes = changes  # other servers read a changed value at once
        self._cipher = AESGCM(key)
        self._values: dict[str, str] = {}
        self._listeners: list[Callable[[set[str]], Awaitable[None]]] = []

    def listen(self, listener: Callable[[set[str]], Awaitable[None]]) -> None:
        """Call ``listener(names)`` after secrets change value (functions using them
        need new workers)."""
        self._listeners.append(listener)

    async def start(self) -> None:
        for row in await self._store.list():
            self._values[row["name"]] = self._decrypt(row["name"], row["ciphertext"])

    async def set(self, name: str, value: object) -> tuple[SecretInfo, bool]:
        """Store ``value`` encrypted; return the secret and whether it is new.

        Raises InvalidRequest (invalid_secret_name, invalid_secret_value).
        """
        validate_secret_name(name)
        text = validate_secret_value(value)
        nonce = random.token_bytes(_NONCE)
        sealed = nonce + self._cipher.encrypt(nonce, text.encode(), name.encode())
        created = await self._store.put(name, sealed, time.time())
        changed = self._values.get(name) != text
        self._values[name] = text
        if changed and not created:
            for listener in self._listeners:
                await listener({name})
            if self._changes is not None:
                await self._changes.publish("secret", name)
        return await self.get(name), created

    async def reload(self, name: str) -> None:
        """Another server set secret ``name``: read its value again; the functions using a
        changed value get new workers."""
        row = await self._store.get(name)
        await self._refresh([] if row is None else [row])

    async def reload_all(self) -> None:
        """Notifications from other servers may have been missed: read every secret in use
        here again (as ``reload`` does for one)."""
        await self._refresh(await self._store.list())

    async def _refresh(self, rows: Iterable[Mapping[str, Any]]) -> None:
        changed: set[str] = set()
        for row in rows:
            name = row["name"]
            if name not in self._values:
                continue  # not used here yet: read when a function needs it
            text = self._decrypt(name, row["ciphertext"])
            if self._values[name] != text:
                self._values[name] = text
                changed.add(name)
        if changed:
            for listener in self._listeners:
                await listener(changed)

    async def get(self, name: str) -> SecretInfo:
        """Raises InvalidRequest (invalid_secret_name), NotFound (secret_not_found)."""
        validate_secret_name(name)
        row = await self._store.get(name)
        if row is None:
            raise _not_found(name)
        users = (await self._store.users()).get(name, [])
        return SecretInfo(name, row["created_at"], row["updated_at"], tuple(users))

    async def list(self) -> list[SecretInfo]:
        users = await self._store.users()
        return [
            SecretInfo(r["name"], r["created_at"], r["updated_at"], tuple(users.get(r["name"], [])))
            for r in await self._store.list()
        ]

    async def delete(self, name: str) -> None:
        """Raises NotFound (secret_not_found), Conflict (secret_in_use: functions still
        reference it; nothing is deleted)."""
        validate_secret_name(name)
        users = (await self._store.users()).get(name)
        if users:
            raise Conflict(
                f"secret {name!r} is used by {', '.join(users)}: remove it from their "
                "secrets (or delete them) first",
                code="secret_in_use",
            )
        if not await self._store.delete(name):
            raise _not_found(name)
        self._values.pop(name, None)

    async def require(self, refs: dict[str, str]) -> None:
        """Make sure every secret ``refs`` names exists and is in memory (one set through
        another server is read from the store). Raises InvalidFunctionConfig (unknown_secret).
        """
        missing = sorted({s for s in refs.values() if s not in self._values})
        for name in missing:
            row = await self._store.get(name)
            if row is None:
                raise InvalidFunctionConfig(
                    f"secrets: there is no secret {name!r}; create it first with "
                    f"`pyfaas secret set {name}` (`pyfaas secret ls` lists them)",
                    code="unknown_secret",
                )
            self._values[name] = self._decrypt(name, row["ciphertext"])

    def environment(self, refs: dict[str, str]) -> dict[str, str]:
        """The variables ``refs`` asks for, with the values in memory (a secret deleted
        under a running function leaves its variable out)."""
        return {var: self._values[s] for var, s in refs.items() if s in self._values}

    def _decrypt(self, name: str, sealed: bytes) -> str:
        try:
            plain = self._cipher.decrypt(sealed[:_NONCE], sealed[_NONCE:], name.encode())
        except InvalidTag:
            raise ConfigurationError(
                f"secret {name!r} in the store does not decrypt with this server's key: "
                "every server sharing a store needs the same PYFAAS_SECRET_KEY (or the "
                "secret.key file it was written with)"
            ) from None
        return plain.decode()


def _not_found(name: str) -> NotFound:
    return NotFound(
        f"there is no secret {name!r}; `pyfaas secret ls` lists them", code="secret_not_found"
    )


def redact_text(text: str, values: Iterable[str]) -> str:
    """``text`` with each secret value (at least MIN_REDACTED_LENGTH long) replaced."""
    for value in values:
        if len(value) >= MIN_REDACTED_LENGTH and value in text:
            text = text.replace(value, REDACTED)
    return text


def redact_error(exc: PyfaasError, values: Iterable[str]) -> None:
    """Replace secret values in an error's message, in place."""
    exc.message = redact_text(exc.message, values)
    exc.args = (exc.message,)


def redact(result: InvocationResult, values: Iterable[str]) -> InvocationResult:
    """``result`` with each secret value (at least MIN_REDACTED_LENGTH long) replaced in its
    log and, when the handler failed, in its error object. A successful result is the
    handler's own answer and passes unchanged."""
    logs, body = redact_text(result.logs, values), result.body
    for value in values:
        if len(value) >= MIN_REDACTED_LENGTH and result.function_error is not None:
            encoded = orjson.dumps(value)[1:-1]  # as it appears inside a JSON string
            if encoded in body:
                body = body.replace(encoded, REDACTED.encode())
    if logs is result.logs and body is result.body:
        return result
    return replace(result, logs=logs, body=body)
