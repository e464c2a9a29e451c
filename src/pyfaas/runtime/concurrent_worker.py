"""A worker that serves up to N invocations at once (the function's ``concurrency_per_worker``).

One event loop per worker, made after the fork: the zygote and the template stay
single-threaded, and the thread pool starts its threads only when the first invocation comes.
``async def`` handlers run as tasks on the loop; sync handlers run in a pool of N threads, so
they must be thread-safe. The loop's thread reads frames, starts invocations and writes each
reply (tagged with the frame's ``n``) as soon as that invocation ends, in any order.

Each invocation has its own context object, its own output (routed_output.py: print,
sys.stderr and logging lines land in the invocation they were written in) and its own request
id in log lines. Frames from the executor:

  -> {"t": "invoke", "n": n, "id": request id, ...}   start one (as for a one-at-a-time worker)
  -> {"t": "cancel", "n": n}   its deadline passed: answer at once with what it logged so far
                               ("timed_out": true) and cancel its task; a thread cannot be
                               stopped, so the executor stops the worker once the invocations
                               still running on it have ended
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor

from pyfaas.runtime import wire
from pyfaas.runtime.bootstrap import (
    PeakMemory,
    Worker,
    error_outcome,
    marshal_result,
    request_id_var,
)
from pyfaas.runtime.capture import OutputCapture
from pyfaas.runtime.routed_output import InvocationOutput, RoutedStream, current_output

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TextIO

    Outcome = tuple[bytes, bool, bool]  # body, error, recycle


class _Running:
    """One invocation in flight on this worker."""

    __slots__ = ("cpu_started", "message", "output", "started", "task")

    def __init__(self, message: dict[str, Any], output: InvocationOutput) -> None:
        self.message = message
        self.output = output
        self.started = time.perf_counter()
        # The worker's CPU over the invocation's span: with others running beside it, their
        # CPU of that span too (a process cannot tell which task or thread used it).
        self.cpu_started = time.process_time()
        self.task: asyncio.Task[None] | None = None


class ConcurrentWorker:
    """The invoke loop of a worker with ``concurrency`` > 1. :meth:`serve` blocks until the
    executor closes the channel and the invocations in flight have ended."""

    def __init__(
        self,
        worker: Worker,
        handler: Callable[..., Any],
        capture: OutputCapture,
        log_handler: logging.StreamHandler[TextIO],
        concurrency: int,
    ) -> None:
        self._worker = worker
        self._handler = handler
        self._capture = capture
        self._log_handler = log_handler
        self._concurrency = concurrency
        # A web app's adapter with its own loop (ASGI): its invocations are tasks on it.
        self._async_entry: Callable[..., Any] | None = getattr(handler, "handle_async", None)
        self._peak_rss = PeakMemory()
        self._decoder = wire.FrameDecoder()
        self._running: dict[int, _Running] = {}
        self._in_fd = self._out_fd = -1
        self._eof = False

    def serve(self, in_fd: int, out_fd: int) -> None:
        self._in_fd, self._out_fd = in_fd, out_fd
        self._route_output()
        loop = self._loop = getattr(self._handler, "loop", None) or asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._pool = (
            None
            if self._worker.is_coroutine or self._async_entry is not None
            else ThreadPoolExecutor(self._concurrency, thread_name_prefix="pyfaas-handler")
        )
        self._done: asyncio.Future[None] = loop.create_future()
        loop.add_reader(in_fd, self._read)
        try:
            loop.run_until_complete(self._done)
        finally:
            loop.remove_reader(in_fd)
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)

    def _route_output(self) -> None:
        """sys.stdout, sys.stderr and the root logger's handler write per invocation."""
        stderr = RoutedStream(sys.stderr)
        sys.stdout, sys.stderr = RoutedStream(sys.stdout), stderr
        self._log_handler.setStream(stderr)  # type: ignore[arg-type]

    # --- frames from the executor ---------------------------------------------------------

    def _read(self) -> None:
        try:
            chunk = os.read(self._in_fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._eof = True
            self._loop.remove_reader(self._in_fd)
            self._finish_if_idle()
            return
        for message in self._decoder.feed(chunk):
            if message["t"] == "invoke":
                self._start(message)
            elif message["t"] == "cancel":
                self._cancel(message["n"])

    def _start(self, message: dict[str, Any]) -> None:
        running = self._running[message["n"]] = _Running(
            message, InvocationOutput(self._capture.cap_bytes)
        )
        if self._pool is None:
            running.task = self._loop.create_task(self._run_async(running))
            return
        # A fresh context per invocation: a pool thread keeps nothing of the last one it ran.
        try:
            done = self._loop.run_in_executor(
                self._pool, contextvars.Context().run, self._run_sync, running
            )
        except RuntimeError as exc:  # no thread could be started (address space, limits)
            # The call stays queued in the pool: _run_sync skips it once it was answered.
            del self._running[message["n"]]
            body, _ = error_outcome(exc, message["id"])
            self._reply(running, (body, True, True))
            return
        done.add_done_callback(lambda future: self._finished_sync(running, future))

    def _cancel(self, n: int) -> None:
        running = self._running.pop(n, None)
        if running is None:
            return  # it ended as the deadline passed: its result is on its way
        if running.task is not None:
            running.task.cancel()
        self._reply(running, (b"", True, True), timed_out=True)

    # --- running handlers -----------------------------------------------------------------

    def _begin(self, running: _Running) -> tuple[Any, Any]:
        """In the invocation's own context: route its output, return (event, context)."""
        current_output.set(running.output)
        message = running.message
        request_id_var.set(message["id"])
        payload = message["payload"]
        return (json.loads(payload) if payload else {}), self._worker.context(message)

    def _run_sync(self, running: _Running) -> Outcome:
        """In a pool thread."""
        request_id = running.message["id"]
        if running.message["n"] not in self._running:
            return b"", True, True  # answered already (no thread could run it in time)
        try:
            event, context = self._begin(running)
            result = (self._async_entry or self._handler)(event, context)
            if isinstance(result, Awaitable):  # a sync def that returned a coroutine
                result = asyncio.run_coroutine_threadsafe(_awaited(result), self._loop).result()
            body, error = marshal_result(result, request_id)
            return body, error, False
        except BaseException as exc:  # whatever the handler did, the caller gets an answer
            body, recycle = error_outcome(exc, request_id)
            return body, True, recycle

    def _finished_sync(self, running: _Running, future: asyncio.Future[Outcome]) -> None:
        if self._running.pop(running.message["n"], None) is None:
            return  # timed out and answered already
        if future.cancelled():
            outcome: Outcome = (b"", True, True)
        else:
            outcome = future.result()
        self._reply(running, outcome)

    async def _run_async(self, running: _Running) -> None:
        """A task of its own (so its own context) on the worker's loop."""
        message = running.message
        request_id = message["id"]
        try:
            event, context = self._begin(running)
            result = (self._async_entry or self._handler)(event, context)
            if isinstance(result, Awaitable):
                result = await result
            body, error = marshal_result(result, request_id)
            outcome: Outcome = (body, error, False)
        except BaseException as exc:  # whatever the handler did, the caller gets an answer
            if message["n"] not in self._running:
                return  # cancelled after a timeout, answered already
            body, recycle = error_outcome(exc, request_id)
            outcome = (body, True, recycle)
        if self._running.pop(message["n"], None) is not None:
            self._reply(running, outcome)

    # --- replies --------------------------------------------------------------------------

    def _reply(self, running: _Running, outcome: Outcome, *, timed_out: bool = False) -> None:
        body, error, recycle = outcome
        # Output written outside any invocation's context goes with the next reply.
        logs = running.output.take() + self._capture.take()
        wire.write_frame(
            self._out_fd,
            {
                "t": "result",
                "n": running.message["n"],
                "body": body,
                "error": error,
                "duration_ms": (time.perf_counter() - running.started) * 1000,
                "cpu_ms": None if timed_out else (time.process_time() - running.cpu_started) * 1000,
                "max_rss_kb": self._peak_rss.kilobytes(),
                "logs": logs,
                "recycle": recycle,
                "timed_out": timed_out,
            },
        )
        self._finish_if_idle()

    def _finish_if_idle(self) -> None:
        if self._eof and not self._running and not self._done.done():
            self._done.set_result(None)


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
