"""``Function.map``: many remote calls at once, results in order, with a progress bar.

The calls run on an asyncio event loop in a thread of their own (one httpx.AsyncClient,
``concurrency`` requests in flight), so the caller's thread only reorders results. At most
``concurrency`` calls run, and at most ``8 x concurrency`` results wait to be consumed: a
slow first item does not make the rest pile up without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyfaas.sdk.app import Function

_WINDOW_PER_CALL = 8
_DONE = -1


def map_calls(
    function: Function[Any, Any],
    arguments: Iterator[tuple[Any, ...]],
    *,
    concurrency: int,
    progress: bool,
    return_exceptions: bool,
    total: int | None,
) -> Iterator[Any]:
    """See Function.map (which checks ``concurrency``)."""
    runner = _CallRunner(function, arguments, concurrency)
    bar = _progress_bar(function.name, total) if progress else None
    waiting: dict[int, tuple[bool, Any]] = {}
    expected, count = 0, None
    runner.start()
    try:
        while count is None or expected < count:
            index, ok, value = runner.outcomes.get()
            if index == _DONE:
                count = value
            else:
                waiting[index] = (ok, value)
                if bar is not None:
                    bar.advance()
            while expected in waiting:
                ok, value = waiting.pop(expected)
                expected += 1
                runner.consumed()
                if not ok and not return_exceptions:
                    raise value
                yield value
    finally:
        runner.stop()
        if bar is not None:
            bar.close()


class _CallRunner:
    """The event loop thread that makes the calls."""

    def __init__(
        self, function: Function[Any, Any], arguments: Iterator[tuple[Any, ...]], concurrency: int
    ) -> None:
        self._function = function
        self._arguments = arguments
        self._concurrency = concurrency
        self.outcomes: queue.SimpleQueue[tuple[int, bool, Any]] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._window: asyncio.Semaphore | None = None
        self._main: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pyfaas-map", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def consumed(self) -> None:
        """One result was handed to the caller: room for one more call."""
        if self._loop is not None and self._window is not None:
            with contextlib.suppress(RuntimeError):  # all calls made: the loop is closed
                self._loop.call_soon_threadsafe(self._window.release)

    def stop(self) -> None:
        """Cancel the calls still running (the caller stopped early or one failed)."""
        if self._loop is not None and self._main is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._main.cancel)
        self._thread.join()

    def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(self._main_task())

    async def _main_task(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._window = asyncio.Semaphore(self._concurrency * _WINDOW_PER_CALL)
        self._main = asyncio.current_task()
        self._ready.set()
        try:
            await self._call_all()
        finally:
            await self._function.app.client.aclose()

    async def _call_all(self) -> None:
        assert self._window is not None
        in_flight = asyncio.Semaphore(self._concurrency)
        tasks: set[asyncio.Task[None]] = set()
        count = 0
        try:
            for index, args in enumerate(self._arguments):
                await self._window.acquire()
                await in_flight.acquire()
                task = asyncio.create_task(self._call(index, args, in_flight))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                count = index + 1
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise
        except Exception as exc:
            # The items' iterator failed: the calls started finish, then the error is the
            # outcome of the item it could not produce.
            await asyncio.gather(*tasks, return_exceptions=True)
            self.outcomes.put((count, False, exc))
            count += 1
        finally:
            self.outcomes.put((_DONE, True, count))

    async def _call(self, index: int, args: tuple[Any, ...], in_flight: asyncio.Semaphore) -> None:
        f = self._function
        try:
            response = await f.app.client.invoke_raw_async(f.name, f.encode(args, {}))
            outcome: tuple[int, bool, Any] = (index, True, f.decode(response))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcome = (index, False, exc)
        finally:
            in_flight.release()
        self.outcomes.put(outcome)


class _Bar:
    """A progress bar: Rich's on a terminal; an updating HTML display in a notebook."""

    def __init__(self, label: str, total: int | None) -> None:
        self._label = label
        self._total = total
        self._done = 0
        self._shown_at = 0.0
        self._handle: Any = None
        self._rich: Any = None
        if _in_notebook():
            from IPython.display import HTML, display

            self._html = HTML
            self._handle = display(HTML(self._render()), display_id=True)  # type: ignore[no-untyped-call]
        else:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._rich.start()
            self._task = self._rich.add_task(label, total=total)

    def advance(self) -> None:
        self._done += 1
        if self._rich is not None:
            self._rich.advance(self._task)
        elif time.monotonic() - self._shown_at > 0.1:
            self._show()

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
        else:
            self._show()

    def _show(self) -> None:
        self._shown_at = time.monotonic()
        if self._handle is not None:
            self._handle.update(self._html(self._render()))  # type: ignore[no-untyped-call]

    def _render(self) -> str:
        import html

        of = f" of {self._total}" if self._total is not None else ""
        bar = (
            f'<progress value="{self._done}" max="{self._total}"></progress> '
            if self._total
            else ""
        )
        return f"<div>{bar}{html.escape(self._label)}: {self._done}{of} calls done</div>"


def _progress_bar(label: str, total: int | None) -> _Bar:
    return _Bar(f"{label}.map", total)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()  # type: ignore[misc,unused-ignore]  # IPython typed oddly beside numpy
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
