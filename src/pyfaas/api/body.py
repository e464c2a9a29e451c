"""Reading request bodies without trusting their size."""

from __future__ import annotations

from starlette.requests import Request

from pyfaas.model import PayloadTooLarge


async def read_body(request: Request, limit: int, what: str = "payload") -> bytes:
    """The whole body; raises PayloadTooLarge as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"{what} is {declared} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"{what} is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
