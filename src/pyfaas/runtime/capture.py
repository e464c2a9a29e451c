"""Capturing everything a handler writes: print, logging, os.write(1), child processes.

Descriptors 1 and 2 point at one unlinked file opened O_APPEND, so Python-level and fd-level
writes land in order. After each invocation the file is read (up to a cap) and truncated:
a handler that writes 100 MB costs disk for a moment, never the server's memory.
"""

from __future__ import annotations

import contextlib
import os
import sys


def _unlinked_file(directory: str) -> int:
    """An O_APPEND file in ``directory`` with no name: nothing to clean up, ever."""
    flags = os.O_RDWR | os.O_APPEND
    with contextlib.suppress(OSError, AttributeError):  # O_TMPFILE: Linux, most filesystems
        return os.open(directory, flags | os.O_TMPFILE, 0o600)
    # Not tempfile.mkstemp: importing tempfile costs milliseconds of every cold start.
    path = os.path.join(directory, f".output-{os.getpid()}")
    fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
    os.unlink(path)
    return fd


def redirect_output(directory: str) -> None:
    """Point fds 1 and 2 at a new unlinked file in ``directory`` (Python's buffers flushed)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    fd = _unlinked_file(directory)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


class OutputCapture:
    """Owns fds 1 and 2 of the worker; ``take`` returns what was written since the last call.

    With ``directory``, fds 1 and 2 first get a new capture file there; without, they already
    point at one (a template prepared it before forking the worker).
    """

    def __init__(self, directory: str | None, cap_bytes: int) -> None:
        self._cap = cap_bytes
        if directory is not None:
            redirect_output(directory)
        for stream in (sys.stdout, sys.stderr):
            stream.reconfigure(line_buffering=True, errors="backslashreplace")  # type: ignore[union-attr]

    @property
    def cap_bytes(self) -> int:
        """The most of one invocation's output that is kept."""
        return self._cap

    def take(self) -> str:
        """Flush and return what was written (truncated to the cap), then start afresh."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        size = os.fstat(1).st_size
        if not size:
            return ""
        data = os.pread(1, min(size, self._cap), 0)
        os.ftruncate(1, 0)
        text = data.decode("utf-8", errors="replace")
        if size > self._cap:
            text += f"\n[pyfaas: {size - self._cap} bytes of log output truncated]\n"
        return text
