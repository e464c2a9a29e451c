"""A lean HTTP/1.1 keep-alive connection: what ``Function.map`` sends its calls over.

httpx's async connection pool costs more per request than a tiny invocation does once dozens
of requests are in flight (on a busy 2-core machine: ~200 calls/s with 32 in flight through
one ``httpx.AsyncClient``, against ~1,600/s for plain keep-alive connections to the same
server). ``map`` needs one request at a time per connection and nothing else of HTTP, so it
speaks HTTP/1.1 itself: an asyncio protocol per connection, answers parsed by httptools
(uvicorn's parser). Everything else of the SDK goes through httpx, and so does ``map`` when
a proxy applies to the server's URL (``proxy_for``): this module speaks to servers directly.

A POST is never sent twice: a connection is reused only when it is known to be open and has
not been idle long enough for the server to close it meanwhile; a connection that drops after
the request was written raises ConnectionDropped (the server may have run it).
"""

from __future__ import annotations

import asyncio
import select
import ssl
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools


@dataclass(frozen=True, slots=True)
class RawResponse:
    """An answer: status, headers (names lower-case) and the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes


class ConnectionDropped(ConnectionError):
    """The connection closed after the request was written and before the whole answer
    arrived: the server may have acted on the request. ``unanswered`` when not one byte of
    the answer arrived."""

    def __init__(self, message: str, *, unanswered: bool) -> None:
        super().__init__(message)
        self.unanswered = unanswered


_WATCH_EVERY_S = 1.0
# uvicorn (pyfaas's server) closes a keep-alive connection idle for 5 s: one idle for longer
# than this is not reused, lest the server close it while the request is on its way.
_REUSE_IDLE_S = 3.5

# Called with each piece of a streamed answer's body, as it arrives.
BodySink = Callable[[bytes], None]


def proxy_for(url: str) -> str | None:
    """The proxy the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY, any case)
    sets for ``url``, as httpx reads it; None when requests to it go direct."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if bypass(parts.netloc, proxies):
        return None
    return proxy


class Http1Connection:
    """One keep-alive connection to ``url``'s host, opened on first use, one request at a
    time; an answer that takes longer than ``timeout`` seconds (give or take one) raises
    TimeoutError. Not thread-safe: it belongs to one task of one event loop."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._tls = parts.scheme == "https"
        self._port = parts.port or (443 if self._tls else 80)
        self._prefix = parts.path.rstrip("/")
        host_header = parts.netloc.rsplit("@", 1)[-1]
        fixed = {"Host": host_header, **headers}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._timeout = timeout
        self._protocol: _ResponseReader | None = None

    async def post(
        self,
        path: str,
        body: bytes,
        headers: dict[str, str],
        stream_to: BodySink | None = None,
    ) -> RawResponse:
        """POST ``body`` to ``path`` and return the answer; with ``stream_to``, the body of
        a 200 answer goes to it piece by piece as it arrives (the answer's ``body`` is then
        empty). Sent once, never again: OSError when the server cannot be reached, and
        ConnectionDropped when the connection drops after the request was written;
        TimeoutError when no byte of the answer comes for ``timeout`` seconds (the
        connection is closed then). A keep-alive connection is reused only while it is
        open and has not idled long enough for the server to close it."""
        head = (
            f"POST {self._prefix}{path} HTTP/1.1\r\n{self._fixed}"
            f"Content-Length: {len(body)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        ).encode("latin-1")
        protocol = self._protocol
        if protocol is None or not protocol.reusable():
            self.close()
            protocol = await self._open()
        return await protocol.exchange(head + body, stream_to)

    def close(self) -> None:
        """Close the connection (if open); a later ``post`` opens a new one."""
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None

    async def _open(self) -> _ResponseReader:
        loop = asyncio.get_running_loop()
        context = ssl.create_default_context() if self._tls else None
        _, protocol = await loop.create_connection(
            lambda: _ResponseReader(self._timeout),
            self._host,
            self._port,
            ssl=context,
            server_hostname=self._host if self._tls else None,
        )
        self._protocol = protocol
        return protocol


class _ResponseReader(asyncio.Protocol):
    """The protocol of one connection: writes a request, parses its answer. Instead of a
    timer per request (that costs as much as the rest of a tiny call), one timer a second
    fails a request that has run past its deadline."""

    def __init__(self, timeout: float) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._deadline = 0.0
        self._watch: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[RawResponse] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._stream_to: BodySink | None = None
        self._streaming = False
        self._received = False
        self._idle_since = self._loop.time()
        self.closed = False

    def reusable(self) -> bool:
        """Open, and not idle for so long that the server may be closing it right now. An
        idle connection with something to read has been closed by the server (its end of
        file, or a reset), even when the event loop has not run since to see it."""
        transport = self._transport
        if self.closed or transport is None or transport.is_closing():
            return False
        if self._loop.time() - self._idle_since >= _REUSE_IDLE_S:
            return False
        sock = transport.get_extra_info("socket")
        if sock is None:
            return True
        readable, _, _ = select.select([sock.fileno()], [], [], 0)
        return not readable

    async def exchange(self, request: bytes, stream_to: BodySink | None = None) -> RawResponse:
        assert self._transport is not None and self._waiter is None
        self._waiter = self._loop.create_future()
        self._received = False
        self._stream_to = stream_to
        self._deadline = self._loop.time() + self._timeout
        self._transport.write(request)
        try:
            return await self._waiter
        finally:
            self._waiter = None
            self._stream_to = None
            self._idle_since = self._loop.time()

    def close(self) -> None:
        self.closed = True
        if self._watch is not None:
            self._watch.cancel()
        if self._transport is not None:
            self._transport.close()

    def _check_deadline(self) -> None:
        if self._waiter is not None and self._loop.time() > self._deadline:
            self._fail(TimeoutError(f"no answer in {self._timeout:g} s"))
            self.close()
        elif not self.closed:
            self._watch = self._loop.call_later(_WATCH_EVERY_S, self._check_deadline)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._watch = self._loop.call_later(_WATCH_EVERY_S, self._check_deadline)

    def data_received(self, data: bytes) -> None:
        self._received = True
        if self._streaming:  # a long answer that keeps coming is not late
            self._deadline = self._loop.time() + self._timeout
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionDropped(f"malformed answer: {exc}", unanswered=False))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()
        unanswered = not self._received
        self._fail(
            ConnectionDropped(f"the server closed the connection ({exc})", unanswered=unanswered)
        )

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._streaming = self._stream_to is not None and self._parser.get_status_code() == 200

    def on_body(self, body: bytes) -> None:
        if self._streaming:
            assert self._stream_to is not None
            try:
                self._stream_to(body)
            except Exception as exc:  # the caller's sink failed: the answer is lost
                self._fail(exc)
                self.close()
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        self._streaming = False
        headers = {n.decode("latin-1").lower(): v.decode("latin-1") for n, v in self._headers}
        response = RawResponse(self._parser.get_status_code(), headers, b"".join(self._body))
        keep_alive = self._parser.should_keep_alive()
        self._headers, self._body = [], []
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(response)
        if not keep_alive:
            self.close()

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
