"""Reading request bodies without trusting their size."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from pyfaas.model import InvalidRequest, PayloadTooLarge


async def read_body(request: Request, limit: int, what: str = "payload") -> bytes:
    """The whole body; raises PayloadTooLarge as soon as it passes ``limit`` bytes."""
    return await receive_body(request.receive, request.headers.get("content-length"), limit, what)


async def receive_body(
    receive: Receive, declared: str | None, limit: int, what: str = "payload"
) -> bytes:
    """:func:`read_body` from an ASGI ``receive`` and the Content-Length header (``declared``)
    for endpoints without a Request. Raises PayloadTooLarge, ClientDisconnect."""
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"{what} is {declared} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: nobody waits for an answer
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"{what} is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_json_object(request: Request, limit: int, what: str = "the body") -> dict[str, Any]:
    """The body parsed as a JSON object; raises PayloadTooLarge, InvalidRequest."""
    return parse_json_object(await read_body(request, limit, what), what)


def parse_json_object(raw: bytes, what: str = "the body") -> dict[str, Any]:
    """``raw`` parsed as a JSON object; raises InvalidRequest (invalid_json)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest(f"{what} must be a JSON object", code="invalid_json")
    return data
