"""sync.Cond: Go's cond tests (signal, generations, broadcast, stealing) plus goconc's forms."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from conftest import WAIT, run_async
from goconc import context, sync


def wait_until(cond: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.0005)


def start(fn: Callable[..., object], *args: object) -> threading.Thread:
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


def test_signal_wakes_one_waiter_at_a_time() -> None:
    # Go's TestCondSignal.
    mu = sync.Mutex()
    c = sync.Cond(mu)
    n = 3
    awake: list[int] = []

    def waiter(i: int) -> None:
        with mu:
            c.wait(timeout=WAIT)
            awake.append(i)

    ts = [start(waiter, i) for i in range(n)]
    wait_until(lambda: c.statistics().waiters == n)
    for k in range(1, n + 1):
        c.signal()
        wait_until(lambda k=k: len(awake) == k)  # type: ignore[misc]
        time.sleep(0.005)
        assert len(awake) == k, "signal woke more than one waiter"
    for t in ts:
        t.join(WAIT)
    c.signal()  # no waiter: nothing happens


def test_signal_wakes_waiters_in_the_order_they_waited() -> None:
    # Go's TestCondSignalGenerations.
    mu = sync.Mutex()
    c = sync.Cond(mu)
    order: list[int] = []

    def waiter(i: int) -> None:
        with mu:
            c.wait(timeout=WAIT)
            order.append(i)

    ts = []
    for i in range(5):
        ts.append(start(waiter, i))
        wait_until(lambda i=i: c.statistics().waiters == i + 1)  # type: ignore[misc]
    for i in range(5):
        c.signal()
        wait_until(lambda i=i: len(order) == i + 1)  # type: ignore[misc]
    for t in ts:
        t.join(WAIT)
    assert order == [0, 1, 2, 3, 4]


def test_broadcast_wakes_every_waiter() -> None:
    # Go's TestCondBroadcast.
    mu = sync.Mutex()
    c = sync.Cond(mu)
    awake: list[int] = []

    def waiter(i: int) -> None:
        with mu:
            c.wait(timeout=WAIT)
            awake.append(i)

    ts = [start(waiter, i) for i in range(5)]
    wait_until(lambda: c.statistics().waiters == 5)
    c.broadcast()
    for t in ts:
        t.join(WAIT)
    assert sorted(awake) == list(range(5))
    s = c.statistics()
    assert (s.waiters, s.waits, s.broadcasts) == (0, 5, 1)


def test_a_signal_is_not_stolen_by_a_later_waiter() -> None:
    # Go's TestCondSignalStealing: a signal sent while A waits goes to A, even if
    # B starts waiting right after the signal.
    for _ in range(20):
        _signal_then_late_waiter()


def _signal_then_late_waiter() -> None:
    mu = sync.Mutex()
    c = sync.Cond(mu)
    woke = threading.Event()

    def first() -> None:
        with mu:
            c.wait(timeout=WAIT)
            woke.set()

    t = start(first)
    wait_until(lambda: c.statistics().waiters == 1)
    c.signal()
    late = []

    def second() -> None:
        with mu:
            try:
                c.wait(timeout=0.02)
            except TimeoutError:
                late.append("not woken")

    t2 = start(second)
    t.join(WAIT)
    t2.join(WAIT)
    assert woke.is_set()
    assert late == ["not woken"]


def test_no_wakeup_is_lost_between_the_check_and_the_wait() -> None:
    mu = sync.Mutex()
    c = sync.Cond(mu)
    items: list[int] = []
    got: list[int] = []

    def consumer() -> None:
        for _ in range(500):
            with mu:
                while not items:
                    c.wait(timeout=WAIT)
                got.append(items.pop())

    t = start(consumer)
    for i in range(500):
        with mu:
            items.append(i)
        c.signal()  # outside the lock, as Go allows
    t.join(WAIT * 2)
    assert sorted(got) == list(range(500))


def test_wait_without_holding_the_lock_raises_and_leaves_no_waiter() -> None:
    c = sync.Cond(sync.Mutex())
    with pytest.raises(sync.SyncError, match="unlock of unlocked mutex"):
        c.wait(timeout=1)
    assert c.statistics().waiters == 0


def test_wait_timeout_and_context_return_with_the_lock_held() -> None:
    mu = sync.Mutex()
    c = sync.Cond(mu)
    with mu:
        with pytest.raises(TimeoutError):
            c.wait(timeout=0.01)
        assert not mu.try_lock()  # locked again
        ctx, cancel = context.with_timeout(context.background(), 0.01)
        with pytest.raises(context.DeadlineExceeded):
            c.wait(ctx=ctx)
        cancel()
        assert not mu.try_lock()
    assert c.statistics().waiters == 0


def test_wait_async_with_threads_signalling() -> None:
    mu = sync.Mutex()
    c = sync.Cond(mu)
    box: list[int] = []

    async def consumer() -> int:
        async with mu:
            while not box:
                await c.wait_async(timeout=WAIT)
            return box[0]

    def producer() -> None:
        wait_until(lambda: c.statistics().waiters == 1)
        with mu:
            box.append(7)
            c.signal()

    t = start(producer)
    assert run_async(consumer()) == 7
    t.join(WAIT)


def test_cancelled_wait_async_relocks_and_passes_the_signal_on() -> None:
    async def main() -> None:
        mu = sync.Mutex()
        c = sync.Cond(mu)
        woken: list[str] = []

        async def waiter(name: str) -> None:
            async with mu:
                await c.wait_async(timeout=WAIT)
                woken.append(name)

        a = asyncio.ensure_future(waiter("a"))
        await asyncio.sleep(0)
        b = asyncio.ensure_future(waiter("b"))
        await asyncio.sleep(0)
        assert c.statistics().waiters == 2
        c.signal()  # goes to a, which has not run yet
        a.cancel()  # a passes it on to b
        await asyncio.wait_for(asyncio.gather(a, b, return_exceptions=True), WAIT)
        assert woken == ["b"]
        assert mu.try_lock()  # a re-locked and unlocked on its way out
        mu.unlock()

    run_async(main())


def test_cond_over_threading_lock_and_over_rlocker() -> None:
    lk = threading.Lock()
    c = sync.Cond(lk)
    flag: list[bool] = []

    def setter() -> None:
        wait_until(lambda: c.statistics().waiters == 1)
        with lk:
            flag.append(True)
        c.broadcast()

    t = start(setter)
    with lk:
        while not flag:
            c.wait(timeout=WAIT)
    t.join(WAIT)

    rw = sync.RWMutex()
    c2 = sync.Cond(rw.rlocker())
    rw.rlock()
    with pytest.raises(TimeoutError):
        c2.wait(timeout=0.01)
    rw.runlock()
    with pytest.raises(TypeError, match="alock"):
        run_async(sync.Cond(lk).wait_async())


def test_default_lock_and_bad_locker() -> None:
    c = sync.Cond()
    assert isinstance(c.L, sync.Mutex)
    with pytest.raises(TypeError, match="Locker"):
        sync.Cond(object())
