"""Lambda's function URL payloads (API Gateway HTTP API payload format 2.0), both ways.

:func:`request_event` turns an HTTP request into the event a handler receives;
:func:`http_response` turns the handler's result back into an HTTP response, with Lambda's
rules: a result with a ``statusCode`` is a response (headers, multiValueHeaders, cookies,
body, isBase64Encoded); any other JSON value is sent as it is, 200, application/json.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any
from urllib.parse import parse_qsl

import orjson

from pyfaas.model.urls import FunctionUrlConfig, HttpRequest, HttpResponse, InvalidFunctionResponse

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Bodies of these types reach the handler as text; any other body is base64 (binary).
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/javascript",
        "application/xml",
        "application/x-www-form-urlencoded",
        "application/graphql",
        "application/x-yaml",
        "application/yaml",
    }
)
# The server frames the response itself; a function cannot set these.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")


def request_event(
    request: HttpRequest,
    *,
    config: FunctionUrlConfig,
    request_id: str,
    account_id: str,
    hide_authorization: bool = False,
    now: float | None = None,
) -> dict[str, Any]:
    """The payload format 2.0 event of ``request`` (whose raw_path the handler sees as rawPath).

    Repeated headers and query parameters are joined with commas; cookies move from the
    Cookie header to ``cookies``; ``x-forwarded-*`` headers say how the client reached the
    server, and ``x-forwarded-prefix`` where the URL is mounted (``/fn/{name}``).
    """
    now = time.time() if now is None else now
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        if name == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
        elif name == "authorization" and hide_authorization:
            continue
        elif name in headers:
            headers[name] = f"{headers[name]},{value}"
        else:
            headers[name] = value
    forwarded_for = headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = (
        f"{forwarded_for}, {request.source_ip}" if forwarded_for else request.source_ip
    )
    headers["x-forwarded-proto"] = request.scheme
    headers["x-forwarded-port"] = str(request.server_port)
    headers["x-forwarded-prefix"] = config.path
    host = headers.get("host") or "localhost"
    domain = host[: host.rindex(":")] if ":" in host and not host.endswith("]") else host
    raw_path = request.raw_path or "/"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if request.raw_query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(request.raw_query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    event["requestContext"] = {
        "accountId": account_id,
        "apiId": config.url_id,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": raw_path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": _clf_time(now),
        "timeEpoch": int(now * 1000),
    }
    if request.body:
        text = _as_text(request.body, headers.get("content-type"))
        event["body"] = text if text is not None else base64.b64encode(request.body).decode()
        event["isBase64Encoded"] = text is None
    else:
        event["isBase64Encoded"] = False
    return event


def _clf_time(now: float) -> str:
    """Like ``12/Mar/2020:19:03:58 +0000`` whatever the locale."""
    t = time.gmtime(now)
    return (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


def _as_text(body: bytes, content_type: str | None) -> str | None:
    """The body as text when its type is textual and it is UTF-8; None: send it base64."""
    if content_type is None:
        return None
    kind = content_type.split(";", 1)[0].strip().lower()
    textual = (
        kind.startswith("text/")
        or kind in _TEXT_TYPES
        or kind.endswith("+json")
        or kind.endswith("+xml")
    )
    if not textual:
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def http_response(result_body: bytes) -> HttpResponse:
    """The HTTP response for a handler's (successful) JSON result.

    Raises InvalidFunctionResponse (HTTP 502) when a result with a statusCode is not a
    response: a bad status, headers that are not strings, a body that is not base64...
    """
    try:
        result = orjson.loads(result_body)
    except orjson.JSONDecodeError:
        raise InvalidFunctionResponse("the function's result is not JSON") from None
    if not isinstance(result, dict) or "statusCode" not in result:
        return HttpResponse(200, [("content-type", "application/json")], result_body)
    status = result["statusCode"]
    # isdigit() alone admits "²", which int() refuses.
    if isinstance(status, str) and status.isascii() and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise InvalidFunctionResponse(
            f"statusCode must be a whole number 100-599, not {_short(status)}"
        )
    headers = _response_headers(result)
    if not any(name == "content-type" for name, _ in headers):
        headers.insert(0, ("content-type", "application/json"))
    for cookie in _list_of("cookies", result.get("cookies")):
        headers.append(("set-cookie", _header_value("cookies", cookie)))
    declared = {_header_name(k): v for k, v in (result.get("headers") or {}).items()}
    length = declared.get("content-length")
    return HttpResponse(
        status,
        headers,
        _response_body(result),
        declared_length=str(length) if isinstance(length, int | str) else None,
    )


def _response_headers(result: dict[str, Any]) -> list[tuple[str, str]]:
    single = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise InvalidFunctionResponse("headers and multiValueHeaders must be JSON objects")
    headers: list[tuple[str, str]] = []
    # As API Gateway: a name in multiValueHeaders takes its values from there only.
    multi_names = {_header_name(name) for name in multi}
    for name, value in single.items():
        key = _header_name(name)
        if key not in multi_names and key not in _FRAMING_HEADERS:
            headers.append((key, _header_value(name, value)))
    for name, values in multi.items():
        key = _header_name(name)
        if key not in _FRAMING_HEADERS:
            headers.extend((key, _header_value(name, v)) for v in _list_of(name, values))
    return headers


def _header_name(name: str) -> str:
    key = name.lower()
    if not key or not set(key) <= _TOKEN_CHARS:
        raise InvalidFunctionResponse(f"{name!r} is not an HTTP header name")
    return key


def _header_value(name: str, value: object) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float | str):
        text = str(value)
    else:
        raise InvalidFunctionResponse(
            f"header {name!r} must be a string or number, not {_short(value)}"
        )
    if any(c in text for c in "\r\n\0"):
        raise InvalidFunctionResponse(f"header {name!r} holds a line break or NUL")
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        raise InvalidFunctionResponse(
            f"header {name!r} holds characters HTTP headers cannot carry (non Latin-1)"
        ) from None
    return text


def _list_of(name: str, values: object) -> list[object]:
    if values is None:
        return []
    if not isinstance(values, list):
        raise InvalidFunctionResponse(f"{name!r} must be a list, not {_short(values)}")
    return values


def _response_body(result: dict[str, Any]) -> bytes:
    body = result.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        return orjson.dumps(body)
    if result.get("isBase64Encoded") is True:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidFunctionResponse(
                "isBase64Encoded is true but the body is not base64"
            ) from None
    return body.encode()


def _short(value: object) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
