"""Who may do what: header size limits, the server's admin token, API tokens with scopes,
and a refusal for clients that keep guessing. Pure ASGI middleware (no task per request).

Each route needs a scope (ROUTE_SCOPES); a route missing from the table needs ``admin``, so
a new route is closed until it is classified. Function URLs (``/fn/...``) check their own
auth type (control/urls.py), the Lambda API's dated paths their SigV4 signatures
(api/lambda_api): only the header size limit applies to them here.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pyfaas.api.errors import error_response
from pyfaas.api.lambda_api import LAMBDA_PATH_PREFIXES as LAMBDA_PATHS
from pyfaas.control.access import FailedAuthGuard, authorize
from pyfaas.model import PyfaasError, ServiceUnavailable, TooManyRequests, Unauthorized
from pyfaas.model.access import ADMIN, DEPLOY, INVOKE, READ

_FN = "/v1/functions/{name}"
# request.state key: the scopes an API token grants (absent: the server's token, or no token).
GRANTED = "pyfaas_granted_scopes"
_MAX_REMEMBERED = 4096
# (path template, method) -> the scope a token needs; None: any valid token.
ROUTE_SCOPES: dict[tuple[str, str], str | None] = {
    (f"{_FN}/invoke", "POST"): INVOKE,
    (f"{_FN}/invoke-batch", "POST"): INVOKE,
    ("/v1/health", "GET"): None,
    ("/v1/openapi.json", "GET"): None,
    ("/v1/functions", "GET"): READ,
    ("/v1/functions", "POST"): DEPLOY,
    (_FN, "GET"): READ,
    (_FN, "PUT"): DEPLOY,
    (_FN, "PATCH"): DEPLOY,
    (_FN, "DELETE"): DEPLOY,
    (f"{_FN}/logs", "GET"): READ,
    (f"{_FN}/logs/stream", "GET"): READ,
    ("/v1/invocations", "GET"): READ,
    ("/v1/invocations/{request_id}", "GET"): READ,
    ("/v1/dlq", "GET"): READ,
    ("/v1/dlq/{request_id}", "GET"): READ,
    ("/v1/dlq/redrive", "POST"): DEPLOY,
    (f"{_FN}/url", "GET"): READ,
    (f"{_FN}/url", "POST"): DEPLOY,
    (f"{_FN}/url", "PATCH"): DEPLOY,
    (f"{_FN}/url", "DELETE"): DEPLOY,
    (f"{_FN}/schedules", "GET"): READ,
    (f"{_FN}/schedules", "POST"): DEPLOY,
    (f"{_FN}/schedules/{{id}}", "GET"): READ,
    (f"{_FN}/schedules/{{id}}", "PATCH"): DEPLOY,
    (f"{_FN}/schedules/{{id}}", "DELETE"): DEPLOY,
    ("/v1/usage", "GET"): READ,
    ("/metrics", "GET"): READ,
    ("/v1/event-source-mappings", "GET"): READ,
    ("/v1/event-source-mappings", "POST"): DEPLOY,
    ("/v1/event-source-mappings/{uuid}", "GET"): READ,
    ("/v1/event-source-mappings/{uuid}", "PATCH"): DEPLOY,
    ("/v1/event-source-mappings/{uuid}", "DELETE"): DEPLOY,
    ("/v1/tokens", "GET"): ADMIN,
    ("/v1/tokens", "POST"): ADMIN,
    ("/v1/tokens/{id}", "DELETE"): ADMIN,
    ("/v1/secrets", "GET"): ADMIN,
    ("/v1/secrets/{name}", "GET"): ADMIN,
    ("/v1/secrets/{name}", "PUT"): ADMIN,
    ("/v1/secrets/{name}", "DELETE"): ADMIN,
    # The stored code: what app deploys read back to roll a function back.
    (f"{_FN}/code", "GET"): DEPLOY,
    (f"{_FN}/versions", "POST"): DEPLOY,
    (f"{_FN}/versions", "GET"): READ,
    (f"{_FN}/versions/{{version}}", "GET"): READ,
    (f"{_FN}/versions/{{version}}", "DELETE"): DEPLOY,
    (f"{_FN}/aliases", "GET"): READ,
    (f"{_FN}/aliases/{{alias}}", "PUT"): DEPLOY,
    (f"{_FN}/aliases/{{alias}}", "GET"): READ,
    (f"{_FN}/aliases/{{alias}}", "PATCH"): DEPLOY,
    (f"{_FN}/aliases/{{alias}}", "DELETE"): DEPLOY,
    (f"{_FN}/aliases/{{alias}}/rollout", "POST"): DEPLOY,
    (f"{_FN}/aliases/{{alias}}/rollout", "GET"): READ,
    ("/v1/isolation", "GET"): READ,
    # The console: its pages read; logging in (POST /console/session) takes any valid token.
    # /console, /console/login and /console/logout are served by the console's middleware
    # without a token (they only redirect or show the login form).
    ("/console/", "GET"): READ,
    ("/console/functions/{name}", "GET"): READ,
    ("/console/functions/{name}/charts", "GET"): READ,
    ("/console/usage", "GET"): READ,
    ("/console/async", "GET"): READ,
    ("/console/session", "POST"): None,
    ("/console", "GET"): None,
    ("/console/login", "GET"): None,
    ("/console/logout", "GET"): None,
}


class AccessMiddleware:
    """Refuses requests whose headers are too large (431), and, on a server with a token,
    requests without a valid one (401), with one whose scopes or functions do not cover
    the route (403), and every token-bearing request of an address that failed too often
    (429). The server's own token (PYFAAS_TOKEN) is the admin token and costs one compare.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        routes: Sequence[BaseRoute],
        guard: FailedAuthGuard,
        max_header_bytes: int,
    ) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode() if token else None
        self._routes = [r for r in routes if isinstance(r, Route)]
        self._guard = guard
        self._max_header_bytes = max_header_bytes
        self._needed: dict[tuple[str, str], tuple[str | None, str | None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        size = sum(len(k) + len(v) + 4 for k, v in headers)
        if size > self._max_header_bytes:
            response = error_response(
                431,
                "headers_too_large",
                f"the request headers are {size} bytes; the limit is "
                f"{self._max_header_bytes} bytes (send large values in the body)",
            )
            await response(scope, receive, send)
            return
        # Function URLs check their own auth type; the Lambda API checks SigV4 signatures.
        path = scope["path"]
        if self._expected is None or path.startswith("/fn/") or path.startswith(LAMBDA_PATHS):
            await self.app(scope, receive, send)
            return
        given = b""
        for key, value in headers:
            if key == b"authorization":
                given = value
                break
        try:
            await self._check(scope, given)
        except PyfaasError as exc:
            await _refusal(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _check(self, scope: Scope, given: bytes) -> None:
        if not given:
            raise Unauthorized(
                "this server requires an API token: send 'Authorization: Bearer <token>' "
                "(the CLI reads it from --token or PYFAAS_TOKEN)"
            )
        client = scope.get("client")
        address = client[0] if client else ""
        assert self._expected is not None
        if hmac.compare_digest(given, self._expected):
            self._guard.check(address)
            return
        services = getattr(scope["app"].state, "services", None)
        if services is None or services.tokens is None:
            self._guard.check(address)
            raise ServiceUnavailable(
                "the server is starting or stopping, and only its own token works meanwhile; "
                "retry in a moment"
            )
        token = await services.tokens.authenticate(given, address)
        needed, function = self._needs(scope)
        authorize(token, needed, function)
        # What the caller may do, for pages that hide what it may not (the console).
        scope.setdefault("state", {})[GRANTED] = frozenset(token.granted)

    def _needs(self, scope: Scope) -> tuple[str | None, str | None]:
        """The scope the request's route needs and the function it names (None, None for
        a request no route matches: it gets its 404 or 405). Matching every route costs
        ~3 us a route, so answers are remembered per (method, path)."""
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        key = (method, scope["path"])
        found = self._needed.get(key)
        if found is not None:
            return found
        found = (None, None)
        for route in self._routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                function = child["path_params"].get("name")
                found = (ROUTE_SCOPES.get((route.path, method), ADMIN), function)
                break
        if len(self._needed) >= _MAX_REMEMBERED:
            self._needed.clear()
        self._needed[key] = found
        return found


def _refusal(exc: PyfaasError) -> Response:
    response = error_response(exc.status, exc.code, exc.message)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, TooManyRequests):
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
    return response
