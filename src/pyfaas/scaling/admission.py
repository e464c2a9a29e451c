"""Admission: how many invocations may be in flight, per function and on the whole server.

Lambda's rules. A function with reserved concurrency R never has more than R invocations in
flight, and R is carved out of the server's total: functions without a reservation share what
the reservations leave. Past its limit a call waits up to ``wait_s`` for a slot (first come,
first served), then is throttled with TooManyRequests.

Concurrency here is invocations in flight, never workers: a function whose workers each serve
``concurrency_per_worker`` N invocations at once still has at most R calls in flight under a
reservation R (the executor packs them, N to a worker).

Waiting is O(1) per call, however many wait (at c=128 against a total of 32, ~96 calls wait
at any time): one FIFO queue for the shared pool and one per reserved function, so a freed
slot wakes the head of the one queue it can serve; a waiter that gives up (timeout, caller
gone) is marked done and skipped when it reaches the head.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from dataclasses import dataclass

from pyfaas.model import FunctionVersion, InvalidFunctionConfig, TooManyRequests

RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
SHARED_LIMIT = "ConcurrentInvocationLimitExceeded"


@dataclass(eq=False, slots=True)
class _Waiter:
    name: str
    order: int  # arrival, to keep first come first served when queues are rebuilt
    # True: admitted, it holds a slot; False: it waited too long.
    future: asyncio.Future[bool]


_Queue = collections.deque[_Waiter]


class Admission:
    """Counts invocations in flight and admits, queues or throttles new ones.

    Not thread-safe: used on the server's event loop only. :meth:`enter` and :meth:`leave`
    are O(1) (amortized), waiting or not.
    """

    def __init__(self, total: int, wait_s: float) -> None:
        self.total = total
        self._wait_s = wait_s
        self._reserved: dict[str, int] = {}
        self._reserved_sum = 0
        self._in_flight: dict[str, int] = {}
        self._shared_in_flight = 0  # of functions without a reservation
        self._shared_waiters: _Queue = collections.deque()
        self._reserved_waiters: dict[str, _Queue] = {}
        self._arrivals = itertools.count()
        self.throttles: dict[str, int] = {}

    # --- configuration --------------------------------------------------------------------

    def check_reservation(self, name: str, reserved: int | None) -> None:
        """Raise InvalidFunctionConfig if reserving ``reserved`` for ``name`` would take more
        than the server's total, counting every other function's reservation."""
        if reserved is None:
            return
        others = self._reserved_sum - self._reserved.get(name, 0)
        if others + reserved > self.total:
            raise InvalidFunctionConfig(
                f"reserved_concurrency {reserved} for {name!r} is more than is left: the server "
                f"allows {self.total} in flight and other functions reserve {others}; lower "
                "it, or raise the server's max_concurrency",
                code="invalid_concurrency",
            )

    def reserve(self, name: str, reserved: int | None) -> None:
        """Set (None: clear) ``name``'s reservation. Calls in flight keep their slots."""
        self._move(name, reserved)
        self._wake()

    def forget(self, name: str) -> None:
        """``name`` was deleted: drop its reservation and throttle counter."""
        self._move(name, None)
        self.throttles.pop(name, None)
        self._wake()

    def _move(self, name: str, reserved: int | None) -> None:
        was = self._reserved.get(name)
        if was == reserved:
            return
        flight = self._in_flight.get(name, 0)
        # Its calls in flight move between the shared pool and its own reservation.
        self._shared_in_flight += (flight if reserved is None else 0) - (
            flight if was is None else 0
        )
        self._reserved_sum += (reserved or 0) - (was or 0)
        if reserved is None:
            self._reserved.pop(name, None)
        else:
            self._reserved[name] = reserved

    # --- the hot path ---------------------------------------------------------------------

    async def enter(self, fv: FunctionVersion) -> None:
        """Take a slot for one invocation of ``fv``; wait for one up to ``wait_s``.

        Raises TooManyRequests (with Lambda's reason) when none frees up in time, at once
        when the function's reservation is 0.
        """
        name = fv.name
        if self.try_enter(name):
            return
        reserved = self._reserved.get(name)
        if reserved != 0 and self._wait_s > 0:
            loop = asyncio.get_running_loop()
            waiter = _Waiter(name, next(self._arrivals), loop.create_future())
            self._queue(name).append(waiter)
            timer = loop.call_later(self._wait_s, _give_up, waiter.future)
            try:
                admitted = await waiter.future
            except BaseException:  # the caller is gone (cancelled)
                timer.cancel()
                future = waiter.future
                if future.done() and not future.cancelled() and future.result():
                    self.leave(name)  # admitted just before: give the slot back
                raise
            timer.cancel()
            if admitted:
                return
        self.throttles[name] = self.throttles.get(name, 0) + 1
        raise self._throttled(name, reserved)

    def try_enter(self, name: str) -> bool:
        """Take a slot if one is free now (then True), as :meth:`enter` would at once; the
        hot path's way in, without a coroutine. False: call :meth:`enter`."""
        if self._fits(name):
            self._take(name)
            return True
        return False

    def leave(self, name: str) -> None:
        """Give back the slot taken by :meth:`enter`."""
        left = self._in_flight[name] - 1
        if left:
            self._in_flight[name] = left
        else:
            del self._in_flight[name]
        if name not in self._reserved:
            self._shared_in_flight -= 1
        queue = self._queue(name) if name in self._reserved else self._shared_waiters
        if queue:
            self._admit(queue)

    def in_flight(self, name: str) -> int:
        return self._in_flight.get(name, 0)

    def _fits(self, name: str) -> bool:
        reserved = self._reserved.get(name)
        if reserved is not None:
            return self._in_flight.get(name, 0) < reserved
        return self._shared_in_flight < self.total - self._reserved_sum

    def _take(self, name: str) -> None:
        self._in_flight[name] = self._in_flight.get(name, 0) + 1
        if name not in self._reserved:
            self._shared_in_flight += 1

    def _queue(self, name: str) -> _Queue:
        """Where ``name``'s calls wait: its own queue if it has a reservation."""
        if name in self._reserved:
            return self._reserved_waiters.setdefault(name, collections.deque())
        return self._shared_waiters

    def _admit(self, queue: _Queue) -> None:
        """Admit the waiters at the head of ``queue`` while their limit allows (all in one
        queue share it); drop those that gave up."""
        while queue:
            waiter = queue[0]
            if waiter.future.done():
                queue.popleft()
            elif self._fits(waiter.name):
                queue.popleft()
                self._take(waiter.name)
                waiter.future.set_result(True)
            else:
                return

    def _wake(self) -> None:
        """After a reservation changed: sort every waiter into its function's queue again
        (oldest first), then admit what now fits."""
        waiting = [w for w in self._shared_waiters if not w.future.done()]
        for queue in self._reserved_waiters.values():
            waiting += (w for w in queue if not w.future.done())
        self._shared_waiters.clear()
        self._reserved_waiters.clear()
        for waiter in sorted(waiting, key=lambda w: w.order):
            self._queue(waiter.name).append(waiter)
        for queue in [self._shared_waiters, *self._reserved_waiters.values()]:
            self._admit(queue)

    def _throttled(self, name: str, reserved: int | None) -> TooManyRequests:
        if reserved is not None:
            return TooManyRequests(
                f"function {name!r} has {self._in_flight.get(name, 0)} invocations in flight, "
                f"its reserved concurrency of {reserved}; retry later or raise "
                "reserved_concurrency",
                retry_after_s=1.0,
                reason=RESERVED_LIMIT,
            )
        return TooManyRequests(
            f"the server has {self._shared_in_flight} invocations in flight, all the "
            f"concurrency it shares ({self.total - self._reserved_sum} of max_concurrency "
            f"{self.total}); retry later",
            retry_after_s=1.0,
            reason=SHARED_LIMIT,
        )


def _give_up(future: asyncio.Future[bool]) -> None:
    """A waiter's wait ran out: it is throttled (unless admitted in the meantime)."""
    if not future.done():
        future.set_result(False)
