"""The zygote and templates: single-threaded processes that fork workers on request.

The **zygote** is started by the executor as ``python -m pyfaas.runtime.zygote``, one per
interpreter, with the runtime imported (bootstrap, wire, context, capture, msgpack) and no
thread. Forking it skips the interpreter start and those imports (tens of milliseconds).

A **template** is forked from the zygote for one function version: it imports the handler
once, then forks that version's workers, which start with the handler already imported
(a local SnapStart). Forking is only safe from a process with a single thread, so a template
whose import started a thread (Python or native, e.g. OpenBLAS) says so and serves as an
ordinary worker instead.

Both speak to the executor over a SOCK_SEQPACKET Unix socket (the zygote's fd 0), one msgpack
map per message; the new process's descriptors travel with a fork request (SCM_RIGHTS)::

  -> {"t": "fork", "ref": n, "env": {...}, "cwd": dir, "template": bool}
     fds: [channel] (a worker), [channel, control] (a template; zygote only)
  <- {"t": "forked", "ref": n, "pid": pid} | {"t": "fork_failed", "ref": n, "error": text}
  <- {"t": "child", "ref": n}   from the new process itself, when the request said
     "report_pid" (a sandbox: the executor reads its pid from SCM_CREDENTIALS)
  <- {"t": "exited", "pid": pid, "status": s}   s: exit code, or -signal
  <- {"t": "ready", "threads": n}                 the zygote, once, at start
  <- {"t": "template_ready"} | {"t": "template_unsafe", "reason": text}   a template, once

A worker's channel is a stream socket carrying wire.py frames, as a spawned worker's
stdin/stdout would. Per-worker init code in a handler module registers
``os.register_at_fork(after_in_child=...)``: it runs in each forked worker, with that
worker's environment and working directory already in place (random is reseeded by the
standard library the same way).
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import socket
import sys
import time

import msgpack

from pyfaas.runtime import bootstrap
from pyfaas.runtime.capture import OutputCapture, redirect_output
from pyfaas.runtime.limits import drop_privileges

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from typing import Any

    Child = Callable[[], None]

_MAX_MESSAGE = 1 << 18
# Read by a template once for its whole version (see bootstrap.prepare_process).
_INTERNAL = (
    "PYFAAS_LOG_CAP_BYTES",
    "PYFAAS_ADDRESS_SPACE_BYTES",
    "PYFAAS_LAYER_DIR",
    "PYFAAS_CONCURRENCY",
    "PYFAAS_FILE_LIMIT",
    "PYFAAS_PROCESS_LIMIT",
    "PYFAAS_FILE_SIZE_LIMIT",
    "PYFAAS_CPU_BUDGET_S",
    "PYFAAS_CAPTURE_DIR",
)


def thread_count() -> int:
    """Threads of this process, native ones included (forking is safe only with one)."""
    return len(os.listdir("/proc/self/task"))


def open_descriptors() -> dict[int, str]:
    """This process's open descriptors and what each is (a path, socket:[...], anon_inode:...)."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            found[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return found


def _kind(target: str) -> str:
    if target == "anon_inode:[eventpoll]":
        return "an asyncio event loop"
    if target.startswith("socket:"):
        return "a socket (a connection made at import?)"
    return f"a file ({target})"


def fork_unsafe_reason(before: Collection[int]) -> str | None:
    """Why forking workers from this process (a template, after its import) is unsafe.
    ``before``: the descriptors open before the import. A descriptor the import left open
    (a database connection, an event loop's epoll, a log file) would be closed in every
    forked worker (the fork keeps only its channel), or shared by all of them."""
    threads = thread_count()
    if threads != 1:
        return (
            f"importing the handler left {threads} threads running (/proc/self/task); "
            "forking a process with threads is unsafe"
        )
    opened = {fd: t for fd, t in open_descriptors().items() if fd not in before}
    if opened:
        kinds = ", ".join(sorted({_kind(t) for t in opened.values()}))
        return (
            f"importing the handler left {len(opened)} descriptor(s) open: {kinds}; "
            "forked workers cannot share them"
        )
    return None


class ForkLoop:
    """Forks on request, reaps its children and reports their exits. Single-threaded.

    Subclasses say what the parent prepares before a fork and what the child runs.
    """

    def __init__(self, control: socket.socket) -> None:
        self._control = control

    def serve(self) -> Child | None:
        """Serve until the control socket closes (returns None); in a newly forked child,
        return at once what the child must run (outside any frame of the loop)."""
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        # A handler, not SIG_IGN: ignoring SIGCHLD would reap children without their status.
        signal.signal(signal.SIGCHLD, _no_op)
        poller = select.poll()
        poller.register(wake_r, select.POLLIN)
        poller.register(self._control, select.POLLIN)
        self._reap()
        while True:
            for fd, _ in poller.poll():
                if fd == wake_r:
                    while _drain(wake_r):
                        pass
                    self._reap()
                    continue
                try:
                    data, fds, _, _ = socket.recv_fds(self._control, _MAX_MESSAGE, 4)
                except ConnectionError:  # the executor is gone: as at the end of the socket
                    return None
                if not data:
                    for received in fds:
                        os.close(received)
                    return None
                child = self._fork(msgpack.unpackb(data, raw=False), fds)
                if child is not None:
                    return child

    def send(self, message: dict[str, Any]) -> None:
        # The executor may be gone: the next poll sees the end of the socket.
        with contextlib.suppress(OSError):
            self._control.send(msgpack.packb(message, use_bin_type=True))

    def _fork(self, message: dict[str, Any], fds: list[int]) -> Child | None:
        ref = message["ref"]
        try:
            self.prepare(message)
            pid = os.fork()
        except OSError as exc:
            self.restore()
            for fd in fds:
                os.close(fd)
            self.send({"t": "fork_failed", "ref": ref, "error": str(exc)})
            return None
        if pid == 0:
            if message.get("report_pid"):
                # In a PID namespace our pids mean nothing to the executor: the kernel
                # gives it this process's pid as it sees it (SCM_CREDENTIALS).
                self.send({"t": "child", "ref": ref})
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.setsid()  # its own process group: the executor kills the whole group
            time.tzset()  # the function may set TZ
            return self.child(message, fds)
        self.restore()
        for fd in fds:
            os.close(fd)
        self.send({"t": "forked", "ref": ref, "pid": pid})
        return None

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.send({"t": "exited", "pid": pid, "status": os.waitstatus_to_exitcode(status)})

    def prepare(self, message: dict[str, Any]) -> None:
        """In the parent, before fork: the new process's environment and working directory,
        so that at-fork hooks in the child already see them. Raises OSError."""
        env = message["env"]
        os.chdir(message["cwd"])
        os.environ.clear()
        os.environ.update(env)

    def restore(self) -> None:
        """In the parent, after fork."""

    def child(self, message: dict[str, Any], fds: list[int]) -> Child:
        raise NotImplementedError


class Zygote(ForkLoop):
    """Forks workers that import their handler, and templates."""

    def restore(self) -> None:
        os.chdir("/")  # not the worker's scratch directory, which will be removed

    def child(self, message: dict[str, Any], fds: list[int]) -> Child:
        if message.get("template"):
            channel, control = fds
            _close_all_but(channel, control)
            return lambda: _run_template(channel, socket.socket(fileno=control))
        (channel,) = fds
        # The channel becomes stdin and stdout, exactly as for a spawned worker.
        os.dup2(channel, 0)
        os.dup2(channel, 1)
        _close_all_but()
        sys.argv[:] = [bootstrap.__file__]
        return bootstrap.main


class Template(ForkLoop):
    """Forks workers of one function version, its handler already imported."""

    def __init__(
        self, control: socket.socket, handler: Callable[..., Any], init_ms: float, init_logs: str
    ) -> None:
        super().__init__(control)
        self._handler = handler
        # The import's duration and output go to the first worker (its cold start paid it).
        self._init_ms = init_ms
        self._init_logs = init_logs
        self._child_init_ms = 0.0
        self._log_cap = 1 << 20

    def prepare(self, message: dict[str, Any]) -> None:
        env = dict(message["env"])
        self._log_cap = int(env.get("PYFAAS_LOG_CAP_BYTES", self._log_cap))
        # sys.path and the memory limit were set up by this template for the whole version.
        for name in _INTERNAL:
            env.pop(name, None)
        super().prepare({"env": env, "cwd": message["cwd"]})
        # The worker's capture file, as fds 1 and 2 (in a sandbox, apart from its /tmp).
        redirect_output(message["env"].get("PYFAAS_CAPTURE_DIR") or message["cwd"])
        if self._init_logs:
            os.write(2, self._init_logs.encode())
            self._init_logs = ""
        self._child_init_ms, self._init_ms = self._init_ms, 0.0

    def restore(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)

    def child(self, message: dict[str, Any], fds: list[int]) -> Child:
        (channel,) = fds
        _close_all_but(channel)
        capture = OutputCapture(None, self._log_cap)
        handler, init_ms = self._handler, self._child_init_ms

        def run() -> None:
            bootstrap.serve(handler, capture, channel, channel, init_ms, "")

        return run


def _run_template(channel: int, control: socket.socket) -> None:
    """A new template: import the handler, then fork workers, or serve as a worker itself
    if that is not safe."""
    capture = bootstrap.prepare_process()
    before = set(open_descriptors())
    start = time.perf_counter()
    try:
        handler = bootstrap.load_handler(os.environ["_HANDLER"])
    except bootstrap.InitError as exc:
        bootstrap.report_init_error(channel, exc, capture)
        return
    init_ms = (time.perf_counter() - start) * 1000
    reason = fork_unsafe_reason(before)
    if reason is not None:
        ForkLoop(control).send({"t": "template_unsafe", "reason": reason})
        control.close()
        bootstrap.serve(handler, capture, channel, channel, init_ms, capture.take())
        return
    init_logs = capture.take()
    template = Template(control, handler, init_ms, init_logs)
    template.send({"t": "template_ready", "init_ms": init_ms})
    os.close(channel)
    template.restore()  # its own capture file is no longer needed
    gc.freeze()  # keep the imported objects' pages shared with the workers (copy-on-write)
    child = template.serve()
    if child is not None:
        child()


def _close_all_but(*keep: int) -> None:
    """Close every descriptor above 2 except ``keep``: nothing of the zygote's, the
    template's or the executor's reaches a worker."""
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def _drain(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except BlockingIOError:
        return False


def _no_op(signum: int, frame: object) -> None:
    pass


def main() -> None:
    drop_privileges()  # in a sandbox of a root server: the function's uid, before anything
    control = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    # `python -m` put the working directory first on sys.path: it is no worker's.
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", cwd)]
    gc.freeze()
    zygote = Zygote(control)
    zygote.send({"t": "ready", "threads": thread_count()})
    child = zygote.serve()
    if child is not None:
        child()


if __name__ == "__main__":
    main()
