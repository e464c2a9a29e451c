"""Per-invocation output for a worker that serves several invocations at once.

With one invocation at a time, the capture file behind fds 1 and 2 (capture.py) holds exactly
that invocation's output. With several, ``sys.stdout``, ``sys.stderr`` and the root logger's
handler write through a :class:`RoutedStream` instead: each write goes to the buffer of the
invocation whose context it happens in (a context variable, set in the invocation's asyncio
task or in the thread that runs it). Writes outside any invocation (an fd-level write, a child
process, a thread the handler started itself) still reach the capture file, and the executor
hands them to the next invocation that finishes on that worker.
"""

from __future__ import annotations

import contextvars

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO


class InvocationOutput:
    """What one invocation wrote, up to ``cap_bytes``. Appends are atomic under the GIL."""

    __slots__ = ("_cap", "_dropped", "_parts", "_size")

    def __init__(self, cap_bytes: int) -> None:
        self._cap = cap_bytes
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0

    def write(self, text: str) -> None:
        size = len(text.encode("utf-8", "backslashreplace")) if not text.isascii() else len(text)
        if self._size + size <= self._cap:
            self._parts.append(text)
            self._size += size
        else:
            self._dropped += size

    def take(self) -> str:
        """Everything written so far (with a note if some was dropped), then start afresh."""
        text = "".join(self._parts)
        if self._dropped:
            text += f"\n[pyfaas: {self._dropped} bytes of log output truncated]\n"
        self._parts, self._size, self._dropped = [], 0, 0
        return text


# The output of the invocation running in this context; None outside invocations.
current_output: contextvars.ContextVar[InvocationOutput | None] = contextvars.ContextVar(
    "pyfaas_invocation_output", default=None
)


class RoutedStream:
    """Stands in for sys.stdout or sys.stderr: text goes to the current invocation's
    :class:`InvocationOutput`, or to the real stream outside invocations. Everything else
    (fileno, encoding, isatty...) is the real stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        output = current_output.get()
        if output is None:
            return self._stream.write(text)
        output.write(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
