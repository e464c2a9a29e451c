"""Frames between the server and a worker: a 4-byte big-endian length, then a msgpack map."""

from __future__ import annotations

import os
import struct

import msgpack

# typing is for the type checker only: importing it costs milliseconds of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
        if not buf and len(data) >= 4 and HEADER.unpack_from(data)[0] == len(data) - 4:
            # The common case: one read, one whole frame. No copies.
            return [msgpack.unpackb(memoryview(data)[4:], raw=False)]
        buf += data
        messages = []
        while len(buf) >= 4:
            (size,) = HEADER.unpack_from(buf)
            if len(buf) < 4 + size:
                break
            messages.append(msgpack.unpackb(bytes(buf[4 : 4 + size]), raw=False))
            del buf[: 4 + size]
        return messages


class FrameReader:
    """Blocking reads of whole messages from ``fd``, one read(2) per message when it fits."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._decoder = FrameDecoder()
        self._ready: list[dict[str, Any]] = []

    def next(self) -> dict[str, Any] | None:
        """The next message; None at end of stream."""
        while not self._ready:
            chunk = os.read(self._fd, 1 << 16)
            if not chunk:
                return None
            self._ready = self._decoder.feed(chunk)
        return self._ready.pop(0)


def write_frame(fd: int, message: dict[str, Any]) -> None:
    """Write one message to ``fd`` (blocking)."""
    view = memoryview(encode(message))
    while view:
        written = os.write(fd, view)
        view = view[written:]
