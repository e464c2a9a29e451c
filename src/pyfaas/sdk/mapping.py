"""``Function.map``: many remote calls at once, results in order, with a progress bar.

The calls run on an event loop in a thread of their own, so the caller's thread only
reorders results. ``concurrency`` lanes each keep one keep-alive connection to the server
(sdk/http1.py) and make one call at a time on it: at most ``concurrency`` calls are in
flight, each a real invocation of its own. At most ``8 x concurrency`` results wait to be
consumed, so a slow first item does not make the rest pile up without bound. Outcomes cross
between the threads in batches (one wake-up per batch, not per item): that, and not httpx's
pool, is what lets a map of tiny calls keep up with the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyfaas.sdk.app import Function

_WINDOW_PER_CALL = 8
_DONE = -1
_BAR_EVERY_S = 0.1
# Outcomes wait this long to cross to the caller's thread together: each crossing wakes it
# (and the two threads trade the GIL), which would cost more than a tiny call does.
_BATCH_EVERY_S = 0.002

Outcome = tuple[int, bool, Any]


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
    expected, count, unreleased = 0, None, 0
    runner.start()
    try:
        while count is None or expected < count:
            if unreleased and runner.outcomes.empty():
                runner.consumed(unreleased)  # before waiting: the window must not stay shut
                unreleased = 0
            for index, ok, value in runner.outcomes.get():
                if index == _DONE:
                    count = value
                else:
                    waiting[index] = (ok, value)
            if bar is not None:
                bar.update(expected + len(waiting))
            while expected in waiting:
                ok, value = waiting.pop(expected)
                expected += 1
                unreleased += 1
                if unreleased >= concurrency:
                    runner.consumed(unreleased)
                    unreleased = 0
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
        self._arguments = enumerate(arguments)
        self._concurrency = concurrency
        self._count = 0
        self._exhausted = False
        # Lists of outcomes, the last batch ending with (_DONE, True, number of items).
        self.outcomes: queue.SimpleQueue[list[Outcome]] = queue.SimpleQueue()
        self._batch: list[Outcome] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._window: asyncio.Semaphore | None = None
        self._main: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pyfaas-map", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def consumed(self, n: int) -> None:
        """``n`` results were handed to the caller: room for ``n`` more calls."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # all calls made: the loop is closed
                self._loop.call_soon_threadsafe(self._release, n)

    def stop(self) -> None:
        """Cancel the calls still running (the caller stopped early or one failed)."""
        if self._loop is not None and self._main is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._main.cancel)
        self._thread.join()

    def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            _event_loop_runner()(self._main_task())

    def _release(self, n: int) -> None:
        assert self._window is not None
        for _ in range(n):
            self._window.release()

    async def _main_task(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._window = asyncio.Semaphore(self._concurrency * _WINDOW_PER_CALL)
        self._main = asyncio.current_task()
        self._ready.set()
        lanes = [asyncio.create_task(self._lane()) for _ in range(self._concurrency)]
        try:
            await asyncio.gather(*lanes)
        except BaseException:
            for lane in lanes:
                lane.cancel()
            raise
        finally:
            self._deliver((_DONE, True, self._count))
            self._flush()

    async def _lane(self) -> None:
        """Call the function on the next item, one after the other, over one connection."""
        assert self._window is not None
        f = self._function
        client = f.app.client
        connection = client.connection()
        try:
            while True:
                await self._window.acquire()
                item = self._next_item()
                if item is None:
                    self._window.release()
                    return
                index, args = item
                try:
                    response = await client.invoke_raw_on(connection, f.name, f.encode(args, {}))
                    outcome: Outcome = (index, True, f.decode(response))
                except Exception as exc:
                    outcome = (index, False, exc)
                self._deliver(outcome)
        finally:
            connection.close()

    def _next_item(self) -> tuple[int, tuple[Any, ...]] | None:
        """The next item and its index; None once there are no more. When the items'
        iterator fails, its error is the outcome of the item it could not produce."""
        if self._exhausted:
            return None
        try:
            index, args = next(self._arguments)
        except StopIteration:
            self._exhausted = True
            return None
        except Exception as exc:
            self._exhausted = True
            self._deliver((self._count, False, exc))
            self._count += 1
            return None
        self._count = index + 1
        return index, args

    def _deliver(self, outcome: Outcome) -> None:
        """Hand ``outcome`` to the caller's thread with the others of this loop turn."""
        if not self._batch:
            assert self._loop is not None
            self._loop.call_later(_BATCH_EVERY_S, self._flush)
        self._batch.append(outcome)

    def _flush(self) -> None:
        if self._batch:
            self.outcomes.put(self._batch)
            self._batch = []


def _event_loop_runner() -> Callable[[Any], Any]:
    """uvloop's run when it is installed (it comes with uvicorn[standard]), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    run: Callable[[Any], Any] = uvloop.run
    return run


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

    def update(self, done: int) -> None:
        """``done`` calls finished so far; the display is redrawn at most every 0.1 s."""
        self._done = done
        if time.monotonic() - self._shown_at > _BAR_EVERY_S:
            self._show()

    def close(self) -> None:
        self._show()
        if self._rich is not None:
            self._rich.stop()

    def _show(self) -> None:
        self._shown_at = time.monotonic()
        if self._rich is not None:
            self._rich.update(self._task, completed=self._done)
        elif self._handle is not None:
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
    current_shell: Callable[[], object] = get_ipython  # typed or not, by IPython's version
    shell = current_shell()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
