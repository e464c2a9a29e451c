"""A worker process: import the handler once, then run invocations, one at a time unless
the function sets ``concurrency_per_worker`` (then see concurrent_worker.py).

Started by the executor as ``python -m pyfaas.runtime.bootstrap`` with a scrubbed
environment, or forked from the zygote (see zygote.py) which then calls :func:`main`.
Speaks frames (see wire.py) on its original stdin/stdout; its own stdout and stderr are
captured per invocation (see capture.py).
"""

from __future__ import annotations

import contextvars
import importlib
import json
import logging
import os
import resource
import sys
import time
import traceback
from collections.abc import Awaitable

from pyfaas.runtime import wire
from pyfaas.runtime.capture import OutputCapture
from pyfaas.runtime.context import LambdaContext
from pyfaas.runtime.limits import apply_limits, drop_privileges, limit_cpu

# Imported for the type checker only. asyncio, inspect and typing each cost milliseconds of
# every cold start; only async handlers need an event loop, and asyncio is imported for them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any

_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect

_request_id = ""
# Set per invocation only in a worker serving several at once; else _request_id holds.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("pyfaas_request_id")
# Invocations one worker serves at once (the function's concurrency_per_worker).
_concurrency = 1
_log_handler: logging.StreamHandler | None = None  # type: ignore[type-arg]
# Frames from these directories are the platform's, not the user's: Lambda's stackTrace
# shows only the handler's own frames (an async handler's come through asyncio's).
_PLATFORM_DIRS = (
    os.path.dirname(__file__) + os.sep,
    os.path.join(os.path.dirname(os.__file__), "asyncio") + os.sep,
)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = request_id_var.get(_request_id)
        return True


def _install_logging() -> None:
    """Root logger output in Lambda's text format: [LEVEL] time request-id message."""
    global _log_handler
    handler = _log_handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter())
    logging.root.addHandler(handler)
    logging.root.setLevel(logging.INFO)


def _limit_memory() -> None:
    limit = os.environ.pop("PYFAAS_ADDRESS_SPACE_BYTES", "")
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))


def load_handler(spec: str) -> Callable[..., Any]:
    """Import ``module.function``; raises InitError with a deploy error code.

    ``wsgi:module:app`` and ``asgi:module:app`` load a web app behind pyfaas's adapter
    (webapp.py, imported only for those).
    """
    if ":" in spec:
        from pyfaas.runtime.webapp import load_web_app

        return load_web_app(spec)
    module_name, _, function_name = spec.rpartition(".")
    handler = getattr(
        import_module(module_name, "the handler 'module.function'"), function_name, None
    )
    if handler is None:
        raise InitError(
            "handler_not_found", f"Handler '{function_name}' missing on module '{module_name}'"
        )
    if not callable(handler):
        raise InitError(
            "handler_not_found",
            f"Handler '{function_name}' on module '{module_name}' is not callable",
        )
    return handler  # type: ignore[no-any-return]


def import_module(module_name: str, named_by: str) -> ModuleType:
    """Import a module of the bundle; raises InitError (handler_module_not_found,
    handler_syntax_error, handler_init_error). ``named_by``: the setting that names it."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise InitError(
                "handler_module_not_found",
                f"Unable to import module '{module_name}': No module named '{exc.name}' "
                f"in the bundle (is {named_by} right?)",
            ) from None
        raise InitError(
            "handler_init_error", f"Unable to import module '{module_name}': {exc}"
        ) from None
    except SyntaxError as exc:
        where = os.path.relpath(exc.filename or "?", os.environ.get("LAMBDA_TASK_ROOT", "."))
        raise InitError(
            "handler_syntax_error",
            f"Syntax error in module '{module_name}': {exc.msg} ({where}, line {exc.lineno})",
        ) from None
    except BaseException as exc:
        traceback.print_exc()
        raise InitError(
            "handler_init_error",
            f"Unable to import module '{module_name}': {type(exc).__name__}: {exc}",
        ) from None


class InitError(Exception):
    """The handler could not be loaded; ``code`` is the deploy error code (handler_*)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class WorkerLifecycle:
    """A handler with work to do once per worker process, not at import: a web app's event
    loop and ASGI lifespan. A template imports the handler once for many workers, so
    what must not be shared across fork belongs here.

    :meth:`start` runs in each worker before it reports ready (so it counts in Init
    Duration) and raises InitError; :meth:`stop` runs when the executor asks the worker to
    exit (a worker that is killed gets no call).
    """

    def start(self) -> None:
        """Prepare this worker; raises InitError."""

    def stop(self) -> None:
        """Release what start() made; must not raise."""


def _error_body(exc: BaseException, request_id: str, error_type: str | None = None) -> bytes:
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
    """This process's peak resident memory since exec, in kB.

    Not ru_maxrss: Linux carries it across exec, so a worker would report the peak of the
    server that forked it. /proc/self/status's VmHWM belongs to the new image only.

    Reading /proc/self/status costs ~8 us, getrusage ~1 us. Resident memory only grows
    through page faults, so while the fault counters stand still the last peak still holds
    (the common case for a warm worker running a small handler).
    """

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open("/proc/self/status", os.O_RDONLY)
        except OSError:
            self._fd = None
        self._faults = -1
        self._peak_kb = 0

    def kilobytes(self) -> int:
        if self._fd is None:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        usage = resource.getrusage(resource.RUSAGE_SELF)
        if usage.ru_minflt + usage.ru_majflt != self._faults:
            status = os.pread(self._fd, 8192, 0)
            start = status.find(b"VmHWM:")
            if start < 0:
                return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self._peak_kb = int(status[start + 6 : status.index(b"kB", start)])
            # Counted after the read: faults the read itself causes must not force the next.
            usage = resource.getrusage(resource.RUSAGE_SELF)
            self._faults = usage.ru_minflt + usage.ru_majflt
        return self._peak_kb


def marshal_result(result: Any, request_id: str) -> tuple[bytes, bool]:
    """The handler's result as JSON bytes, and whether that is an error (MarshalError)."""
    try:
        return json.dumps(result, separators=(",", ":")).encode(), False
    except (TypeError, ValueError) as exc:
        error = ValueError(f"Unable to marshal response: {exc}")
        return _error_body(error, request_id, "Runtime.MarshalError"), True


def error_outcome(exc: BaseException, request_id: str) -> tuple[bytes, bool]:
    """Lambda's error body for what the handler raised, and whether the worker must be
    recycled (out of memory, sys.exit(), KeyboardInterrupt and the like)."""
    if isinstance(exc, MemoryError):
        return _error_body(exc, request_id, "Runtime.OutOfMemory"), True
    if isinstance(exc, Exception):
        return _error_body(exc, request_id), False
    if isinstance(exc, SystemExit):
        # Lambda treats sys.exit() in a handler as the runtime exiting: report it so.
        status = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        reason = f"Runtime exited with error: exit status {status}"
        error = RuntimeError(f"RequestId: {request_id} Error: {reason}")
        return _error_body(error, request_id, "Runtime.ExitError"), True
    return _error_body(exc, request_id, "Runtime.ExitError"), True


class Worker:
    """The invoke loop of one worker process: one invocation at a time."""

    def __init__(self, handler: Callable[..., Any], capture: OutputCapture, out_fd: int) -> None:
        self._handler = handler
        code = getattr(handler, "__code__", None)
        self.is_coroutine = bool(code is not None and code.co_flags & _CO_COROUTINE)
        self._capture = capture
        self._out = out_fd
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

    def context(self, message: dict[str, Any]) -> LambdaContext:
        """The handler's context object for the invocation ``message`` asks for."""
        return LambdaContext(
            invoked_function_arn=message["arn"],
            aws_request_id=message["id"],
            deadline_ms=message["deadline_ms"],
            client_context=message.get("client_context"),
            traceparent=message.get("traceparent"),
            **self._static,
        )

    def invoke(self, message: dict[str, Any]) -> dict[str, Any]:
        global _request_id
        request_id = _request_id = message["id"]
        context = self.context(message)
        error = recycle = False
        start = time.perf_counter()
        cpu_start = time.process_time()  # user+system CPU of this process (metering)
        limit_cpu(cpu_start)
        try:
            payload = message["payload"]
            event = json.loads(payload) if payload else {}
            result = self._handler(event, context)
            if self.is_coroutine or isinstance(result, Awaitable):
                result = self._event_loop().run_until_complete(result)
            body, error = marshal_result(result, request_id)
        except BaseException as exc:  # whatever the handler did, the caller gets an answer
            error = True
            body, recycle = error_outcome(exc, request_id)
        duration_ms = (time.perf_counter() - start) * 1000
        cpu_ms = (time.process_time() - cpu_start) * 1000
        return {
            "t": "result",
            "n": message["n"],
            "body": body,
            "error": error,
            "duration_ms": duration_ms,
            "max_rss_kb": self._peak_rss.kilobytes(),
            "logs": self._capture.take(),
            "recycle": recycle,
            "cpu_ms": cpu_ms,
        }

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        # One loop for the worker's life: async handlers may keep clients bound to it.
        if self._loop is None:
            import asyncio

            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop

    def serve(self, in_fd: int) -> None:
        frames = wire.FrameReader(in_fd)
        while (message := frames.next()) is not None:
            wire.write_frame(self._out, self.invoke(message))


def main() -> None:
    """Run a worker whose channel to the executor is fds 0 (in) and 1 (out)."""
    drop_privileges()  # spawned in a sandbox of a root server: the function's uid first
    in_fd, out_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    capture = prepare_process()
    start = time.perf_counter()
    try:
        handler = load_handler(os.environ["_HANDLER"])
    except InitError as exc:
        report_init_error(out_fd, exc, capture)
        return
    init_ms = (time.perf_counter() - start) * 1000
    serve(handler, capture, in_fd, out_fd, init_ms, capture.take())


def prepare_process() -> OutputCapture:
    """Everything a worker does before importing the handler: capture its output, install
    Lambda's log format, set sys.path (code, then layer), apply the memory limit. Consumes
    the PYFAAS_* variables from os.environ."""
    global _concurrency
    # In a sandbox the capture file lives apart from /tmp: a handler filling /tmp must
    # still be able to report that it failed.
    directory = os.environ.pop("PYFAAS_CAPTURE_DIR", "") or os.getcwd()
    capture = OutputCapture(directory, int(os.environ.pop("PYFAAS_LOG_CAP_BYTES", "1048576")))
    _install_logging()
    _concurrency = int(os.environ.pop("PYFAAS_CONCURRENCY", "1"))
    if _concurrency > 1:
        # Imported now, before the handler: a template then forks workers that have them.
        # Importing starts no thread; the loop and the thread pool come after the fork.
        import asyncio  # noqa: F401
        import concurrent.futures  # noqa: F401
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    layer = os.environ.pop("PYFAAS_LAYER_DIR", "")
    # The working directory is scratch space, not code: keep it off the import path.
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    sys.path[0:0] = [task_root, *([layer] if layer else [])]
    _limit_memory()
    apply_limits()
    return capture


def report_init_error(out_fd: int, exc: InitError, capture: OutputCapture) -> None:
    """Tell the executor the handler cannot be loaded (the worker then exits)."""
    wire.write_frame(
        out_fd,
        {"t": "init_error", "code": exc.code, "message": exc.message, "logs": capture.take()},
    )


def serve(
    handler: Callable[..., Any],
    capture: OutputCapture,
    in_fd: int,
    out_fd: int,
    init_ms: float,
    init_logs: str,
) -> None:
    """Say "ready", then serve invocations until the executor closes the channel."""
    if init_logs:
        sys.stderr.write(init_logs)  # printed during import: goes with the first invocation
    lifecycle = handler if isinstance(handler, WorkerLifecycle) else None
    if lifecycle is not None:
        start = time.perf_counter()
        try:
            lifecycle.start()
        except InitError as exc:
            report_init_error(out_fd, exc, capture)
            return
        init_ms += (time.perf_counter() - start) * 1000
    wire.write_frame(out_fd, {"t": "ready", "init_ms": init_ms})
    worker = Worker(handler, capture, out_fd)
    if _concurrency == 1:
        worker.serve(in_fd)
    else:
        from pyfaas.runtime.concurrent_worker import ConcurrentWorker

        assert _log_handler is not None
        ConcurrentWorker(worker, handler, capture, _log_handler, _concurrency).serve(in_fd, out_fd)
    if lifecycle is not None:
        lifecycle.stop()


if __name__ == "__main__":
    main()
