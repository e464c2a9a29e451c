"""Frames between the server and a worker: a 4-byte big-endian length, then a msgpack map."""

from __future__ import annotations

import os
import struct
from typing import Any

import msgpack

HEADER = struct.Struct(">I")


def encode(message: dict[str, Any]) -> bytes:
    body: bytes = msgpack.packb(message, use_bin_type=True)
    return HEADER.pack(len(body)) + body


class FrameDecoder:
    """Turns a byte stream into messages; feed it whatever arrived."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        buf = self._buffer
        buf += data
        messages = []
        while len(buf) >= 4:
            (size,) = HEADER.unpack_from(buf)
            if len(buf) < 4 + size:
                break
            messages.append(msgpack.unpackb(bytes(buf[4 : 4 + size]), raw=False))
            del buf[: 4 + size]
        return messages


def read_frame(fd: int) -> dict[str, Any] | None:
    """Read one message from ``fd`` (blocking); None at end of stream."""
    header = _read_exactly(fd, 4)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    body = _read_exactly(fd, size)
    if body is None:
        return None
    message: dict[str, Any] = msgpack.unpackb(body, raw=False)
    return message


def write_frame(fd: int, message: dict[str, Any]) -> None:
    """Write one message to ``fd`` (blocking)."""
    view = memoryview(encode(message))
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
