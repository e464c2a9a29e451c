"""The executor's side of a process that forks workers: the zygote or a version's template.

The protocol is runtime/zygote.py's. Everything here runs on the event loop and never
blocks it: the control socket is non-blocking and read by a loop reader callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any, Protocol

import msgpack

_MAX_MESSAGE = 1 << 16
_FORK_TIMEOUT_S = 5.0


_CREDENTIALS = struct.Struct("iII")  # struct ucred: pid, uid, gid
_CREDENTIALS_SPACE = socket.CMSG_SPACE(_CREDENTIALS.size)


def control_socketpair(*, pid_namespace: bool) -> tuple[socket.socket, socket.socket]:
    """The executor's end and the forker's end of a new control socket.

    For a forker in a PID namespace our end asks for the sender's credentials before the
    forker exists: the kernel attaches them when a message is sent, not when it is read,
    so a message sent before we ask carries pid 0 (and 0 written to ``cgroup.procs`` or
    given to ``killpg`` means this server itself).
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if pid_namespace:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    return ours, theirs


def _sender_pid(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The sender's pid in our namespace; None when the kernel could not say (0)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid: int = _CREDENTIALS.unpack(data[: _CREDENTIALS.size])[0]
            return pid if pid > 0 else None
    return None


class ForkerGone(Exception):
    """The zygote or template is gone (or did not answer): fork some other way."""


class ExitWatcher(Protocol):
    """What wants to hear that a forked process exited (a worker's channel)."""

    def set_exited(self, returncode: int | None) -> None: ...

    def orphan(self) -> None: ...


class Forker:
    """A zygote or template process, seen from the executor.

    :meth:`fork` asks it for a new process; :meth:`watch` routes that process's exit status
    (reported by the forker, its parent) to a watcher. When the forker goes away, pending
    forks raise ForkerGone and the watchers are told they are orphans. ``notice`` resolves
    with the forker's first message of its own (``ready``, ``template_ready``,
    ``template_unsafe``), or None if it goes away first.
    """

    def __init__(self, sock: socket.socket, pid: int, *, pid_namespace: bool = False) -> None:
        self.pid = pid
        self._sock = sock
        sock.setblocking(False)
        # In its own PID namespace (a sandbox) the forker's pids are not ours: each new
        # process says hello itself and the kernel tells us its pid (SCM_CREDENTIALS).
        self._pid_namespace = pid_namespace
        self._host_pids: dict[int, int] = {}  # the forker's pid -> ours
        self._hello: dict[int, int] = {}  # fork ref -> our pid of the new process
        self._forked: dict[int, int] = {}  # fork ref -> the forker's pid of it
        # Our pid of the forker itself, as its first message said (in a PID namespace only).
        self.own_pid: int | None = None
        if pid_namespace:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.gone: asyncio.Future[None] = loop.create_future()
        self.notice: asyncio.Future[dict[str, Any] | None] = loop.create_future()
        self._pending: dict[int, asyncio.Future[int]] = {}
        self._watched: dict[int, ExitWatcher] = {}
        # Exits reported before anyone watched the pid (a worker may die at once).
        self._early_exits: dict[int, int] = {}
        self._ignored: set[int] = set()
        self._no_children = asyncio.Event()
        self._no_children.set()
        self._next_ref = 0
        loop.add_reader(sock.fileno(), self._readable)

    @property
    def alive(self) -> bool:
        return not self.gone.done()

    async def no_children(self) -> None:
        """Return once every watched process's exit is known (or the forker is gone)."""
        await self._no_children.wait()

    async def fork(self, env: dict[str, str], cwd: str, fds: list[int], *, template: bool) -> int:
        """A new process with ``env`` in ``cwd``, given ``fds``; returns its pid.

        Raises ForkerGone (gone, or no answer within 5 s) or OSError (the fork failed).
        """
        if self.gone.done():
            raise ForkerGone("gone")
        ref = self._next_ref = self._next_ref + 1
        reply = self._pending[ref] = self._loop.create_future()
        message = {"t": "fork", "ref": ref, "env": env, "cwd": cwd, "template": template}
        if self._pid_namespace:
            message["report_pid"] = True
        try:
            await self._send(msgpack.packb(message, use_bin_type=True), fds)
            return await asyncio.wait_for(asyncio.shield(reply), _FORK_TIMEOUT_S)
        except TimeoutError:
            raise ForkerGone("no answer to a fork request") from None
        finally:
            self._pending.pop(ref, None)
            self._hello.pop(ref, None)
            self._forked.pop(ref, None)

    def watch(self, pid: int, watcher: ExitWatcher) -> None:
        """Route ``pid``'s exit status to ``watcher`` (at once if it is already known)."""
        status = self._early_exits.pop(pid, None)
        if status is not None:
            watcher.set_exited(status)
        elif self.gone.done():
            watcher.orphan()
        else:
            self._watched[pid] = watcher
            self._no_children.clear()

    def unwatch(self, pid: int) -> None:
        """No longer wait for ``pid``'s exit (it is not a worker after all)."""
        self._watched.pop(pid, None)
        self._early_exits.pop(pid, None)
        self._ignored.add(pid)
        if not self._watched:
            self._no_children.set()

    def close(self) -> None:
        """Close our end: the forker sees the end of its socket and exits. Idempotent."""
        self._lost()

    async def _send(self, data: bytes, fds: list[int]) -> None:
        while True:
            try:
                socket.send_fds(self._sock, [data], fds)
                return
            except BlockingIOError:
                writable = self._loop.create_future()
                self._loop.add_writer(self._sock.fileno(), writable.set_result, None)
                try:
                    await writable
                finally:
                    self._loop.remove_writer(self._sock.fileno())
            except OSError as exc:
                self._lost()
                raise ForkerGone(str(exc)) from None

    def _readable(self) -> None:
        while True:
            sender = None
            try:
                if self._pid_namespace:
                    data, ancillary, _, _ = self._sock.recvmsg(_MAX_MESSAGE, _CREDENTIALS_SPACE)
                    sender = _sender_pid(ancillary)
                else:
                    data = self._sock.recv(_MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            self._dispatch(msgpack.unpackb(data, raw=False), sender)

    def _dispatch(self, message: dict[str, Any], sender: int | None = None) -> None:
        kind = message["t"]
        if self._pid_namespace and kind in ("child", "forked"):
            # The new process's hello and its forker's reply race: answer once both came.
            ref = message["ref"]
            if kind == "child":
                if sender is None:
                    return
                self._hello[ref] = sender
            else:
                self._forked[ref] = message["pid"]
            if ref not in self._hello or ref not in self._forked:
                return
            host, theirs = self._hello.pop(ref), self._forked.pop(ref)
            self._host_pids[theirs] = host
            kind, message = "forked", {"t": "forked", "ref": ref, "pid": host}
        if kind == "exited":
            pid, status = message["pid"], message["status"]
            pid = self._host_pids.pop(pid, pid)
            watcher = self._watched.pop(pid, None)
            if watcher is not None:
                watcher.set_exited(status)
                if not self._watched:
                    self._no_children.set()
            elif pid in self._ignored:
                self._ignored.discard(pid)
            elif len(self._early_exits) < 4096:
                self._early_exits[pid] = status
        elif kind in ("forked", "fork_failed"):
            reply = self._pending.get(message["ref"])
            if reply is not None and not reply.done():
                if kind == "forked":
                    reply.set_result(message["pid"])
                else:
                    reply.set_exception(OSError(f"fork failed: {message['error']}"))
        elif not self.notice.done():
            self.own_pid = sender
            self.notice.set_result(message)

    def _lost(self) -> None:
        if self.gone.done():
            return
        self._loop.remove_reader(self._sock.fileno())
        with contextlib.suppress(OSError):
            self._sock.close()
        self.gone.set_result(None)
        if not self.notice.done():
            self.notice.set_result(None)
        for reply in self._pending.values():
            if not reply.done():
                reply.set_exception(ForkerGone("gone"))
        watched, self._watched = self._watched, {}
        self._no_children.set()
        for watcher in watched.values():
            watcher.orphan()
