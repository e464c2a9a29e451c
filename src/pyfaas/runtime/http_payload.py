"""Lambda's HTTP payload format 2.0 (function URLs, API Gateway HTTP APIs), as web apps see it.

:func:`parse_event` turns the event into an :class:`HttpRequest` that the WSGI and ASGI
adapters build their environ / scope from; :func:`build_response` turns the app's status,
headers and body into the 2.0 response (``Set-Cookie`` headers go to ``cookies``; a body that
is not UTF-8 text goes base64 with ``isBase64Encoded``). Only web-app workers import this.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import urlencode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Bodies of these content types go back as text when they are valid UTF-8; everything else
# (images, archives, compressed bodies) as base64, so that every byte survives.
_TEXT_PREFIXES = (
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/graphql",
    "image/svg+xml",
)
_TEXT_SUFFIXES = ("+json", "+xml")
_DEFAULT_PORTS = {"https": 443, "http": 80}


class BadEvent(ValueError):
    """The event is not an HTTP payload format 2.0 event (the invocation fails with this)."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request as a 2.0 event describes it.

    ``raw_path`` and ``query_string`` are as sent (percent-encoded); ``headers`` have
    lower-case names, the event's ``cookies`` folded back into one ``cookie`` header.
    """

    method: str
    raw_path: str
    query_string: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    scheme: str
    host: str
    port: int
    source_ip: str
    protocol: str
    # Where the app is mounted (pyfaas's /fn/NAME sends x-forwarded-prefix; "" on Lambda):
    # WSGI's SCRIPT_NAME, ASGI's root_path, so that the app's own links and redirects work.
    prefix: str = ""


def parse_event(event: Any) -> HttpRequest:
    """The request in a function URL / HTTP API 2.0 event. Raises BadEvent."""
    context = event.get("requestContext") if isinstance(event, dict) else None
    if not isinstance(context, dict):
        context = {}
    http = context.get("http")
    if not isinstance(http, dict) or not isinstance(http.get("method"), str):
        raise BadEvent(
            "a web app's event must be Lambda's HTTP payload format 2.0 (what a function URL "
            "or an HTTP API sends): this one has no requestContext.http.method"
        )
    if event.get("version", "2.0") != "2.0":
        raise BadEvent(f"payload format {event['version']!r} is not supported; send 2.0")
    headers = [(str(k).lower(), str(v)) for k, v in (event.get("headers") or {}).items()]
    cookies = event.get("cookies") or []
    if cookies:
        headers = [h for h in headers if h[0] != "cookie"]
        headers.append(("cookie", "; ".join(str(c) for c in cookies)))
    named = dict(headers)
    query = event.get("rawQueryString")
    if query is None:
        query = urlencode(event.get("queryStringParameters") or {})
    scheme = named.get("x-forwarded-proto", "https").split(",")[0].strip() or "https"
    host = named.get("host") or context.get("domainName") or "localhost"
    host, _, port = host.partition(":")
    port = named.get("x-forwarded-port", port)
    return HttpRequest(
        method=http["method"].upper(),
        raw_path=event.get("rawPath") or http.get("path") or "/",
        query_string=query,
        headers=tuple(headers),
        body=_body(event),
        scheme=scheme,
        host=host,
        port=int(port) if port.isascii() and port.isdigit() else _DEFAULT_PORTS.get(scheme, 443),
        source_ip=http.get("sourceIp") or "",
        protocol=http.get("protocol") or "HTTP/1.1",
        prefix=named.get("x-forwarded-prefix", "").rstrip("/"),
    )


def _body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return body.encode() if isinstance(body, str) else b""
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise BadEvent("isBase64Encoded is true but the body is not valid base64") from None


def build_response(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> dict[str, Any]:
    """The 2.0 response for status, headers (raw name/value bytes) and body.

    Repeated headers are joined with commas, as the 2.0 format has one value per name;
    ``Set-Cookie`` headers go to ``cookies`` instead.
    """
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1").lower(), _text_of(raw_value)
        if name == "set-cookie":
            cookies.append(value)
        elif name in joined:
            joined[name] = f"{joined[name]}, {value}"
        else:
            joined[name] = value
    response: dict[str, Any] = {"statusCode": status, "headers": joined}
    if cookies:
        response["cookies"] = cookies
    text = _as_text(joined.get("content-type", ""), joined.get("content-encoding", ""), body)
    if text is None:
        response.update(body=base64.b64encode(body).decode(), isBase64Encoded=True)
    else:
        response.update(body=text, isBase64Encoded=False)
    return response


def internal_error() -> dict[str, Any]:
    """What a request gets when the app itself failed and produced no response of its own."""
    return {
        "statusCode": 500,
        "headers": {"content-type": "text/plain; charset=utf-8"},
        "body": "Internal Server Error",
        "isBase64Encoded": False,
    }


def _as_text(content_type: str, content_encoding: str, body: bytes) -> str | None:
    if not body:
        return ""
    if content_encoding.strip().lower() not in ("", "identity"):
        return None  # gzip and friends are bytes whatever the content type says
    media = content_type.split(";", 1)[0].strip().lower()
    if not (media.startswith(_TEXT_PREFIXES) or media.endswith(_TEXT_SUFFIXES)):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _text_of(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")
