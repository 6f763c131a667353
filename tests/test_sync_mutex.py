"""sync.Mutex: Go's mutex tests (hammer, misuse, fairness) plus goconc's thread/task forms."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from conftest import WAIT, run_async
from goconc import context, sync
from goconc.sync import _mutex


@pytest.fixture
def normal_mode_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No waiter ever counts as starving: unlocks always release and wake."""
    monkeypatch.setattr(_mutex, "STARVATION_THRESHOLD", 1e9)
    yield


@pytest.fixture
def always_starving(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every waiter counts as starving: unlocks always hand the lock over."""
    monkeypatch.setattr(_mutex, "STARVATION_THRESHOLD", -1.0)
    yield


def wait_until(cond: object, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.0005)


def start(fn: object, *args: object) -> threading.Thread:
    t = threading.Thread(target=fn, args=args, daemon=True)  # type: ignore[arg-type]
    t.start()
    return t


# -- basics --------------------------------------------------------------------------------


def test_lock_unlock_and_try_lock() -> None:
    mu = sync.Mutex()
    mu.lock()
    assert not mu.try_lock()
    mu.unlock()
    assert mu.try_lock()
    mu.unlock()
    s = mu.statistics()
    assert (s.locked, s.acquisitions, s.contended) == (False, 2, 0)


def test_with_block_locks_and_unlocks_even_on_error() -> None:
    mu = sync.Mutex()
    with pytest.raises(KeyError), mu:
        assert mu.statistics().locked
        raise KeyError
    assert not mu.statistics().locked


def test_async_with_and_alock_take_a_free_mutex() -> None:
    async def main() -> None:
        mu = sync.Mutex()
        async with mu:
            assert not mu.try_lock()
        await mu.alock()
        mu.unlock()
        assert mu.statistics().acquisitions == 2

    run_async(main())


def test_unlock_of_unlocked_mutex_raises_go_message() -> None:
    mu = sync.Mutex()
    with pytest.raises(sync.SyncError, match="sync: unlock of unlocked mutex"):
        mu.unlock()
    mu.lock()
    mu.unlock()
    with pytest.raises(RuntimeError, match="sync: unlock of unlocked mutex"):
        mu.unlock()


def test_unlock_of_unlocked_mutex_with_waiters_gone_raises() -> None:
    mu = sync.Mutex()
    mu.lock()
    with pytest.raises(TimeoutError):
        mu.lock(timeout=0.01)
    mu.unlock()
    with pytest.raises(sync.SyncError):
        mu.unlock()


def test_a_mutex_may_be_unlocked_by_another_thread() -> None:
    mu = sync.Mutex()
    mu.lock()
    t = start(mu.unlock)
    t.join(WAIT)
    assert mu.try_lock()
    mu.unlock()


def test_negative_timeout_is_rejected() -> None:
    mu = sync.Mutex()
    with pytest.raises(ValueError, match="timeout"):
        mu.lock(timeout=-1)


# -- mutual exclusion (Go's HammerMutex) ---------------------------------------------------


def test_hammer_threads_keep_mutual_exclusion() -> None:
    mu = sync.Mutex()
    state = {"n": 0, "inside": 0}
    errors: list[str] = []

    def hammer(loops: int) -> None:
        for i in range(loops):
            if i % 3 == 0:
                while not mu.try_lock():
                    time.sleep(0)
            else:
                mu.lock(timeout=WAIT)
            state["inside"] += 1
            if state["inside"] != 1:
                errors.append("two holders")
            n = state["n"]
            if i % 7 == 0:
                time.sleep(0)
            state["n"] = n + 1
            state["inside"] -= 1
            mu.unlock()

    threads = [start(hammer, 500) for _ in range(6)]
    for t in threads:
        t.join(WAIT)
    assert not errors
    assert state["n"] == 3000
    assert mu.statistics().acquisitions == 3000


def test_hammer_tasks_on_two_loops_and_threads_together() -> None:
    mu = sync.Mutex()
    state = {"n": 0}

    def thread_worker() -> None:
        for _ in range(300):
            with mu:
                n = state["n"]
                time.sleep(0)
                state["n"] = n + 1

    async def task_worker() -> None:
        for _ in range(300):
            async with mu:
                n = state["n"]
                await asyncio.sleep(0)
                state["n"] = n + 1

    async def loop_main() -> None:
        await asyncio.gather(*(task_worker() for _ in range(3)))

    threads = [start(thread_worker) for _ in range(2)]
    threads += [start(run_async, loop_main()) for _ in range(2)]
    for t in threads:
        t.join(WAIT * 3)
        assert not t.is_alive()
    assert state["n"] == 2 * 300 + 2 * 3 * 300


# -- timeouts, contexts, cancellation ------------------------------------------------------


def test_lock_timeout_leaves_the_mutex_usable() -> None:
    mu = sync.Mutex()
    mu.lock()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        mu.lock(timeout=0.05)
    assert time.monotonic() - t0 >= 0.04
    assert mu.statistics().waiting == 0
    mu.unlock()
    mu.lock(timeout=WAIT)
    mu.unlock()


def test_lock_with_done_context_fails_even_when_free() -> None:
    ctx, cancel = context.with_cancel(context.background())
    cancel()
    mu = sync.Mutex()
    with pytest.raises(context.Canceled):
        mu.lock(ctx=ctx)
    assert mu.try_lock()


def test_context_cancel_wakes_a_blocked_lock() -> None:
    mu = sync.Mutex()
    mu.lock()
    ctx, cancel = context.with_cancel(context.background())
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            mu.lock(ctx=ctx)
        except BaseException as e:
            errors.append(e)

    t = start(waiter)
    wait_until(lambda: mu.statistics().waiting == 1)
    cancel()
    t.join(WAIT)
    assert len(errors) == 1 and isinstance(errors[0], context.Canceled)
    mu.unlock()
    assert mu.try_lock()


def test_alock_timeout_and_context() -> None:
    async def main() -> None:
        mu = sync.Mutex()
        await mu.alock()
        with pytest.raises(TimeoutError):
            await mu.alock(timeout=0.02)
        ctx, cancel = context.with_timeout(context.background(), 0.02)
        with pytest.raises(context.DeadlineExceeded):
            await mu.alock(ctx=ctx)
        cancel()
        mu.unlock()
        await mu.alock(timeout=WAIT)
        mu.unlock()

    run_async(main())


def test_cancelled_waiting_task_leaves_no_trace() -> None:
    async def main() -> None:
        mu = sync.Mutex()
        await mu.alock()
        t = asyncio.ensure_future(mu.alock())
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert mu.statistics().waiting == 0
        mu.unlock()
        assert mu.try_lock()

    run_async(main())


def test_lock_handed_to_a_cancelled_task_is_passed_on(always_starving: None) -> None:
    async def main() -> None:
        mu = sync.Mutex()
        order: list[str] = []

        async def waiter(name: str) -> None:
            await mu.alock()
            order.append(name)
            mu.unlock()

        await mu.alock()
        a = asyncio.ensure_future(waiter("a"))
        await asyncio.sleep(0)
        b = asyncio.ensure_future(waiter("b"))
        await asyncio.sleep(0)
        mu.unlock()  # starving: handed to a, which has not run yet
        assert not mu.try_lock()
        a.cancel()  # a never resumes holding it: it goes to b
        await asyncio.gather(a, b, return_exceptions=True)
        assert order == ["b"]
        assert mu.try_lock()
        mu.unlock()

    run_async(main())


def test_woken_task_cancelled_before_running_wakes_the_next(normal_mode_only: None) -> None:
    async def main() -> None:
        mu = sync.Mutex()
        order: list[str] = []

        async def waiter(name: str) -> None:
            await mu.alock(timeout=WAIT)
            order.append(name)
            mu.unlock()

        await mu.alock()
        a = asyncio.ensure_future(waiter("a"))
        await asyncio.sleep(0)
        b = asyncio.ensure_future(waiter("b"))
        await asyncio.sleep(0)
        mu.unlock()  # normal mode: releases and wakes a
        a.cancel()  # a gives up its turn: b must be woken, not left parked
        await asyncio.wait_for(asyncio.gather(a, b, return_exceptions=True), WAIT)
        assert order == ["b"]

    run_async(main())


def test_a_waiter_that_times_out_leaves_its_place_to_the_next() -> None:
    mu = sync.Mutex()
    mu.lock()
    got: list[str] = []

    def waiter(name: str, timeout: float) -> None:
        try:
            mu.lock(timeout=timeout)
        except TimeoutError:
            return
        got.append(name)
        mu.unlock()

    t1 = start(waiter, "short", 0.02)
    wait_until(lambda: mu.statistics().waiting == 1)
    t2 = start(waiter, "long", WAIT)
    wait_until(lambda: mu.statistics().waiting == 2)
    t1.join(WAIT)
    mu.unlock()
    t2.join(WAIT)
    assert got == ["long"]


# -- fairness: normal and starvation mode ---------------------------------------------------


def test_normal_mode_lets_a_newcomer_barge_and_requeues_the_loser_in_front(
    normal_mode_only: None,
) -> None:
    async def main() -> None:
        mu = sync.Mutex()
        order: list[str] = []

        async def waiter(name: str) -> None:
            await mu.alock(timeout=WAIT)
            order.append(name)
            mu.unlock()

        await mu.alock()
        a = asyncio.ensure_future(waiter("a"))
        await asyncio.sleep(0)
        b = asyncio.ensure_future(waiter("b"))
        await asyncio.sleep(0)
        mu.unlock()  # wakes a; a has not run yet
        assert mu.try_lock()  # the running newcomer barges
        for _ in range(5):
            await asyncio.sleep(0)  # a retries, loses, goes back to the front
        assert order == []
        mu.unlock()
        await asyncio.wait_for(asyncio.gather(a, b), WAIT)
        assert order == ["a", "b"]  # a kept its place ahead of b
        s = mu.statistics()
        assert s.handoffs == 0 and s.starvation_entries == 0

    run_async(main())


def test_starvation_mode_hands_over_fifo_and_refuses_newcomers(always_starving: None) -> None:
    async def main() -> None:
        mu = sync.Mutex()
        order: list[str] = []

        async def waiter(name: str) -> None:
            await mu.alock(timeout=WAIT)
            order.append(name)
            await asyncio.sleep(0)
            mu.unlock()

        await mu.alock()
        tasks = []
        for name in "abc":
            tasks.append(asyncio.ensure_future(waiter(name)))
            await asyncio.sleep(0)
        mu.unlock()
        assert not mu.try_lock()  # handed to a: a newcomer cannot take it
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
        assert order == ["a", "b", "c"]
        s = mu.statistics()
        assert s.handoffs == 3 and s.starvation_entries >= 1 and not s.starving

    run_async(main())


def test_a_waiter_that_waited_over_1ms_gets_the_lock_from_the_next_unlock() -> None:
    mu = sync.Mutex()
    mu.lock()
    got = threading.Event()

    def waiter() -> None:
        mu.lock(timeout=WAIT)
        got.set()
        mu.unlock()

    t = start(waiter)
    wait_until(lambda: mu.statistics().waiting == 1)
    time.sleep(0.005)  # the waiter has now waited over 1 ms
    mu.unlock()
    assert not mu.try_lock()  # handed over: the unlocking thread cannot take it back
    t.join(WAIT)
    assert got.is_set()
    s = mu.statistics()
    assert s.handoffs == 1 and s.contended == 1 and s.wait_seconds >= 0.004


def test_a_long_hold_hands_the_lock_to_a_waiter_that_just_arrived() -> None:
    # Losing now would cost the waiter the next hold too (over 1 ms): hand it over.
    mu = sync.Mutex()
    mu.lock(timeout=WAIT)
    time.sleep(0.005)
    got = threading.Event()

    def waiter() -> None:
        mu.lock(timeout=WAIT)
        got.set()
        mu.unlock()

    t = start(waiter)
    wait_until(lambda: mu.statistics().waiting == 1)
    mu.unlock()
    assert not mu.try_lock()
    t.join(WAIT)
    assert got.is_set()
    assert mu.statistics().handoffs == 1


def test_starvation_mode_ends_when_the_queue_drains() -> None:
    mu = sync.Mutex()
    mu.lock()

    def waiter() -> None:
        mu.lock(timeout=WAIT)
        mu.unlock()

    ts = [start(waiter) for _ in range(2)]
    wait_until(lambda: mu.statistics().waiting == 2)
    time.sleep(0.005)
    mu.unlock()
    for t in ts:
        t.join(WAIT)
    s = mu.statistics()
    assert not s.starving and not s.locked and s.waiting == 0
    assert mu.try_lock()  # normal mode again: a newcomer takes the free mutex
    mu.unlock()


def test_fairness_a_hot_locker_cannot_starve_a_periodic_one() -> None:
    # Go's TestMutexFairness: one goroutine holds the lock almost always,
    # another needs it 10 times; it must get it in bounded time.
    mu = sync.Mutex()
    stop = threading.Event()

    def hog() -> None:
        while not stop.is_set():
            with mu:
                time.sleep(0.0001)

    t = start(hog)
    try:
        deadline = time.monotonic() + WAIT
        for _ in range(10):
            time.sleep(0.0001)
            mu.lock(timeout=WAIT)
            mu.unlock()
        assert time.monotonic() < deadline
    finally:
        stop.set()
        t.join(WAIT)


def test_thread_and_task_share_the_lock_fairly() -> None:
    mu = sync.Mutex()
    stop = threading.Event()

    def hog() -> None:
        while not stop.is_set():
            mu.lock(timeout=WAIT)
            time.sleep(0.001)
            mu.unlock()

    async def periodic() -> int:
        n = 0
        for _ in range(20):
            await asyncio.sleep(0.001)
            await mu.alock(timeout=WAIT)
            n += 1
            mu.unlock()
        return n

    t = start(hog)
    try:
        assert run_async(periodic()) == 20
    finally:
        stop.set()
        t.join(WAIT)
    assert not mu.statistics().locked


def test_repr_and_statistics_snapshot_are_frozen() -> None:
    mu = sync.Mutex()
    s = mu.statistics()
    with pytest.raises(AttributeError):
        s.acquisitions = 3  # type: ignore[misc]
    assert "unlocked" in repr(mu)
    mu.lock()
    assert "locked" in repr(mu)
    mu.unlock()


def test_process_totals_count_contention() -> None:
    before = sync.statistics()
    mu = sync.Mutex()
    mu.lock()

    def lock_unlock() -> None:
        mu.lock(timeout=WAIT)
        mu.unlock()

    t = start(lock_unlock)
    wait_until(lambda: mu.statistics().waiting == 1)
    time.sleep(0.003)
    mu.unlock()
    t.join(WAIT)
    after = sync.statistics()
    assert after.mutex_contended >= before.mutex_contended + 1
    assert after.mutex_handoffs >= before.mutex_handoffs + 1
    assert after.mutex_wait_seconds > before.mutex_wait_seconds
