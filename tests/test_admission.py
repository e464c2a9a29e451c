"""Admission on the event loop, driven by random sequences of calls, returns, cancellations and
reservation changes: the limits hold at every step and no call waits while its limit has room
(a freed slot always reaches a waiter). The HTTP view of the same rules is test_scaling.py."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyfaas.model import FunctionVersion, TooManyRequests
from pyfaas.scaling.admission import Admission

TOTAL = 4
NAMES = ("a", "b", "c")


def version(name: str) -> FunctionVersion:
    return FunctionVersion(
        name=name,
        version="$LATEST",
        handler="handler.handler",
        runtime="python3.11",
        memory_mb=128,
        timeout_s=3,
        environment=(),
        code_sha256="0" * 64,
        code_dir="/nonexistent",
    )


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("call"), st.sampled_from(NAMES)),
        st.tuples(st.just("return"), st.sampled_from(NAMES)),
        st.tuples(st.just("cancel"), st.sampled_from(NAMES)),
        st.tuples(st.just("reserve"), st.sampled_from(NAMES), st.none() | st.integers(1, 3)),
    ),
    max_size=60,
)


async def play(ops: list[tuple[object, ...]]) -> None:
    admission = Admission(TOTAL, wait_s=60)
    reserved: dict[str, int] = {}
    calls: list[tuple[str, asyncio.Task[None]]] = []
    holding: list[tuple[str, asyncio.Task[None]]] = []  # admitted, not yet returned

    for op in ops:
        kind, name = str(op[0]), str(op[1])
        if kind == "call":
            calls.append((name, asyncio.create_task(admission.enter(version(name)))))
        elif kind == "return":
            mine = [h for h in holding if h[0] == name]
            if mine:
                holding.remove(mine[0])
                admission.leave(name)
        elif kind == "cancel":
            waiting = [t for n, t in calls if n == name and not t.done()]
            if waiting:
                waiting[0].cancel()
        else:
            value = op[2]
            assert value is None or isinstance(value, int)
            others = sum(v for n, v in reserved.items() if n != name)
            if others + (value or 0) > TOTAL:
                continue
            admission.check_reservation(name, value)
            admission.reserve(name, value)
            if value is None:
                reserved.pop(name, None)
            else:
                reserved[name] = value
        for _ in range(3):  # let woken callers run
            await asyncio.sleep(0)
        admitted = set()
        for call in list(calls):
            if call[1].done():
                calls.remove(call)
                if not call[1].cancelled():
                    assert call[1].exception() is None
                    holding.append(call)
                    admitted.add(call[0])
        in_flight = {n: sum(1 for h in holding if h[0] == n) for n in NAMES}
        assert all(admission.in_flight(n) == in_flight[n] for n in NAMES)
        shared = sum(in_flight[n] for n in NAMES if n not in reserved)
        room = TOTAL - sum(reserved.values())
        # Calls in flight keep their slots when a reservation is lowered: a count may be over
        # its limit, but no call is admitted while it is.
        for n in admitted:
            assert in_flight[n] <= reserved[n] if n in reserved else shared <= room
        for n in {n for n, _ in calls}:
            full = in_flight[n] >= reserved[n] if n in reserved else shared >= room
            assert full, f"a call of {n} waits while its limit has room"
    for _, task in calls:
        task.cancel()
    await asyncio.gather(*(t for _, t in calls), return_exceptions=True)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_limits_hold_and_a_freed_slot_always_reaches_a_waiter(
    ops: list[tuple[object, ...]],
) -> None:
    asyncio.run(play(ops))


def test_a_waiter_is_throttled_after_the_wait_and_never_takes_a_slot_later() -> None:
    async def story() -> tuple[float, int, int]:
        admission = Admission(1, wait_s=0.2)
        await admission.enter(version("a"))
        started = time.monotonic()
        with pytest.raises(TooManyRequests) as refused:
            await admission.enter(version("a"))
        waited = time.monotonic() - started
        assert refused.value.reason == "ConcurrentInvocationLimitExceeded"
        admission.leave("a")  # the throttled call must not have been given this slot
        return waited, admission.in_flight("a"), admission.throttles["a"]

    waited, in_flight, throttles = asyncio.run(story())
    assert 0.2 <= waited < 1.0
    assert (in_flight, throttles) == (0, 1)


def test_waiters_are_admitted_first_come_first_served() -> None:
    async def story() -> list[int]:
        admission = Admission(1, wait_s=5)
        await admission.enter(version("a"))
        order: list[int] = []

        async def call(i: int) -> None:
            await admission.enter(version("a"))
            order.append(i)
            admission.leave("a")

        waiting = [asyncio.create_task(call(i)) for i in range(5)]
        await asyncio.sleep(0)
        admission.leave("a")
        await asyncio.gather(*waiting)
        return order

    assert asyncio.run(story()) == [0, 1, 2, 3, 4]
