"""A small HTTP/1.1 keep-alive load generator: little overhead, same for every target.

Latency at concurrency 1 uses a blocking socket; throughput at concurrency N uses N asyncio
connections on uvloop, each sending its next request when the previous answer is complete.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
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
    """Length of the first complete response in buf, or 0 if it is not complete yet."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return 0
    head = buf[:end].lower()
    i = head.find(b"content-length:")
    if i < 0:
        raise RuntimeError(f"response without content-length: {bytes(buf[:300])!r}")
    line_end = head.find(b"\r\n", i)
    length = int(head[i + 15 : line_end if line_end > 0 else None])
    total = end + 4 + length
    return total if len(buf) >= total else 0


def latency(host: str, port: int, request: bytes, n: int, warmup: int = 200) -> Figures:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples: list[float] = []
    start_all = 0.0
    for i in range(warmup + n):
        if i == warmup:
            start_all = time.perf_counter()
        t0 = time.perf_counter()
        sock.sendall(request)
        buf = b""
        while not _response_complete(buf):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        if not buf.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected answer: {buf[:200]!r}")
        if i >= warmup:
            samples.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start_all
    sock.close()
    return _figures(samples, elapsed)


def throughput(host: str, port: int, request: bytes, concurrency: int, seconds: float) -> Figures:
    return uvloop.run(_throughput(host, port, request, concurrency, seconds))


async def _throughput(
    host: str, port: int, request: bytes, concurrency: int, seconds: float
) -> Figures:
    samples: list[float] = []
    deadline = 0.0

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            writer.write(request)
            buf = b""
            while not (size := _response_complete(buf)):
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                buf += chunk
            if not buf.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected answer: {buf[:200]!r}")
            del size
            samples.append(time.perf_counter() - t0)
        writer.close()

    # Warm up every connection (and every worker behind it) before measuring.
    deadline = time.perf_counter() + 1.0
    await asyncio.gather(*(one_connection() for _ in range(concurrency)))
    samples.clear()
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(one_connection() for _ in range(concurrency)))
    return _figures(samples, time.perf_counter() - start)


def _figures(samples: list[float], elapsed: float) -> Figures:
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return Figures(len(samples), elapsed, statistics.median(samples) * 1000, p99 * 1000)
