"""``Function.map``: many remote calls at once, results in order, with a progress bar.

The calls run on an event loop in a thread of their own, so the caller's thread only
reorders results. ``concurrency`` lanes each keep one keep-alive connection to the server
(sdk/http1.py; httpx's pool when a proxy applies) and send batches of items on it
(``/invoke-batch``): the server runs the items of a batch one after the other, each a real
invocation of its own, and streams each result back as it finishes; so at most
``concurrency`` calls are in flight. A batch saves the HTTP work of one request per item,
which is most of what a tiny call costs. Batches are large while many items are left and
shrink towards the end, so the lanes finish together. At most ``2 x 64 x concurrency``
results wait to be consumed, so a slow first item does not make the rest pile up without
bound. Outcomes cross between the threads in groups (one wake-up per group, not per item).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pyfaas.sdk.client import BatchAnswer
from pyfaas.sdk.errors import ApiError, ServerUnreachable

if TYPE_CHECKING:
    from pyfaas.sdk.app import Function
    from pyfaas.sdk.http1 import Http1Connection

_WINDOW_PER_CALL = 8
# Items per batch invocation at most, and its body's bytes (the server's sync payload limit
# is 6 MB by default; an item bigger than this goes alone).
_MAX_BATCH = 64
_BATCH_BYTES = 5 * 1024 * 1024
# While many items are left, each lane gets about this many batches more of them.
_BATCHES_PER_LANE = 4
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
    batch_size: int | None = None,
) -> Iterator[Any]:
    """See Function.map (which checks ``concurrency`` and ``batch_size``)."""
    runner = _CallRunner(function, arguments, concurrency, total, batch_size)
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
        self,
        function: Function[Any, Any],
        arguments: Iterator[tuple[Any, ...]],
        concurrency: int,
        total: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        self._function = function
        self._fixed_batch = batch_size
        self._arguments = enumerate(arguments)
        self._concurrency = concurrency
        self._total = total
        self._count = 0
        self._exhausted = False
        self._single = False  # the server has no invoke-batch (an older pyfaas)
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
        per_lane = max(_WINDOW_PER_CALL, 2 * max(_MAX_BATCH, self._fixed_batch or 0))
        self._window = asyncio.Semaphore(self._concurrency * per_lane)
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
            with contextlib.suppress(Exception):  # the httpx pool of this loop, if proxied
                await self._function.app.client.aclose()

    async def _lane(self) -> None:
        """Call the function on the next items, a batch at a time, over one connection (or
        httpx's pool when a proxy applies): one invocation in flight per lane, since the
        server runs the events of a batch one after the other."""
        client = self._function.app.client
        connection = client.connection()
        carry: tuple[int, bytes] | None = None
        try:
            while True:
                batch, carry = await self._take_batch(carry)
                if not batch:
                    return
                await self._call(connection, batch)
        finally:
            if connection is not None:
                connection.close()

    def _batch_size(self) -> int:
        """Items per batch: large while many are left, fewer towards the end so the lanes
        finish together; growing with the items taken when their number is unknown."""
        if self._single:
            return 1
        if self._fixed_batch is not None:
            return self._fixed_batch
        per_round = self._concurrency * _BATCHES_PER_LANE
        if self._total is not None:
            left = self._total - self._count
            return max(1, min(_MAX_BATCH, left // per_round))
        return max(1, min(_MAX_BATCH, self._count // per_round))

    async def _take_batch(
        self, carry: tuple[int, bytes] | None
    ) -> tuple[list[tuple[int, bytes]], tuple[int, bytes] | None]:
        """The next batch, (index, encoded arguments) each, and what is left for the next
        (an item that would take the batch past _BATCH_BYTES). The first item waits for
        room in the window, the others are only taken while there is room."""
        assert self._window is not None
        batch = [carry] if carry is not None else []
        size = len(carry[1]) if carry is not None else 0
        limit = self._batch_size()
        while len(batch) < limit:
            if batch and self._window.locked():
                break
            await self._window.acquire()
            item = self._next_item()
            if item is None:
                self._window.release()
                break
            index, args = item
            try:
                body = self._function.encode(args, {})
            except Exception as exc:
                self._deliver((index, False, exc))
                continue
            if batch and size + len(body) > _BATCH_BYTES:
                return batch, (index, body)
            batch.append((index, body))
            size += len(body) + 1
        return batch, None

    async def _call(
        self, connection: Http1Connection | None, batch: list[tuple[int, bytes]]
    ) -> None:
        """One batch invocation; each item's outcome delivered as its answer arrives. Items
        left unanswered (the connection broke) get the error that broke it."""
        f = self._function
        client = f.app.client
        indices = [index for index, _ in batch]
        answered = [False] * len(batch)

        def on_answer(position: int, answer: BatchAnswer) -> None:
            answered[position] = True
            self._deliver(self._outcome(indices[position], answer))

        bodies = [body for _, body in batch]
        failure: Exception
        try:
            if self._single or len(bodies) == 1:  # /invoke costs the server less for one
                await self._call_singly(connection, bodies, on_answer)
            elif connection is None:
                await client.invoke_batch_async(f.name, bodies, on_answer)
            else:
                await client.invoke_batch_on(connection, f.name, bodies, on_answer)
        except ApiError as exc:
            if exc.code != "route_not_found" or self._single:
                failure = exc
            else:  # an older server: one invocation per request, as before batches
                self._single = True
                await self._call_singly(connection, bodies, on_answer)
                return
        except Exception as exc:
            failure = exc
        else:
            failure = ServerUnreachable("the server's answer to a batch ended early")
        for position, done in enumerate(answered):
            if not done:
                self._deliver((indices[position], False, failure))

    async def _call_singly(
        self,
        connection: Http1Connection | None,
        bodies: list[bytes],
        on_answer: Callable[[int, BatchAnswer], None],
    ) -> None:
        client = self._function.app.client
        name = self._function.name
        for position, body in enumerate(bodies):
            answer: BatchAnswer
            try:
                if connection is None:
                    answer = await client.invoke_raw_async(name, body)
                else:
                    answer = await client.invoke_raw_on(connection, name, body)
            except ApiError as exc:
                answer = exc
            on_answer(position, answer)

    def _outcome(self, index: int, answer: BatchAnswer) -> Outcome:
        if isinstance(answer, ApiError):
            return (index, False, answer)
        try:
            return (index, True, self._function.decode(answer))
        except Exception as exc:
            return (index, False, exc)

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
