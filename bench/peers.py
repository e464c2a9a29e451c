"""The baselines and peers pyfaas is measured against, each started in its own process tree.

Every HTTP one is a context manager that starts its server on a free loopback port, waits
until it answers, yields the port, and stops the whole process group on the way out:
  uvicorn_hello          bench/hello_asgi.py: the HTTP ceiling
  ray_serve              bench/peer_ray_serve.py: Ray Serve, proxy + one replica
  functions_framework    ``functions-framework`` CLI: its default production server (gunicorn,
                         1 worker process, gthread with 4 threads per core)
and ``processpool`` measures ``concurrent.futures.ProcessPoolExecutor`` round trips, the IPC
ceiling, from this process (there is no server to put elsewhere).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from loadgen import Figures, summarize
from servers import BIN, HOST, free_port, wait_http

HERE = Path(__file__).parent


@contextmanager
def _server_group(
    argv: list[str], port: int, *, ready_timeout: float, stdin: int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` in a new session, wait for HTTP on ``port``; on exit SIGTERM its group."""
    proc = subprocess.Popen(
        argv,
        stdin=stdin,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=HERE,
        start_new_session=True,
    )
    try:
        wait_http(f"http://{HOST}:{port}/", timeout=ready_timeout, proc=proc)
        yield proc
    finally:
        _stop_group(proc, grace_s=15)


def _stop_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(grace_s)
    with suppress(ProcessLookupError):  # anything of the group still alive (leader gone)
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@contextmanager
def uvicorn_hello() -> Iterator[int]:
    """A bare ASGI hello-world on uvicorn with pyfaas's server settings; yields its port."""
    port = free_port()
    with _server_group([sys.executable, "hello_asgi.py", str(port)], port, ready_timeout=30):
        yield port


@contextmanager
def functions_framework() -> Iterator[int]:
    """Google's functions-framework serving bench/peer_functions_framework.py:noop."""
    port = free_port()
    argv = [
        str(BIN / "functions-framework"),
        "--target=noop",
        "--source=peer_functions_framework.py",
        f"--host={HOST}",
        f"--port={port}",
    ]
    with _server_group(argv, port, ready_timeout=60):
        yield port


@contextmanager
def ray_serve() -> Iterator[int]:
    """Ray Serve: a local Ray cluster, Serve's HTTP proxy and one no-op deployment.

    Start-up takes ~25 s on 2 cores. On the way out the driver calls serve.shutdown() and
    ray.shutdown() (its stdin is closed to ask for it); only if that hangs is the group killed.
    """
    port = free_port()
    # Ray's own start-up errors (a node that timed out on a busy machine) go to stderr: kept
    # in a file (a pipe nobody reads could fill up) and quoted if the driver fails.
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [sys.executable, "peer_ray_serve.py", str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            cwd=HERE,
            start_new_session=True,
        )
        try:
            assert proc.stdout is not None and proc.stdin is not None
            line = proc.stdout.readline()  # the driver prints "ready" once the app is up
            if line.strip() != b"ready":
                errors.seek(0)
                last = errors.read().decode(errors="replace").strip().splitlines()[-1:]
                raise RuntimeError(
                    f"Ray Serve did not start (exit {proc.poll()}): {''.join(last) or line!r}"
                )
            wait_http(f"http://{HOST}:{port}/", timeout=60, proc=proc)
            yield port
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            with suppress(subprocess.TimeoutExpired):
                proc.wait(60)
            _stop_group(proc, grace_s=5)


def _noop() -> None:
    return None


def processpool(n: int, concurrencies: list[int], seconds: float) -> dict[int, Figures]:
    """ProcessPoolExecutor(max_workers=cores) round trips of a no-op: ``n`` one at a time,
    then ``seconds`` at each further concurrency (asyncio lanes over run_in_executor)."""
    figures: dict[int, Figures] = {}
    with concurrent.futures.ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        for _ in range(200):
            pool.submit(_noop).result()
        for concurrency in concurrencies:
            if concurrency == 1:
                samples = []
                start = time.perf_counter()
                for _ in range(n):
                    t0 = time.perf_counter()
                    pool.submit(_noop).result()
                    samples.append(time.perf_counter() - t0)
                figures[1] = summarize(samples, time.perf_counter() - start)
            else:
                figures[concurrency] = asyncio.run(_flood(pool, concurrency, seconds))
    return figures


async def _flood(
    pool: concurrent.futures.ProcessPoolExecutor, concurrency: int, seconds: float
) -> Figures:
    loop = asyncio.get_running_loop()
    samples: list[float] = []
    deadline = time.perf_counter() + seconds

    async def lane() -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await loop.run_in_executor(pool, _noop)
            samples.append(time.perf_counter() - t0)

    begin = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return summarize(samples, time.perf_counter() - begin)
