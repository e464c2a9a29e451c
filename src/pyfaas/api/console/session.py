"""The console's session: a token in an HttpOnly cookie, checked exactly as the API checks
``Authorization: Bearer``.

:class:`ConsoleMiddleware` sits outside the API's token check. For paths under
``/console/`` it turns the cookie into an ``Authorization`` header (so whatever check the
API applies, the console's pages and data calls get the same), maps ``/console/api/v1/...``
onto ``/v1/...`` (the console's JavaScript uses the API itself), sends a browser without a
session to the login page, and serves the few public paths (login, logout, static files)
without a token. The cookie is scoped to ``/console``: function URLs (``/fn/...``) never
see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pyfaas.api.access import GRANTED
from pyfaas.api.errors import error_response
from pyfaas.model import InvalidRequest
from pyfaas.model.access import READ

COOKIE = "pyfaas_console"
PREFIX = "/console"
API_PREFIX = "/console/api"
LOGIN = "/console/login"
PUBLIC = frozenset({PREFIX, LOGIN, "/console/logout"})
STATIC = "/console/static/"
_CONTEXT = "pyfaas.console"


@dataclass(frozen=True, slots=True)
class ConsoleContext:
    """What the console knows about a request: whether the server asks for a token."""

    token_required: bool


def context(request: Request) -> ConsoleContext:
    found = request.scope.get(_CONTEXT)
    return found if isinstance(found, ConsoleContext) else ConsoleContext(token_required=False)


def can_write(request: Request) -> bool:
    """Whether the caller may change things (invoke, redrive): pages hide write buttons
    otherwise (the API refuses the calls anyway). The server's own token, or no token on the
    server: yes; an API token: if it has a scope beyond read."""
    granted = getattr(request.state, GRANTED, None)
    return granted is None or bool(granted - {READ})


class ConsoleMiddleware:
    """Cookie sessions and the ``/console/api`` mapping (see the module's docstring).

    ``public`` serves the paths that need no token; everything else under ``/console/``
    goes on to ``app`` (the API's token check, then the routes)."""

    def __init__(self, app: ASGIApp, *, public: ASGIApp, token_required: bool) -> None:
        self.app = app
        self.public = public
        self.context = ConsoleContext(token_required=token_required)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        scope = {**scope, _CONTEXT: self.context}
        if path in PUBLIC or path.startswith(STATIC):
            await self.public(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        has_header = any(key == b"authorization" for key, _ in headers)
        token = None if has_header else _cookie_token(headers)
        if token is not None:
            scope["headers"] = [*headers, (b"authorization", b"Bearer " + token.encode())]
        if path.startswith(API_PREFIX + "/"):
            target = path[len(API_PREFIX) :]
            if not target.startswith("/v1/"):
                response = error_response(
                    404, "route_not_found", f"no such endpoint: {path} (the console maps "
                    f"{API_PREFIX}/v1/... onto the API's /v1/...)"
                )  # fmt: skip
                await response(scope, receive, send)
                return
            raw: bytes = scope.get("raw_path") or path.encode()
            scope["path"] = target
            scope["raw_path"] = raw[len(API_PREFIX) :]
            await self.app(scope, receive, send)
            return
        if not self.context.token_required or not _navigation(scope):
            # Scripts' requests (charts, logs) get the API's 401 and decide for themselves.
            await self.app(scope, receive, send)
            return
        if not has_header and token is None:
            await _to_login(path, expired=False)(scope, receive, send)
            return
        await self.app(scope, receive, _LoginOn401(send, path))


def _navigation(scope: Scope) -> bool:
    """A browser loading a page (GET, accepting HTML), not a script fetching data."""
    if scope["method"] not in ("GET", "HEAD"):
        return False
    accept = next((v for k, v in scope["headers"] if k == b"accept"), b"")
    return b"text/html" in accept


def _cookie_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is no session
                return None
            morsel = jar.get(COOKIE)
            if morsel is not None and morsel.value:
                return morsel.value
    return None


def _to_login(path: str, *, expired: bool) -> Response:
    query = f"?next={quote(path)}" + ("&expired=1" if expired else "")
    response = Response(status_code=303, headers={"Location": LOGIN + query})
    if expired:
        clear_cookie(response)
    return response


class _LoginOn401:
    """Wraps ``send`` of a page request: a 401 from the token check (a stale or wrong
    cookie) becomes a redirect to the login page, which says why."""

    def __init__(self, send: Send, path: str) -> None:
        self._send = send
        self._path = path
        self._swallow = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 401:
            self._swallow = True
            redirect = _to_login(self._path, expired=True)
            await self._send(
                {
                    "type": "http.response.start",
                    "status": redirect.status_code,
                    "headers": redirect.raw_headers,
                }
            )
            await self._send({"type": "http.response.body", "body": b""})
            return
        if not self._swallow:
            await self._send(message)


def set_cookie(response: Response, token: str, *, secure: bool) -> None:
    response.set_cookie(COOKIE, token, path=PREFIX, httponly=True, samesite="strict", secure=secure)


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")


async def create_session(request: Request) -> Response:
    """``POST /console/session`` with ``Authorization: Bearer <token>``: reached only when
    the API's token check passed; keeps the token in the console's cookie.

    Raises InvalidRequest (token_not_required) on a server without a token."""
    if not context(request).token_required:
        raise InvalidRequest(
            "this server has no API token: open /console/ without logging in",
            code="token_not_required",
        )
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme != "Bearer" or not token:
        raise InvalidRequest(
            "send the token as 'Authorization: Bearer <token>'", code="invalid_request"
        )
    response = Response(status_code=204)
    set_cookie(response, token, secure=request.url.scheme == "https")
    return response
