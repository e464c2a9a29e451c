"""One worker process and the frames exchanged with it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pyfaas
from pyfaas.model import FunctionVersion, InvalidBundle, InvocationRequest, Limits
from pyfaas.runtime.wire import FrameDecoder, encode

# Where workers import pyfaas.runtime from: the same code the server runs.
_RUNTIME_PATH = str(Path(pyfaas.__file__).resolve().parent.parent)
# RLIMIT_AS caps address space, not resident memory: the interpreter maps shared libraries
# and allocator arenas it never touches. This much is granted on top of the function's memory
# so that a 128 MB function can start; the RSS check after each call enforces the real limit.
ADDRESS_SPACE_HEADROOM_MB = 512


class WorkerDied(Exception):
    """The worker process exited while an invocation was in flight."""

    def __init__(self, returncode: int | None) -> None:
        self.returncode = returncode
        if returncode is None:
            reason = "exited"
        elif returncode < 0:
            name = signal.Signals(-returncode).name[3:].lower()
            reason = f"signal: {'killed' if name == 'kill' else name}"
        else:
            reason = f"exit status {returncode}"
        super().__init__(reason)


class _Channel(asyncio.SubprocessProtocol):
    """Parses frames from the worker's stdout as they arrive; resolves the waiting future."""

    def __init__(self) -> None:
        self.decoder = FrameDecoder()
        self.waiter: asyncio.Future[dict[str, Any]] | None = None
        self.exited: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        for message in self.decoder.feed(data):
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(message)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self._fail()

    def process_exited(self) -> None:
        assert self.transport is not None
        if not self.exited.done():
            self.exited.set_result(self.transport.get_returncode())
        self._fail()

    def _fail(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(WorkerDied(None))


class WorkerProcess:
    """A running worker for one function version. One invocation at a time."""

    def __init__(self, fv: FunctionVersion, channel: _Channel, scratch: Path, pid: int) -> None:
        self.fv = fv
        self.pid = pid
        self.init_ms = 0.0
        self.last_used = time.monotonic()
        self.invocations = 0
        self._channel = channel
        self._scratch = scratch
        assert channel.transport is not None
        # uvloop's pipe transports are not asyncio.WriteTransport subclasses, hence the cast.
        self._stdin = cast(asyncio.WriteTransport, channel.transport.get_pipe_transport(0))

    @classmethod
    async def start(
        cls, fv: FunctionVersion, *, python: str, scratch_root: Path, limits: Limits
    ) -> WorkerProcess:
        """Start a worker and import the handler.

        Raises InvalidBundle (code handler_*) when the handler cannot be loaded; the process
        is gone by then.
        """
        worker_id = secrets.token_hex(16)
        scratch = scratch_root / f"{fv.name}-{worker_id[:12]}"
        await asyncio.to_thread(_make_scratch, scratch)
        env = _environment(fv, worker_id, scratch, limits)
        loop = asyncio.get_running_loop()
        channel = _Channel()
        channel.waiter = loop.create_future()
        transport, _ = await loop.subprocess_exec(
            lambda: channel,
            python,
            "-m",
            "pyfaas.runtime.bootstrap",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=None,
            env=env,
            cwd=scratch,
            start_new_session=True,
        )
        worker = cls(fv, channel, scratch, transport.get_pid())
        try:
            hello = await asyncio.wait_for(channel.waiter, timeout=max(10.0, fv.timeout_s))
        except (TimeoutError, WorkerDied) as exc:
            await worker.stop()
            code = "handler_init_error"
            if isinstance(exc, TimeoutError):
                raise InvalidBundle(
                    "importing the handler did not finish in time", code=code
                ) from None
            raise InvalidBundle(
                f"the worker exited while importing the handler ({exc})", code=code
            ) from None
        if hello["t"] == "init_error":
            await worker.stop()
            raise InvalidBundle(hello["message"], code=hello["code"])
        channel.waiter = None
        worker.init_ms = hello["init_ms"]
        return worker

    async def invoke(self, request: InvocationRequest, timeout_s: float) -> dict[str, Any]:
        """Run one invocation; returns the worker's reply.

        Raises TimeoutError (the worker is killed) or WorkerDied (with its exit status).
        """
        channel = self._channel
        assert channel.transport is not None
        waiter = channel.waiter = asyncio.get_running_loop().create_future()
        self.invocations += 1
        self._stdin.write(
            encode(
                {
                    "t": "invoke",
                    "id": request.request_id,
                    "payload": request.payload,
                    "deadline_ms": time.time() * 1000 + timeout_s * 1000,
                    "arn": request.invoked_function_arn or self.fv.arn,
                    "client_context": request.client_context,
                }
            )
        )
        # A plain timer, not asyncio.wait_for: this is the invoke hot path.
        timer = asyncio.get_running_loop().call_later(timeout_s, _expire, waiter)
        try:
            reply = await waiter
            channel.waiter = None
        except TimeoutError:
            self.kill()
            raise
        except asyncio.CancelledError:
            # The caller went away mid-invocation: the worker's state is unknown.
            self.kill()
            raise
        except WorkerDied:
            with contextlib.suppress(TimeoutError):
                returncode = await asyncio.wait_for(asyncio.shield(channel.exited), 2.0)
                raise WorkerDied(returncode) from None
            raise
        finally:
            timer.cancel()
        self.last_used = time.monotonic()
        return dict(reply)

    def kill(self) -> None:
        """SIGKILL the worker and anything it started (its own process group)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    async def stop(self, grace_s: float = 1.0) -> None:
        """Ask the worker to exit (close its stdin), kill it after ``grace_s``, clean up."""
        transport = self._channel.transport
        if transport is not None and not self._channel.exited.done():
            stdin = transport.get_pipe_transport(0)
            if stdin is not None:
                stdin.close()
            try:
                await asyncio.wait_for(asyncio.shield(self._channel.exited), grace_s)
            except TimeoutError:
                self.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._channel.exited), 5.0)
        self.kill()  # children it may have left behind in its group
        if transport is not None:
            transport.close()
        await asyncio.to_thread(shutil.rmtree, self._scratch, True)


def _expire(waiter: asyncio.Future[dict[str, Any]]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _make_scratch(scratch: Path) -> None:
    (scratch / "tmp").mkdir(parents=True, mode=0o700)


def _environment(
    fv: FunctionVersion, worker_id: str, scratch: Path, limits: Limits
) -> dict[str, str]:
    """The worker's whole environment: nothing of the server's leaks in."""
    day = datetime.now(UTC).strftime("%Y/%m/%d")
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "HOME": str(scratch),
        "TMPDIR": str(scratch / "tmp"),
        "PYTHONPATH": _RUNTIME_PATH,
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MALLOC_ARENA_MAX": "2",
        "_HANDLER": fv.handler,
        "LAMBDA_TASK_ROOT": fv.code_dir,
        "LAMBDA_RUNTIME_DIR": str(Path(sys.executable).parent),
        "AWS_LAMBDA_FUNCTION_NAME": fv.name,
        "AWS_LAMBDA_FUNCTION_VERSION": fv.version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fv.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fv.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{day}/[{fv.version}]{worker_id}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": fv.region,
        "AWS_DEFAULT_REGION": fv.region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{fv.runtime}",
        "PYFAAS_LOG_CAP_BYTES": str(limits.log_bytes_per_invocation),
        "PYFAAS_ADDRESS_SPACE_BYTES": str((fv.memory_mb + ADDRESS_SPACE_HEADROOM_MB) << 20),
    }
    if fv.layer_dir:
        env["PYFAAS_LAYER_DIR"] = fv.layer_dir
    env.update(fv.environment)
    return env
