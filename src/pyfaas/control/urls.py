"""Function URLs: their configurations, and serving HTTP requests through them.

A request to ``/fn/{name}[/{qualifier}]/{path...}`` is routed to a URL configuration, checked
(auth type, CORS preflight, size), turned into Lambda's payload format 2.0 event and run
through the same path as a synchronous invoke (admission, executor, logs with REPORT lines);
the result becomes the HTTP response.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson

from pyfaas.control.access import TokenService, authorize
from pyfaas.control.cors import is_preflight, preflight_response, with_cors
from pyfaas.control.functions import FunctionService
from pyfaas.control.invocations import InvocationService
from pyfaas.control.url_payloads import http_response, request_event
from pyfaas.control.versions import VersionService
from pyfaas.model import (
    Forbidden,
    FunctionNotFound,
    FunctionVersion,
    InvalidRequest,
    InvocationRequest,
    InvocationResult,
    Limits,
    NotFound,
    PayloadTooLarge,
    PyfaasError,
    TooManyRequests,
    Unauthorized,
    new_request_id,
)
from pyfaas.model.access import INVOKE
from pyfaas.model.urls import (
    AUTH_NONE,
    AUTH_TOKEN,
    CorsConfig,
    FunctionUrlConfig,
    HttpRequest,
    HttpResponse,
    InvalidFunctionResponse,
    validate_auth_type,
)
from pyfaas.model.versions import check_qualifier, split_qualifier
from pyfaas.store.shared import ChangeFeed
from pyfaas.store.urls import UrlStore
from pyfaas.telemetry.tracing import valid_traceparent

# How long a server trusts the URL configurations it read (others sharing a PostgreSQL may
# change them); changes made through this server are seen at once.
CONFIG_TTL_S = 1.0
_FIELDS = {"auth_type", "cors", "qualifier"}
_TIMED_OUT = "Sandbox.Timedout"

BodyReader = Callable[[int], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class _Loaded:
    fv: FunctionVersion
    at: float
    configs: tuple[FunctionUrlConfig, ...]


class FunctionUrlService:
    """Creates, reads, changes and deletes function URLs, and serves requests to them."""

    def __init__(
        self,
        store: UrlStore,
        functions: FunctionService,
        invocations: InvocationService,
        limits: Limits,
        *,
        token: str | None,
        account_id: str = "000000000000",
        tokens: TokenService | None = None,
        versions: VersionService | None = None,
        changes: ChangeFeed | None = None,
    ) -> None:
        self._store = store
        self._changes = changes  # other servers forget the URLs of a changed function
        self._versions = versions  # None: URLs are for $LATEST only
        self._functions = functions
        self._invocations = invocations
        self._limits = limits
        self._expected = f"Bearer {token}".encode() if token else None
        self._account_id = account_id
        self._loaded: dict[str, _Loaded] = {}
        self._tokens = tokens  # API tokens with the invoke scope may call TOKEN URLs

    def forget(self, name: str | None = None) -> None:
        """Another server changed the URLs of ``name`` (None: of any function)."""
        if name is None:
            self._loaded.clear()
        else:
            self._loaded.pop(name, None)

    async def _changed(self, name: str) -> None:
        self._loaded.pop(name, None)
        if self._changes is not None:
            await self._changes.publish("url", name)

    # --- configuration ---------------------------------------------------------------------

    async def create(self, name: str, fields: dict[str, Any]) -> FunctionUrlConfig:
        """Give ``name`` a URL. ``fields``: auth_type (required), cors, qualifier.

        Raises InvalidRequest (invalid_auth_type, invalid_cors, invalid_qualifier,
        unknown_field), FunctionNotFound, Conflict (function_url_exists).
        """
        _check_fields(fields)
        if "auth_type" not in fields:
            raise InvalidRequest(
                "auth_type is required: NONE (public) or TOKEN (the server's API token)",
                code="invalid_auth_type",
            )
        auth_type = self._auth_type(fields["auth_type"])
        qualifier = self._check_qualifier(fields.get("qualifier"))
        cors = _cors(fields.get("cors"))
        if qualifier is not None and self._versions is not None:
            await self._functions.get(name)
            await self._versions.check_target(name, qualifier)
        now = time.time()
        config = FunctionUrlConfig(
            function=name,
            qualifier=qualifier,
            url_id=secrets.token_hex(16),
            auth_type=auth_type,
            cors=cors,
            created_at=now,
            updated_at=now,
        )
        await self._store.create(config)
        await self._changed(name)
        return config

    async def get(self, name: str, qualifier: str | None = None) -> FunctionUrlConfig:
        """Raises FunctionNotFound, NotFound (function_url_not_found), InvalidRequest."""
        qualifier = self._check_qualifier(qualifier)
        await self._functions.get(name)
        for config in await self._store.list_for(name):
            if config.qualifier == qualifier:
                return config
        raise _no_url(name)

    async def list_configs(self, name: str) -> list[FunctionUrlConfig]:
        """Every URL of ``name``, the unqualified one first. Raises FunctionNotFound."""
        await self._functions.get(name)
        return await self._store.list_for(name)

    async def update(self, name: str, fields: dict[str, Any]) -> FunctionUrlConfig:
        """Change auth_type and/or cors (``cors: null`` removes CORS); the rest stays.

        Raises as :meth:`create`, and NotFound (function_url_not_found).
        """
        _check_fields(fields)
        qualifier = self._check_qualifier(fields.get("qualifier"))
        values: dict[str, Any] = {"updated_at": time.time()}
        if "auth_type" in fields:
            values["auth_type"] = self._auth_type(fields["auth_type"])
        if "cors" in fields:
            values["cors"] = _cors(fields["cors"])
        if len(values) == 1:
            raise InvalidRequest(
                "nothing to change: give auth_type and/or cors", code="invalid_request"
            )
        await self._functions.get(name)
        updated = await self._store.update(name, qualifier, values)
        await self._changed(name)
        if updated is None:
            raise _no_url(name)
        return updated

    async def delete(self, name: str, qualifier: str | None = None) -> None:
        """Raises FunctionNotFound, NotFound (function_url_not_found), InvalidRequest."""
        qualifier = self._check_qualifier(qualifier)
        await self._functions.get(name)
        deleted = await self._store.delete(name, qualifier)
        await self._changed(name)
        if not deleted:
            raise _no_url(name)

    def _check_qualifier(self, qualifier: object) -> str | None:
        if self._versions is None:
            return _check_qualifier(qualifier)
        if qualifier is None:
            return None
        if not isinstance(qualifier, str):
            raise InvalidRequest(
                f"qualifier must be a string (a version number or alias), got {qualifier!r}",
                code="invalid_qualifier",
            )
        _, qualifier = split_qualifier(f":{qualifier}")
        if qualifier is not None:
            check_qualifier(qualifier)
        return qualifier

    def _auth_type(self, value: object) -> str:
        auth_type = validate_auth_type(value)
        if auth_type == AUTH_TOKEN and self._expected is None:
            raise InvalidRequest(
                "auth_type TOKEN needs the server's API token, and this server has none: "
                "start it with PYFAAS_TOKEN (or --token), or make the URL public (NONE)",
                code="invalid_auth_type",
            )
        return auth_type

    # --- serving -----------------------------------------------------------------------------

    async def handle(self, name: str, request: HttpRequest, read_body: BodyReader) -> HttpResponse:
        """Serve one HTTP request to ``/fn/{name}`` + ``request.raw_path``.

        ``read_body(limit)`` is called only once the caller may call the URL. Raises
        FunctionNotFound, NotFound (function_url_not_found), Unauthorized, PayloadTooLarge,
        TooManyRequests. Without a valid token on a server that has one, only public URLs
        answer: anything else is 401, so names cannot be probed.
        """
        try:
            fv = await self._functions.resolve(name)
        except FunctionNotFound:
            if not await self._may_know(request, name):
                raise _unauthorized() from None
            raise
        config, path = route(await self._configs(name, fv), request.raw_path)
        if config is None:
            raise _no_url(name) if await self._may_know(request, name) else _unauthorized()
        request = dataclasses.replace(request, raw_path=path)
        if config.qualifier is not None and self._versions is not None:
            try:
                fv = await self._versions.resolve(f"{name}:{config.qualifier}")
            except NotFound:  # its alias or version was deleted, and the URL with it
                known = await self._may_know(request, name)
                raise _no_url(name) if known else _unauthorized() from None
        if config.cors is not None and is_preflight(request):
            return preflight_response(config.cors, request)
        if config.auth_type != AUTH_NONE:
            if self._expected is None:
                raise Unauthorized(
                    "this function URL requires the server's API token, and the server was "
                    "started without one: start it with PYFAAS_TOKEN, or make the URL public "
                    "(`pyfaas url update NAME --auth-type NONE`)"
                )
            denial = await self._denial(request, name)
            if denial is not None:
                raise denial
        limit = self._limits.sync_payload_bytes
        request = dataclasses.replace(request, body=await read_body(limit))
        request_id = new_request_id()
        event = request_event(
            request,
            config=config,
            request_id=request_id,
            account_id=self._account_id,
            hide_authorization=config.auth_type == AUTH_TOKEN,
        )
        payload = orjson.dumps(event)
        if len(payload) > limit:
            raise PayloadTooLarge(
                f"the request is {len(payload)} bytes as a function URL event (a binary "
                f"body is base64-encoded, a third larger); the limit is {limit} bytes"
            )
        traceparent = next((v for k, v in request.headers if k == "traceparent"), None)
        result = await self._invocations.run(
            fv,
            InvocationRequest(
                request_id=request_id,
                payload=payload,
                invoked_function_arn=fv.arn,
                traceparent=valid_traceparent(traceparent),
            ),
            trigger="http",
        )
        response = _response_of(result)
        if config.cors is not None:
            response = with_cors(config.cors, request, response)
        response.headers.append(("x-pyfaas-request-id", request_id))
        return response

    async def error_headers(self, name: str, request: HttpRequest) -> list[tuple[str, str]]:
        """The CORS headers an error answer to ``request`` needs so that a browser page can
        read it (a 429 or 413 of a URL with CORS settings); none for other errors."""
        try:
            fv = await self._functions.resolve(name)
        except FunctionNotFound:
            return []
        config, _ = route(await self._configs(name, fv), request.raw_path)
        if config is None or config.cors is None:
            return []
        if config.auth_type != AUTH_NONE and (
            self._expected is None or await self._denial(request, name, count=False) is not None
        ):
            return []  # tells a stranger nothing about a URL they may not call
        return with_cors(config.cors, request, HttpResponse(0, [])).headers

    async def _may_know(self, request: HttpRequest, name: str) -> bool:
        """Whether the caller may learn that ``name`` or its URL does not exist."""
        return self._expected is None or await self._denial(request, name) is None

    async def _denial(
        self, request: HttpRequest, name: str, *, count: bool = True
    ) -> PyfaasError | None:
        """None when the caller holds the server's token or an API token that may invoke
        ``name``; else the error to answer (401, 403, or 429 for a client that failed too
        often). ``count``: a wrong token counts against the client's address."""
        given = (request.header("authorization") or "").encode("latin-1", "replace")
        if not given:
            return _unauthorized()
        if self._tokens is not None:
            try:
                self._tokens.guard.check(request.source_ip)
            except TooManyRequests as exc:
                return exc
        if self._expected is not None and hmac.compare_digest(given, self._expected):
            return None
        if self._tokens is None:
            return _unauthorized()
        try:
            token = await self._tokens.authenticate(given, request.source_ip, count_failure=count)
            authorize(token, INVOKE, name)
        except (Unauthorized, Forbidden, TooManyRequests) as exc:
            return exc
        return None

    async def _configs(self, name: str, fv: FunctionVersion) -> tuple[FunctionUrlConfig, ...]:
        """The URL configurations of ``name``, cached while its version stays the same (a
        deleted and recreated function is a new version: its URLs are read again)."""
        now = time.monotonic()
        loaded = self._loaded.get(name)
        if loaded is None or loaded.fv is not fv or now - loaded.at > CONFIG_TTL_S:
            loaded = _Loaded(fv, now, tuple(await self._store.list_for(name)))
            self._loaded[name] = loaded
        return loaded.configs


def route(
    configs: tuple[FunctionUrlConfig, ...] | list[FunctionUrlConfig], raw_path: str
) -> tuple[FunctionUrlConfig | None, str]:
    """(URL configuration, path the function sees) for ``raw_path``, what follows
    ``/fn/{name}``. A first segment naming a qualifier that has a URL selects that URL;
    anything else is the path of the unqualified URL. The path is ``/`` at least."""
    by_qualifier = {c.qualifier: c for c in configs}
    if raw_path.startswith("/"):
        segment, _, rest = raw_path[1:].partition("/")
        qualified = by_qualifier.get(unquote(segment)) if segment else None
        if qualified is not None:
            return qualified, "/" + rest
    return by_qualifier.get(None), raw_path or "/"


def _response_of(result: InvocationResult) -> HttpResponse:
    """The HTTP response for an invocation: the function's, or 502/504 for its failures.

    A failure answers Lambda's error object without the stack trace (a public URL would
    show it to anyone); the function's log has it all, under X-Pyfaas-Request-Id.
    """
    if result.function_error:
        try:
            error = orjson.loads(result.body)
        except orjson.JSONDecodeError:
            error = {}
        if not isinstance(error, dict):
            error = {}
        error_type = str(error.get("errorType", "Runtime.Unknown"))
        body = {"errorMessage": error.get("errorMessage", ""), "errorType": error_type}
        return HttpResponse(
            504 if error_type == _TIMED_OUT else 502,
            [
                ("content-type", "application/json"),
                ("x-pyfaas-function-error", result.function_error),
            ],
            orjson.dumps(body),
        )
    try:
        return http_response(result.body)
    except InvalidFunctionResponse as exc:
        return HttpResponse(
            exc.status, [("content-type", "application/json")], orjson.dumps(exc.to_dict())
        )


def _check_fields(fields: dict[str, Any]) -> None:
    unknown = sorted(set(fields) - _FIELDS)
    if unknown:
        raise InvalidRequest(
            f"unknown field(s): {', '.join(unknown)}; a function URL has auth_type, cors, "
            "qualifier",
            code="unknown_field",
        )


def _check_qualifier(qualifier: object) -> str | None:
    """Without a VersionService every URL is the unqualified function's."""
    if qualifier is not None:
        raise InvalidRequest(
            f"qualifier {qualifier!r}: this server has no published versions or aliases, so "
            "a URL is for the function itself; leave the qualifier out",
            code="invalid_qualifier",
        )
    return None


def _cors(value: object) -> CorsConfig | None:
    return None if value is None else CorsConfig.from_dict(value)


def _no_url(name: str) -> NotFound:
    return NotFound(
        f"function {name!r} has no URL; create one with POST /v1/functions/{name}/url "
        f"(`pyfaas url create {name} --auth-type NONE`)",
        code="function_url_not_found",
    )


def _unauthorized() -> Unauthorized:
    return Unauthorized(
        "this function URL requires an API token: send 'Authorization: Bearer <token>' "
        "with the server's token or one with the invoke scope for this function"
    )
