"""One worker process and the frames exchanged with it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Any, cast

from pyfaas.executor.cgroups import WorkerCgroup
from pyfaas.executor.environment import worker_environment
from pyfaas.model import (
    FunctionVersion,
    InvalidBundle,
    InvocationRequest,
    Limits,
)
from pyfaas.runtime.wire import FrameDecoder, encode

_BOOTSTRAP = ("-m", "pyfaas.runtime.bootstrap")
# How long a worker may take to import its handler. Lambda allows 10 s of init.
_INIT_TIMEOUT_S = 10.0
# How long a worker serving several invocations has to answer for one that timed out (with
# what it logged) before the executor gives up on its logs.
_CANCEL_GRACE_S = 0.5
# How long a forked worker's frames may trail the report of its exit (see SocketChannel).
_EXIT_GRACE_S = 0.5
# A deadline this close when the timer fires counts as reached (uvloop's timers tick in ms).
_TIMER_SLACK_S = 0.001


class WorkerDied(Exception):
    """The worker process exited while an invocation was in flight.

    Its message is the reason as Lambda words it: "exit status 3", "signal: killed".
    """

    def __init__(self, returncode: int | None) -> None:
        self.returncode = returncode
        if returncode is None:
            reason = "exited"
        elif returncode < 0:
            # strsignal gives the words Lambda's Go runtime prints: "killed",
            # "segmentation fault", "aborted".
            name = signal.strsignal(-returncode) or f"signal {-returncode}"
            reason = f"signal: {name.lower()}"
        else:
            reason = f"exit status {returncode}"
        super().__init__(reason)


class HandlerInitFailed(InvalidBundle):
    """The handler could not be loaded (code handler_*); ``logs``: what its import wrote."""

    def __init__(self, message: str, *, code: str, logs: str = "") -> None:
        super().__init__(message, code=code)
        self.logs = logs


class WorkerTimedOut(TimeoutError):
    """The invocation outran its timeout; the worker is killed. ``logs``: its output so far."""

    def __init__(self, logs: str) -> None:
        super().__init__("timed out")
        self.logs = logs


class _Channel:
    """Frames from the worker as they arrive, resolving the waiting future; its exit.

    ``waiter`` waits for the handshake; ``pending`` for replies, by the ``n`` of the invoke
    frame they answer (a worker may have several invocations in flight).
    """

    def __init__(self) -> None:
        self.decoder = FrameDecoder()
        self.waiter: asyncio.Future[dict[str, Any]] | None = None
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.exited: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close_input(self) -> None:
        """End of input: the worker's loop ends and it exits."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @property
    def lost(self) -> bool:
        """True once the worker can no longer answer (exited, or its channel closed)."""
        return self.exited.done()

    def _received(self, data: bytes) -> None:
        for message in self.decoder.feed(data):
            n = message.get("n")
            waiter = self.waiter if n is None else self.pending.pop(n, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(message)

    def _fail(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(WorkerDied(None))
        pending, self.pending = self.pending, {}
        for waiter in pending.values():  # every invocation in flight on it, none other
            if not waiter.done():
                waiter.set_exception(WorkerDied(None))

    def set_exited(self, returncode: int | None) -> None:
        if not self.exited.done():
            self.exited.set_result(returncode)
        self._fail()


class _PipeChannel(_Channel, asyncio.SubprocessProtocol):
    """A spawned worker: its stdin and stdout, and its exit as our child."""

    def __init__(self) -> None:
        super().__init__()
        self.transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self._received(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self._fail()

    def process_exited(self) -> None:
        assert self.transport is not None
        self.set_exited(self.transport.get_returncode())

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        # uvloop's pipe transports are not asyncio.WriteTransport subclasses, hence the cast.
        cast(asyncio.WriteTransport, self.transport.get_pipe_transport(0)).write(data)

    def close_input(self) -> None:
        stdin = self.transport.get_pipe_transport(0) if self.transport is not None else None
        if stdin is not None:
            stdin.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class SocketChannel(_Channel, asyncio.Protocol):
    """A forked worker: one stream socket both ways. It is not our child: whoever forked it
    reports its exit (:meth:`set_exited`), or, once that reporter is gone, :meth:`orphan`
    makes the end of the channel stand for the exit (status unknown)."""

    def __init__(self) -> None:
        super().__init__()
        self.transport: asyncio.Transport | None = None
        self._closed = False
        self._orphan = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._received(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._fail()
        if self._orphan:
            self.set_exited(None)

    def set_exited(self, returncode: int | None) -> None:
        """The forker saw the worker exit. Its last frames (an init_error, a result) may still
        be in the socket, reported on another channel than its exit: the end of the socket,
        which comes after them, fails what is still waiting; if something the worker started
        keeps the socket open, that happens after _EXIT_GRACE_S."""
        if not self.exited.done():
            self.exited.set_result(returncode)
        if self._closed:
            self._fail()
        else:
            asyncio.get_running_loop().call_later(_EXIT_GRACE_S, self._fail)

    def orphan(self) -> None:
        """Nobody will report this worker's exit any more."""
        self._orphan = True
        if self._closed:
            self.set_exited(None)

    @property
    def lost(self) -> bool:
        return self._closed or self.exited.done()

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close_input(self) -> None:
        if self.transport is not None and not self._closed and self.transport.can_write_eof():
            self.transport.write_eof()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class WorkerProcess:
    """A running worker for one function version: one invocation at a time, or up to its
    function's ``concurrency_per_worker``.

    Life cycle: :meth:`spawn` (the process exists), :meth:`handshake` (the handler is
    imported), any number of :meth:`invoke`, then :meth:`stop`, which is idempotent.
    """

    def __init__(
        self,
        fv: FunctionVersion,
        channel: _Channel,
        scratch: Path | None,
        pid: int,
        log_cap: int,
        *,
        start_kind: str = "spawn",
        asked_at: float | None = None,
    ) -> None:
        self.fv = fv
        self.pid = pid
        # How the process came to be: "spawn" (a new interpreter), "zygote" (forked from the
        # zygote, then imported the handler) or "template" (forked with the handler imported).
        self.start_kind = start_kind
        # From asking for the worker to its handler being ready, as the caller waited (ms);
        # set by handshake. import_ms: the handler import alone, as the worker measured it.
        self.init_ms = 0.0
        self.import_ms = 0.0
        self.last_used = time.monotonic()
        self.invocations = 0
        # The executor's bookkeeping when the function serves several invocations per worker:
        # how many it sent here, and whether the worker takes no more (then it is stopped
        # once load is back to 0).
        self.load = 0
        self.draining = False
        self._shared = fv.concurrency_per_worker > 1
        self._sent = 0
        # Invocations in flight by n: (loop time of their deadline, their waiter), and the one
        # timer that expires them (see _watch).
        self._deadlines: dict[int, tuple[float, asyncio.Future[dict[str, Any]]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._asked_at = time.perf_counter() if asked_at is None else asked_at
        self._channel = channel
        self._scratch = scratch  # None: it lives in its sandbox's /tmp
        self._log_cap = log_cap
        self._stopped: asyncio.Future[None] | None = None
        # Its own cgroup, if the machine gives one (removed once the worker is gone).
        self.cgroup: WorkerCgroup | None = None

    @classmethod
    async def spawn(
        cls,
        fv: FunctionVersion,
        *,
        python: str,
        scratch_root: Path,
        limits: Limits,
        asked_at: float | None = None,
        sandbox: tuple[list[str], dict[str, str]] | None = None,
    ) -> WorkerProcess:
        """Start the process (in a new session, so its whole group can be killed) and return
        at once; :meth:`handshake` waits for the handler import. ``sandbox``: the command
        line that wraps it (bwrap ...) and variables for the bootstrap alone. Raises OSError."""
        asked_at = time.perf_counter() if asked_at is None else asked_at
        scratch: Path | None
        if sandbox is None:
            scratch, env = await prepare_worker(fv, scratch_root, limits)
            wrapper: list[str] = []
        else:
            scratch, env = (
                None,
                worker_environment(fv, secrets.token_hex(16), Path("/tmp"), limits, sandboxed=True),
            )
            wrapper, extra = sandbox
            env.update(extra)
        loop = asyncio.get_running_loop()
        channel = _PipeChannel()
        channel.waiter = loop.create_future()
        try:
            transport, _ = await loop.subprocess_exec(
                lambda: channel,
                *wrapper,
                python,
                *_BOOTSTRAP,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=None,  # the bootstrap points fd 2 at its capture file at once
                env=env,
                cwd=scratch or "/",
                start_new_session=True,
            )
        except BaseException:
            if scratch is not None:
                await asyncio.to_thread(shutil.rmtree, scratch, True)
            raise
        return cls(
            fv,
            channel,
            scratch,
            transport.get_pid(),
            limits.log_bytes_per_invocation,
            asked_at=asked_at,
        )

    @classmethod
    async def attach(
        cls,
        fv: FunctionVersion,
        sock: socket.socket,
        *,
        pid: int,
        scratch: Path | None,
        limits: Limits,
        start_kind: str,
        asked_at: float,
    ) -> tuple[WorkerProcess, SocketChannel]:
        """A forked worker whose channel is ``sock`` (our end); :meth:`handshake` next.
        The returned channel is for whoever reports the worker's exit."""
        channel = SocketChannel()
        channel.waiter = asyncio.get_running_loop().create_future()
        await asyncio.get_running_loop().create_unix_connection(lambda: channel, sock=sock)
        worker = cls(
            fv,
            channel,
            scratch,
            pid,
            limits.log_bytes_per_invocation,
            start_kind=start_kind,
            asked_at=asked_at,
        )
        return worker, channel

    async def handshake(self) -> float:
        """Wait until the handler is imported; return the init ms (since the worker was
        asked for, as its caller waited).

        Raises HandlerInitFailed, an InvalidBundle (code handler_*), when it cannot be loaded;
        the worker is stopped by then. Cancelled, it stops the worker too.
        """
        waiter = self._channel.waiter
        assert waiter is not None
        try:
            hello = await asyncio.wait_for(waiter, timeout=init_timeout_s(self.fv))
        except (TimeoutError, WorkerDied) as exc:
            await self.stop(grace_s=0)
            code = "handler_init_error"
            if isinstance(exc, TimeoutError):
                raise HandlerInitFailed(
                    "importing the handler did not finish in time", code=code
                ) from None
            exited = self._channel.exited
            returncode = exited.result() if exited.done() else None
            raise HandlerInitFailed(
                f"the worker exited while importing the handler ({WorkerDied(returncode)})",
                code=code,
            ) from None
        except BaseException:
            await self.stop(grace_s=0)
            raise
        if hello["t"] == "init_error":
            await self.stop()
            raise HandlerInitFailed(hello["message"], code=hello["code"], logs=hello["logs"])
        self._channel.waiter = None
        self.import_ms = hello["init_ms"]
        self.init_ms = (time.perf_counter() - self._asked_at) * 1000
        return self.init_ms

    def detach(self) -> None:
        """Let go of the process without stopping it (it became a template), its scratch
        directory too."""
        waiter, self._channel.waiter = self._channel.waiter, None
        if waiter is not None and waiter.done():
            waiter.exception()  # it may have closed the channel already: that is expected
        self._stopped = asyncio.get_running_loop().create_future()
        self._stopped.set_result(None)
        self._channel.close()

    @property
    def alive(self) -> bool:
        """False once the process has exited (for whatever reason) or is being stopped."""
        return self._stopped is None and not self._channel.lost

    async def invoke(self, request: InvocationRequest, timeout_s: float) -> dict[str, Any]:
        """Run one invocation; returns the worker's "result" message.

        Raises WorkerTimedOut (the worker is killed) or WorkerDied (with its exit status).
        Cancelled, it kills the worker: its state is unknown.
        """
        channel = self._channel
        if channel.lost:  # died while idle: the exit was seen with nobody waiting
            raise WorkerDied(await self._returncode())
        n = self._sent = self._sent + 1
        loop = asyncio.get_running_loop()
        waiter = channel.pending[n] = loop.create_future()
        self.invocations += 1
        channel.write(
            encode(
                {
                    "t": "invoke",
                    "n": n,
                    "id": request.request_id,
                    "payload": request.payload,
                    "deadline_ms": time.time() * 1000 + timeout_s * 1000,
                    "arn": request.invoked_function_arn or self.fv.arn,
                    "client_context": request.client_context,
                    "traceparent": request.traceparent,
                }
            )
        )
        self._watch(n, waiter, loop.time() + timeout_s)
        try:
            reply: dict[str, Any] = await waiter
        except TimeoutError:
            if self._shared:
                raise WorkerTimedOut(await self._cancel_keeping_output(n)) from None
            raise WorkerTimedOut(await self._kill_keeping_output()) from None
        except asyncio.CancelledError:
            if self._shared:
                self._cancel(n)  # the others on it go on; the executor drains the worker
            else:
                self.kill()
            raise
        except WorkerDied:
            raise WorkerDied(await self._returncode()) from None
        finally:
            del self._deadlines[n]
        self.last_used = time.monotonic()
        return reply

    def _watch(self, n: int, waiter: asyncio.Future[dict[str, Any]], deadline: float) -> None:
        """Fail ``waiter`` with TimeoutError at ``deadline`` (loop time) unless it is done.

        A timer per invocation (call_later, then cancel) costs the hot path ~3 us. Instead
        one timer per worker stays armed across invocations: when it fires, it expires those
        past their deadline and is armed again for the nearest one still in flight (none:
        it stops). A busy worker's timer fires about once per timeout, not once per call."""
        self._deadlines[n] = (deadline, waiter)
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = asyncio.get_running_loop().call_at(deadline, self._expire_due)

    def _expire_due(self) -> None:
        self._timer = None
        if self._stopped is not None:
            return
        now = asyncio.get_running_loop().time()
        nearest = None
        for deadline, waiter in self._deadlines.values():
            if deadline <= now + _TIMER_SLACK_S:
                _expire(waiter)  # its invoke() drops it from _deadlines
            elif nearest is None or deadline < nearest:
                nearest = deadline
        if nearest is not None:
            self._timer_at = nearest
            self._timer = asyncio.get_running_loop().call_at(nearest, self._expire_due)

    async def _returncode(self) -> int | None:
        """The exit status, once known (the channel may close a moment before)."""
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(self._channel.exited), 2.0)
        return None

    def _cancel(self, n: int) -> None:
        """Tell a worker serving several invocations that invocation ``n`` is over (it
        answers with what the invocation wrote so far)."""
        self._channel.pending.pop(n, None)
        if not self._channel.lost:
            self._channel.write(encode({"t": "cancel", "n": n}))

    async def _cancel_keeping_output(self, n: int) -> str:
        """Invocation ``n`` timed out on a worker that serves others too: the worker answers
        with what it wrote (best effort, within a grace period); nothing is killed here."""
        channel = self._channel
        if channel.lost:
            return ""
        answer = asyncio.get_running_loop().create_future()
        self._cancel(n)
        channel.pending[n] = answer
        try:
            reply = await asyncio.wait_for(answer, _CANCEL_GRACE_S)
        except (TimeoutError, WorkerDied):
            return ""
        finally:
            channel.pending.pop(n, None)
        logs: str = reply["logs"]
        return logs

    def kill(self) -> None:
        """SIGKILL the worker and anything it started (its own process group). Non-blocking."""
        if self._channel.exited.done():
            return  # reaped: its pid may belong to someone else by now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    async def _kill_keeping_output(self) -> str:
        """Kill the worker; return what it wrote during this invocation (best effort)."""
        try:
            # The worker's fd 1 is its unlinked capture file: open it before the process
            # (and with it /proc/<pid>/fd) goes away.
            fd = os.open(f"/proc/{self.pid}/fd/1", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        self.kill()
        if fd < 0:
            return ""
        try:
            return await asyncio.to_thread(_read_output, fd, self._log_cap)
        except OSError:
            return ""
        finally:
            os.close(fd)

    def stop(self, grace_s: float = 1.0) -> asyncio.Future[None]:
        """Ask the worker to exit (close its stdin), kill its group after ``grace_s``, reap
        it, remove its scratch directory. Idempotent: every caller awaits the same stop."""
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self._stop(grace_s))
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        return asyncio.shield(self._stopped)

    async def _stop(self, grace_s: float) -> None:
        channel = self._channel
        exited = channel.exited
        if not exited.done():
            channel.close_input()
            if grace_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(exited), grace_s)
        self.kill()  # if it is still there, and any children it left in its group
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(exited), 5.0)
        channel.close()
        if self._scratch is not None:
            await asyncio.to_thread(shutil.rmtree, self._scratch, True)
        if self.cgroup is not None:
            await asyncio.to_thread(self.cgroup.remove)
            self.cgroup = None


async def prepare_worker(
    fv: FunctionVersion, scratch_root: Path, limits: Limits, *, sandboxed: bool = False
) -> tuple[Path | None, dict[str, str]]:
    """A new worker's scratch directory (made; None in a sandbox, whose /tmp it uses) and
    its whole environment."""
    worker_id = secrets.token_hex(16)
    if sandboxed:
        return None, worker_environment(fv, worker_id, Path("/tmp"), limits, sandboxed=True)
    scratch = scratch_root / f"{fv.name}-{worker_id[:12]}"
    await asyncio.to_thread(_make_scratch, scratch)
    return scratch, worker_environment(fv, worker_id, scratch, limits)


def init_timeout_s(fv: FunctionVersion) -> float:
    """How long importing fv's handler may take."""
    return max(_INIT_TIMEOUT_S, float(fv.timeout_s))


def _expire(waiter: asyncio.Future[dict[str, Any]]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _make_scratch(scratch: Path) -> None:
    (scratch / "tmp").mkdir(parents=True, mode=0o700)


def _read_output(fd: int, cap: int) -> str:
    size = os.fstat(fd).st_size
    text = os.pread(fd, min(size, cap), 0).decode("utf-8", errors="replace")
    if size > cap:
        text += f"\n[pyfaas: {size - cap} bytes of log output truncated]\n"
    return text
