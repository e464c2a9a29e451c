"""Running one invocation inside a worker: event in, Lambda-shaped result or error out."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from pyfaas.runtime import log_format
from pyfaas.runtime.capture import OutputCapture
from pyfaas.runtime.context import LambdaContext

# Frames from these directories are the platform's, not the user's: Lambda's stackTrace
# shows only the handler's own frames.
_PLATFORM_DIRS = (os.path.dirname(__file__) + os.sep, os.path.dirname(asyncio.__file__) + os.sep)


def error_body(exc: BaseException, request_id: str, error_type: str | None = None) -> bytes:
    """Lambda's error object for ``exc``; also writes Lambda's "[ERROR] ..." log entry."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith(_PLATFORM_DIRS)
    ]
    stack = traceback.format_list(frames)
    error_type = error_type or type(exc).__name__
    message = str(exc)
    sys.stderr.write(
        f"[ERROR] {error_type}: {message}\nTraceback (most recent call last):\n{''.join(stack)}"
    )
    body = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack,
    }
    return json.dumps(body).encode()


class PeakMemory:
    """This process's peak resident memory since exec, in kB. Non-blocking (procfs).

    Not getrusage's ru_maxrss: Linux folds the pre-exec peak into it, and the worker is
    spawned by vfork from the server, so it would report the *server's* peak. VmHWM in
    /proc/self/status belongs to the worker's own image.
    """

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open("/proc/self/status", os.O_RDONLY)
        except OSError:
            self._fd = None

    def kilobytes(self) -> int:
        if self._fd is not None:
            status = os.pread(self._fd, 8192, 0)
            start = status.find(b"VmHWM:")
            if start >= 0:
                return int(status[start + 6 : status.index(b"kB", start)])
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class Invoker:
    """Calls the handler for each invoke message; one at a time. Blocking (runs user code)."""

    def __init__(self, handler: Callable[..., Any], capture: OutputCapture) -> None:
        self._handler = handler
        self._is_coroutine = inspect.iscoroutinefunction(handler)
        self._capture = capture
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peak_rss = PeakMemory()
        env = os.environ
        self._static: dict[str, Any] = {
            "function_name": env["AWS_LAMBDA_FUNCTION_NAME"],
            "function_version": env["AWS_LAMBDA_FUNCTION_VERSION"],
            "memory_limit_in_mb": env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"],
            "log_group_name": env["AWS_LAMBDA_LOG_GROUP_NAME"],
            "log_stream_name": env["AWS_LAMBDA_LOG_STREAM_NAME"],
        }

    def invoke(self, message: dict[str, Any]) -> dict[str, Any]:
        """Run one invocation; return the "result" message (never raises for user code)."""
        request_id = log_format.current_request_id = message["id"]
        error = recycle = False
        start = time.perf_counter()
        try:
            context = LambdaContext(
                invoked_function_arn=message["arn"],
                aws_request_id=request_id,
                deadline_ms=message["deadline_ms"],
                client_context=message.get("client_context"),
                **self._static,
            )
            payload = message["payload"]
            event = json.loads(payload) if payload else {}
            result = self._handler(event, context)
            if self._is_coroutine or inspect.isawaitable(result):
                result = self._event_loop().run_until_complete(result)
            try:
                body = json.dumps(result, separators=(",", ":")).encode()
            except (TypeError, ValueError) as exc:
                error = True
                body = error_body(
                    ValueError(f"Unable to marshal response: {exc}"),
                    request_id,
                    "Runtime.MarshalError",
                )
        except MemoryError as exc:
            # The heap may be fragmented or a C library half-initialised: replace the worker.
            error = recycle = True
            body = error_body(exc, request_id, "Runtime.OutOfMemory")
        except Exception as exc:
            error = True
            body = error_body(exc, request_id)
        except SystemExit as exc:
            # Lambda treats sys.exit() in a handler as the runtime exiting.
            error = recycle = True
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            body = error_body(
                RuntimeError(
                    f"RequestId: {request_id} Error: Runtime exited with error: "
                    f"exit status {status}"
                ),
                request_id,
                "Runtime.ExitError",
            )
        except BaseException as exc:  # KeyboardInterrupt and other oddities from user code
            error = recycle = True
            body = error_body(exc, request_id, "Runtime.ExitError")
        duration_ms = (time.perf_counter() - start) * 1000
        return {
            "t": "result",
            "id": request_id,
            "body": body,
            "error": error,
            "duration_ms": duration_ms,
            "max_rss_kb": self._peak_rss.kilobytes(),
            "logs": self._capture.take(),
            "recycle": recycle,
        }

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        # One loop for the worker's life, not asyncio.run per call: async handlers keep
        # clients (aiohttp sessions, DB pools) bound to the loop across invocations.
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop
