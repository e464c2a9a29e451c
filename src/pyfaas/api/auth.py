"""API-token authentication, as pure ASGI middleware (no per-request task overhead)."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from pyfaas.api.errors import error_response
from pyfaas.api.lambda_api import LAMBDA_PATH_PREFIXES


class TokenAuthMiddleware:
    """Lets a request through only if it carries ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Function URLs check their own auth type: public ones answer anyone. The Lambda
        # API checks SigV4 signatures instead of the token.
        path = scope["path"] if scope["type"] == "http" else ""
        if not path or path.startswith("/fn/") or path.startswith(LAMBDA_PATH_PREFIXES):
            await self.app(scope, receive, send)
            return
        given = b""
        for key, value in scope["headers"]:
            if key == b"authorization":
                given = value
                break
        if hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        message = (
            "this server requires an API token: send 'Authorization: Bearer <token>' "
            "(the CLI reads it from --token or PYFAAS_TOKEN)"
            if not given
            else "the API token is not valid"
        )
        response = error_response(401, "unauthorized", message)
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)
