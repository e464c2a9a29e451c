"""Function URLs: their configuration (auth type, CORS) and the HTTP exchanges they carry.

A function URL gives a function an HTTP endpoint, ``/fn/{name}[/{qualifier}]/{path...}``,
like Lambda's function URLs. Its configuration says who may call it (``NONE``: anyone;
``TOKEN``: holders of the server's API token) and which browser origins may (CORS).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pyfaas.model.errors import InvalidRequest, PyfaasError

AUTH_NONE = "NONE"
AUTH_TOKEN = "TOKEN"
AUTH_TYPES = (AUTH_NONE, AUTH_TOKEN)

# Lambda's limits on a function URL's CORS settings.
CORS_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "*")
MAX_ORIGINS = 100
MAX_ORIGIN_LENGTH = 253
MAX_HEADERS = 100
MAX_HEADER_LENGTH = 1024
MAX_AGE_S = 86400

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#\s]+$", re.IGNORECASE)
_CORS_FIELDS = {
    "allow_origins",
    "allow_methods",
    "allow_headers",
    "expose_headers",
    "max_age",
    "allow_credentials",
}


def _cors_error(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_cors")


def _string_list(data: dict[str, Any], key: str, limit: int, length: int) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _cors_error(f"cors.{key} must be a list of non-empty strings")
    if len(value) > limit:
        raise _cors_error(f"cors.{key} has {len(value)} entries; at most {limit} are allowed")
    for item in value:
        if len(item) > length:
            raise _cors_error(f"cors.{key} entry {item[:40]!r}... is over {length} characters")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class CorsConfig:
    """Lambda's CORS settings of a function URL (AllowOrigins, AllowMethods, ...).

    Origins are ``*`` or ``scheme://host[:port]``; methods are HTTP methods or ``*``;
    ``max_age`` is seconds (0-86400) a browser may cache a preflight answer.
    """

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    @classmethod
    def from_dict(cls, data: object) -> CorsConfig:
        """Parse and validate; raises InvalidRequest (code invalid_cors) saying what to fix."""
        if not isinstance(data, dict):
            raise _cors_error(
                "cors must be an object with allow_origins, allow_methods, allow_headers, "
                "expose_headers, max_age, allow_credentials (or null for no CORS)"
            )
        unknown = sorted(set(data) - _CORS_FIELDS)
        if unknown:
            raise _cors_error(
                f"unknown cors field(s): {', '.join(unknown)}; known: "
                + ", ".join(sorted(_CORS_FIELDS))
            )
        origins = _string_list(data, "allow_origins", MAX_ORIGINS, MAX_ORIGIN_LENGTH)
        for origin in origins:
            if origin != "*" and not _ORIGIN.match(origin):
                raise _cors_error(
                    f"cors.allow_origins entry {origin!r} must be '*' or an origin like "
                    "'https://example.com' (scheme and host, optional port, no path)"
                )
        methods = tuple(m.upper() for m in _string_list(data, "allow_methods", 6, 6))
        for method in methods:
            if method not in CORS_METHODS:
                raise _cors_error(
                    f"cors.allow_methods entry {method!r} is not one of " + ", ".join(CORS_METHODS)
                )
        headers = {}
        for key in ("allow_headers", "expose_headers"):
            headers[key] = _string_list(data, key, MAX_HEADERS, MAX_HEADER_LENGTH)
            for name in headers[key]:
                if name != "*" and not _HEADER_NAME.match(name):
                    raise _cors_error(f"cors.{key} entry {name!r} is not an HTTP header name")
        max_age = data.get("max_age")
        if max_age is not None and (
            not isinstance(max_age, int)
            or isinstance(max_age, bool)
            or not 0 <= max_age <= MAX_AGE_S
        ):
            raise _cors_error(f"cors.max_age must be a whole number of seconds, 0-{MAX_AGE_S}")
        credentials = data.get("allow_credentials", False)
        if not isinstance(credentials, bool):
            raise _cors_error("cors.allow_credentials must be true or false")
        return cls(
            allow_origins=tuple(o.lower() for o in origins),
            allow_methods=methods,
            allow_headers=tuple(h.lower() for h in headers["allow_headers"]),
            expose_headers=tuple(h.lower() for h in headers["expose_headers"]),
            max_age=max_age,
            allow_credentials=credentials,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "allow_origins": list(self.allow_origins),
            "allow_methods": list(self.allow_methods),
            "allow_headers": list(self.allow_headers),
            "expose_headers": list(self.expose_headers),
            "max_age": self.max_age,
            "allow_credentials": self.allow_credentials,
        }


def validate_auth_type(value: object) -> str:
    """The auth type, upper-cased; raises InvalidRequest (code invalid_auth_type)."""
    if not isinstance(value, str) or value.upper() not in AUTH_TYPES:
        raise InvalidRequest(
            f"auth_type must be NONE (public) or TOKEN (the server's API token), not {value!r}",
            code="invalid_auth_type",
        )
    return value.upper()


@dataclass(frozen=True, slots=True)
class FunctionUrlConfig:
    """The URL of one function (``qualifier`` None: the unqualified function).

    ``url_id`` is a random id made when the URL is created (Lambda's url-id; the event's
    ``requestContext.apiId``): deleting and creating the URL again gives a new one.
    """

    function: str
    qualifier: str | None
    url_id: str
    auth_type: str
    cors: CorsConfig | None
    created_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "qualifier": self.qualifier,
            "url_id": self.url_id,
            "auth_type": self.auth_type,
            "cors": self.cors.to_dict() if self.cors else None,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @property
    def path(self) -> str:
        """Where the URL is served on the server: ``/fn/{name}[/{qualifier}]``."""
        return f"/fn/{self.function}" + (f"/{self.qualifier}" if self.qualifier else "")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """An HTTP request to a function URL, as the API received it.

    ``raw_path`` is what follows the URL's own path, still percent-encoded, starting with
    ``/``; ``headers`` keep the client's order and repeats, names lower-case.
    """

    method: str
    raw_path: str
    raw_query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"
    scheme: str = "http"
    server_port: int = 80

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What the function URL answers: status, headers (repeats allowed), body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    # The Content-Length the function declared: what a HEAD answer carries (its body is empty).
    declared_length: str | None = None


class InvalidFunctionResponse(PyfaasError):
    """The function answered a function URL request with something that is not an HTTP
    response (HTTP 502): a statusCode out of range, headers that are not strings..."""

    status = 502
    code = "invalid_function_response"
