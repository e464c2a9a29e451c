"""API tokens: creating, revoking and verifying them, and refusing a guesser.

A token is ``pyf_<id>_<random>``: 256 random bits after a public id. The store keeps its
SHA-256 only; verifying hashes what the client sent and compares in constant time. A
verified token is trusted from memory for ``cache_s`` (1 s), so a hot path pays one hash and
one dict look-up, and a revocation reaches every server sharing the store within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque

from pyfaas.model import Forbidden, InvalidRequest, NotFound, TooManyRequests, Unauthorized
from pyfaas.model.access import TOKEN_PREFIX, ApiToken, TokenRequest
from pyfaas.store.access import TokenStore
from pyfaas.store.shared import ChangeFeed

_MAX_CACHED = 10_000
_MAX_ADDRESSES = 65_536


class FailedAuthGuard:
    """Counts failed authentications per client address in a sliding window; an address
    with ``limit`` of them in the last ``window_s`` is refused until the oldest ages out.
    In memory, per server process; bounded in the addresses it remembers."""

    def __init__(self, limit: int = 10, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str) -> float | None:
        """Seconds until ``address`` may try again, or None when it may now."""
        if not self._failures:
            return None
        times = self._failures.get(address)
        if times is None:
            return None
        now = time.monotonic()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        if len(times) < self.limit:
            return None
        return times[0] + self.window_s - now

    def failed(self, address: str) -> None:
        if address not in self._failures and len(self._failures) >= _MAX_ADDRESSES:
            self._forget_quiet()
        times = self._failures.setdefault(address, deque(maxlen=self.limit))
        times.append(time.monotonic())

    def check(self, address: str) -> None:
        """Raise TooManyRequests (too_many_failed_auth) while ``address`` is refused."""
        wait = self.retry_after(address)
        if wait is not None:
            exc = TooManyRequests(
                f"too many failed authentication attempts from {address}: "
                f"{self.limit} in {self.window_s:g} s; try again in {wait:.0f} s",
                retry_after_s=max(1.0, wait),
            )
            exc.code = "too_many_failed_auth"
            raise exc

    def _forget_quiet(self) -> None:
        cutoff = time.monotonic() - self.window_s
        for address in [a for a, t in self._failures.items() if not t or t[-1] <= cutoff]:
            del self._failures[address]
        if len(self._failures) >= _MAX_ADDRESSES:
            self._failures.clear()  # a flood of addresses: start over rather than grow


class TokenService:
    """API tokens: create (the plain token is returned once), list, revoke, verify."""

    def __init__(
        self,
        store: TokenStore,
        guard: FailedAuthGuard,
        *,
        enabled: bool,
        cache_s: float = 1.0,
        changes: ChangeFeed | None = None,
    ) -> None:
        self._store = store
        self._changes = changes  # other servers forget a revoked token at once
        self.guard = guard
        self._enabled = enabled
        self._cache_s = cache_s
        self._verified: dict[bytes, tuple[ApiToken, float]] = {}

    async def create(self, fields: dict[str, object]) -> tuple[ApiToken, str]:
        """Store a new token; return it and the plain token (shown once, never stored).

        Raises InvalidRequest (access_control_off, invalid_token_name, invalid_scope,
        invalid_token_functions, unknown_field).
        """
        if not self._enabled:
            raise InvalidRequest(
                "this server has no API token, so it checks none: start it with PYFAAS_TOKEN "
                "(the admin token) to turn access control on, then create tokens",
                code="access_control_off",
            )
        wanted = TokenRequest.parse(fields)
        token_id = secrets.token_hex(8)
        plain = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        token = ApiToken(
            id=token_id,
            name=wanted.name,
            scopes=wanted.scopes,
            functions=wanted.functions,
            created_at=time.time(),
        )
        await self._store.create(token, _sha256(plain.encode()))
        return token, plain

    async def list(self) -> list[ApiToken]:
        return await self._store.list()

    async def revoke(self, token_id: str) -> ApiToken:
        """Revoke at once on this server and, through the change feed, on the others
        sharing its database (at the latest after ``cache_s``).

        Raises NotFound (token_not_found). Revoking a revoked token changes nothing.
        """
        token = await self._store.revoke(token_id, time.time())
        if token is None:
            raise NotFound(
                f"no API token has id {token_id!r}; `pyfaas token ls` lists them",
                code="token_not_found",
            )
        self._verified = {k: v for k, v in self._verified.items() if v[0].id != token_id}
        if self._changes is not None:
            await self._changes.publish("token")
        return token

    def forget(self) -> None:
        """Another server revoked a token: verify every token again."""
        self._verified.clear()

    async def authenticate(
        self, authorization: bytes, address: str, *, count_failure: bool = True
    ) -> ApiToken:
        """The token an ``Authorization: Bearer ...`` header value holds.

        Raises TooManyRequests (too_many_failed_auth) while ``address`` is refused, and
        Unauthorized (unauthorized, token_revoked), counting the failure against ``address``.
        """
        self.guard.check(address)
        hit = self._verified.get(authorization)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        token = await self._verify(authorization)
        if (token is None or token.revoked_at is not None) and count_failure:
            self.guard.failed(address)
        if token is None:
            raise Unauthorized("the API token is not valid")
        if token.revoked_at is not None:
            raise Unauthorized(
                f"the API token {token.id!r} ({token.name}) was revoked; ask an admin for a "
                "new one (`pyfaas token create`)",
                code="token_revoked",
            )
        if len(self._verified) >= _MAX_CACHED:
            self._verified.clear()
        self._verified[authorization] = (token, time.monotonic() + self._cache_s)
        return token

    async def _verify(self, authorization: bytes) -> ApiToken | None:
        scheme, _, plain = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not plain.startswith(TOKEN_PREFIX.encode()):
            return None
        token_id = plain[len(TOKEN_PREFIX) :].split(b"_", 1)[0]
        if len(token_id) != 16:
            return None
        found = await self._store.find(token_id.decode("ascii", "replace"))
        if found is None:
            return None
        token, stored = found
        if not hmac.compare_digest(_sha256(plain), stored):
            return None
        return token


def authorize(token: ApiToken, scope: str | None, function: str | None) -> None:
    """Raise Forbidden unless ``token`` may use a route needing ``scope`` (None: any valid
    token) on ``function`` (None: a route that names no function).

    Codes: insufficient_scope, function_not_allowed.
    """
    if scope is None:
        return
    if scope not in token.granted:
        raise Forbidden(
            f"the API token {token.id!r} has scopes {', '.join(token.scopes)}; this needs "
            f"{scope} (or a scope that includes it: admin > deploy > read)"
        )
    if token.functions is not None and (function is None or function not in token.functions):
        where = "this route, which names no function" if function is None else repr(function)
        raise Forbidden(
            f"the API token {token.id!r} is limited to the functions "
            f"{', '.join(token.functions)}; it may not reach {where}",
            code="function_not_allowed",
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
