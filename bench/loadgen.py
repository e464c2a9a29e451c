"""A small HTTP/1.1 keep-alive load generator: little overhead, same for every target.

Latency at concurrency 1 uses a blocking socket; throughput at concurrency N uses N asyncio
connections on uvloop, each sending its next request when the previous answer is complete.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import uvloop


@dataclass(frozen=True)
class Figures:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        f"Content-Length: {len(body)}",
        "Content-Type: application/json",
    ]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _response_complete(buf: bytes) -> int:
    """Length of the first complete response in buf, or 0 if it is not complete yet.

    Understands Content-Length and chunked bodies (Ray Serve's proxy streams its answers).
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return 0
    head = buf[:end].lower()
    i = head.find(b"content-length:")
    if i < 0:
        if b"transfer-encoding: chunked" in head:
            return _chunked_end(buf, end + 4)
        raise RuntimeError(f"response without content-length: {bytes(buf[:300])!r}")
    line_end = head.find(b"\r\n", i)
    length = int(head[i + 15 : line_end if line_end > 0 else None])
    total = end + 4 + length
    return total if len(buf) >= total else 0


def _chunked_end(buf: bytes, pos: int) -> int:
    """End of a chunked body starting at pos (no trailers), or 0 if it is not complete yet."""
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return 0
        size = int(buf[pos:line_end].split(b";", 1)[0], 16)
        pos = line_end + 2 + size + 2
        if len(buf) < pos:
            return 0
        if size == 0:
            return pos


OK = b"HTTP/1.1 200"


def latency(
    host: str, port: int, request: bytes, n: int, warmup: int = 200, expect: bytes = OK
) -> Figures:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def one_call() -> None:
        sock.sendall(request)
        buf = b""
        while not _response_complete(buf):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        if not buf.startswith(expect):
            raise RuntimeError(f"unexpected answer: {buf[:200]!r}")

    try:
        return sequential(one_call, n, warmup)
    finally:
        sock.close()


def sequential(call: Callable[[], object], n: int, warmup: int = 200) -> Figures:
    """Latency of ``n`` calls of ``call`` one after the other, after ``warmup`` unmeasured
    ones (any client: a raw socket, httpx, boto3)."""
    samples: list[float] = []
    start_all = 0.0
    for i in range(warmup + n):
        if i == warmup:
            start_all = time.perf_counter()
        t0 = time.perf_counter()
        call()
        if i >= warmup:
            samples.append(time.perf_counter() - t0)
    return summarize(samples, time.perf_counter() - start_all)


def throughput(
    host: str, port: int, request: bytes, concurrency: int, seconds: float, expect: bytes = OK
) -> Figures:
    """N keep-alive connections, each sending its next request when its answer (which must
    start with ``expect``) is complete, for ``seconds`` after a warm-up (see _throughput)."""
    return uvloop.run(_throughput(host, port, request, concurrency, seconds, expect))


WARMUP_SECONDS = 1.0
WARMUP_CALLS = 3  # per connection: a target that starts a process per connection is warm after


async def _throughput(
    host: str, port: int, request: bytes, concurrency: int, seconds: float, expect: bytes
) -> Figures:
    samples: list[float] = []
    deadline = 0.0
    min_calls = 0

    async def one_connection() -> None:
        reader, writer = await _connect(host, port)
        calls = 0
        while time.perf_counter() < deadline or calls < min_calls:
            samples.append(await _round_trip(reader, writer, request, expect))
            calls += 1
        writer.close()

    # Warm up every connection (and every worker behind it) before measuring: at least
    # WARMUP_SECONDS, and WARMUP_CALLS calls on each connection (cold starts can be slower).
    deadline = time.perf_counter() + WARMUP_SECONDS
    min_calls = WARMUP_CALLS
    await asyncio.gather(*(one_connection() for _ in range(concurrency)))
    samples.clear()
    min_calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(one_connection() for _ in range(concurrency)))
    return summarize(samples, time.perf_counter() - start)


async def _connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def _round_trip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, expect: bytes
) -> float:
    """Send one request, read its whole answer (which must start with ``expect``); seconds."""
    t0 = time.perf_counter()
    writer.write(request)
    buf = await _read_response(reader)
    if not buf.startswith(expect):
        raise RuntimeError(f"unexpected answer: {buf[:200]!r}")
    return time.perf_counter() - t0


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    buf = b""
    while not _response_complete(buf):
        chunk = await reader.read(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    return buf


@dataclass(frozen=True)
class Answer:
    """One request of a burst: its HTTP status (0: no answer) and seconds from send."""

    status: int
    seconds: float
    error: str = ""


def burst(
    host: str, port: int, request: bytes, n: int, timeout: float
) -> tuple[list[Answer], float]:
    """``n`` requests at once, each on its own connection (all opened before any is sent).

    Returns every answer, in no order, and the seconds from the first send until the last
    answer (or failure). Never raises for a bad answer: a burst counts them.
    """
    return uvloop.run(_burst(host, port, request, n, timeout))


async def _burst(
    host: str, port: int, request: bytes, n: int, answer_within_s: float
) -> tuple[list[Answer], float]:
    connections = [await asyncio.open_connection(host, port) for _ in range(n)]
    go = asyncio.Event()
    start = 0.0

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Answer:
        await go.wait()
        writer.write(request)
        try:
            async with asyncio.timeout(answer_within_s):
                buf = await _read_response(reader)
        except (OSError, TimeoutError) as exc:
            return Answer(0, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
        finally:
            writer.close()
        return Answer(int(buf[9:12]), time.perf_counter() - start)

    tasks = [asyncio.create_task(one(r, w)) for r, w in connections]
    await asyncio.sleep(0)  # every task is now waiting for go
    start = time.perf_counter()
    go.set()
    answers = await asyncio.gather(*tasks)
    return answers, time.perf_counter() - start


def summarize(samples: list[float], elapsed: float) -> Figures:
    """Figures of latency ``samples`` (seconds) taken over ``elapsed`` seconds."""
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return Figures(len(samples), elapsed, statistics.median(samples) * 1000, p99 * 1000)


def send(
    host: str, port: int, request: bytes, n: int, concurrency: int, expect: bytes = OK
) -> Figures:
    """Exactly ``n`` requests over ``concurrency`` keep-alive connections, no warm-up."""
    return uvloop.run(_send(host, port, request, n, concurrency, expect))


async def _send(
    host: str, port: int, request: bytes, n: int, concurrency: int, expect: bytes
) -> Figures:
    samples: list[float] = []
    left = n

    async def one_connection() -> None:
        nonlocal left
        reader, writer = await _connect(host, port)
        while left > 0:
            left -= 1
            samples.append(await _round_trip(reader, writer, request, expect))
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(min(concurrency, n))))
    return summarize(samples, time.perf_counter() - start)
