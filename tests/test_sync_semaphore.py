"""sync.Semaphore: golang.org/x/sync/semaphore's tests, and a FIFO model checked by hypothesis."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


def test_hammer_never_exceeds_the_size() -> None:
    # x/sync's TestWeighted.
    size = 5
    sem = sync.Semaphore(size)
    held = [0]
    lock = threading.Lock()
    errors: list[str] = []

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(200):
            n = rnd.randint(1, size)
            sem.acquire(n, timeout=WAIT)
            with lock:
                held[0] += n
                if held[0] > size:
                    errors.append(f"held {held[0]} > {size}")
            time.sleep(0)
            with lock:
                held[0] -= n
            sem.release(n)

    ts = [start(worker, i) for i in range(6)]
    for t in ts:
        t.join(WAIT * 3)
        assert not t.is_alive()
    assert not errors
    s = sem.statistics()
    assert (s.held, s.waiting, s.acquisitions) == (0, 0, 1200)


def test_release_more_than_held_raises() -> None:
    # x/sync's TestWeightedPanic.
    sem = sync.Semaphore(1)
    with pytest.raises(sync.SyncError, match="semaphore: released more than held"):
        sem.release()
    sem.acquire(1)
    with pytest.raises(sync.SyncError):
        sem.release(2)
    assert sem.statistics().held == 1
    sem.release()


def test_try_acquire() -> None:
    # x/sync's TestWeightedTryAcquire.
    sem = sync.Semaphore(2)
    tries = []
    sem.acquire(1)
    tries.append(sem.try_acquire(1))
    tries.append(sem.try_acquire(1))
    sem.release(2)
    tries.append(sem.try_acquire(1))
    sem.acquire(1)
    tries.append(sem.try_acquire(1))
    assert tries == [True, False, True, False]


def test_acquire_with_timeout_and_context() -> None:
    # x/sync's TestWeightedAcquire.
    sem = sync.Semaphore(2)
    sem.acquire(1)
    sem.acquire(1)
    with pytest.raises(TimeoutError):
        sem.acquire(1, timeout=0.01)
    ctx, cancel = context.with_timeout(context.background(), 0.01)
    with pytest.raises(context.DeadlineExceeded):
        sem.acquire(1, ctx=ctx)
    cancel()
    sem.release(2)
    sem.acquire(2, timeout=WAIT)
    assert sem.statistics().waiting == 0


def test_acquire_with_a_done_context_fails_even_when_free() -> None:
    # x/sync's TestWeightedAcquireCanceled: "we prefer to fail".
    sem = sync.Semaphore(1)
    ctx, cancel = context.with_cancel(context.background())
    cancel()
    with pytest.raises(context.Canceled):
        sem.acquire(1, ctx=ctx)
    assert sem.try_acquire(1)


def test_a_request_larger_than_the_size_waits_for_its_deadline_without_blocking_others() -> None:
    # x/sync's TestWeightedDoesntBlockIfTooBig.
    sem = sync.Semaphore(1)
    t0 = time.monotonic()
    errors: list[BaseException] = []

    def too_big() -> None:
        try:
            sem.acquire(2, timeout=0.05)
        except TimeoutError as e:
            errors.append(e)

    t = start(too_big)
    sem.acquire(1, timeout=WAIT)  # not blocked behind the doomed request
    sem.release(1)
    t.join(WAIT)
    assert len(errors) == 1 and time.monotonic() - t0 >= 0.04
    assert sem.statistics().waiting == 0


def test_a_large_request_is_not_starved_by_small_ones() -> None:
    # x/sync's TestLargeAcquireDoesntStarve.
    n = 5
    sem = sync.Semaphore(n)
    running = threading.Event()
    running.set()
    sem.acquire(n)
    ts = []

    def small() -> None:
        while running.is_set():
            sem.acquire(1, timeout=WAIT)
            time.sleep(0.0005)
            sem.release(1)

    for _ in range(n):
        ts.append(start(small))
    sem.release(n)
    time.sleep(0.01)
    sem.acquire(n, timeout=WAIT)  # gets its turn: the small ones queue behind it
    running.clear()
    sem.release(n)
    for t in ts:
        t.join(WAIT)


def test_a_cancelled_large_request_at_the_front_lets_smaller_ones_through() -> None:
    # x/sync's TestAllocCancelDoesntStarve (golang/go#50070).
    sem = sync.Semaphore(10)
    sem.acquire(1)
    ctx, cancel = context.with_cancel(context.background())
    big_err: list[BaseException] = []

    def big() -> None:
        try:
            sem.acquire(10, ctx=ctx)
        except BaseException as e:
            big_err.append(e)

    t = start(big)
    wait_until(lambda: sem.statistics().waiting == 1)
    got_small = threading.Event()

    def small() -> None:
        sem.acquire(1, timeout=WAIT)  # queued behind the big one
        got_small.set()

    t2 = start(small)
    wait_until(lambda: sem.statistics().waiting == 2)
    cancel()
    t.join(WAIT)
    t2.join(WAIT)
    assert got_small.is_set() and isinstance(big_err[0], context.Canceled)
    assert sem.statistics().held == 2


def test_grants_stop_at_the_first_waiter_that_does_not_fit() -> None:
    async def main() -> None:
        sem = sync.Semaphore(3)
        await sem.aacquire(3)
        order: list[int] = []

        async def acq(n: int) -> None:
            await sem.aacquire(n, timeout=WAIT)
            order.append(n)

        tasks = []
        for n in (2, 3, 1):
            tasks.append(asyncio.ensure_future(acq(n)))
            await asyncio.sleep(0)
        sem.release(3)  # grants 2; 3 does not fit; 1 would fit but waits behind 3
        await asyncio.sleep(0.01)
        assert order == [2]
        assert not sem.try_acquire(1)  # someone waits: no barging
        sem.release(2)
        await asyncio.sleep(0.01)
        assert order == [2, 3]
        sem.release(3)
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
        assert order == [2, 3, 1]
        sem.release(1)

    run_async(main())


def test_units_granted_to_a_cancelled_task_are_released_again() -> None:
    async def main() -> None:
        sem = sync.Semaphore(2)
        await sem.aacquire(2)
        a = asyncio.ensure_future(sem.aacquire(2))
        await asyncio.sleep(0)
        b = asyncio.ensure_future(sem.aacquire(1, timeout=WAIT))
        await asyncio.sleep(0)
        sem.release(2)  # grants a, which has not run
        a.cancel()  # gives them back: b gets one
        await asyncio.wait_for(asyncio.gather(a, b, return_exceptions=True), WAIT)
        assert sem.statistics().held == 1
        sem.release(1)

    run_async(main())


def test_threads_and_tasks_share_a_semaphore() -> None:
    sem = sync.Semaphore(2)
    inside = [0]
    peak = [0]
    lock = threading.Lock()

    def enter() -> None:
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])

    def leave() -> None:
        with lock:
            inside[0] -= 1

    def thread_worker() -> None:
        for _ in range(100):
            sem.acquire(timeout=WAIT)
            enter()
            time.sleep(0)
            leave()
            sem.release()

    async def task_worker() -> None:
        for _ in range(100):
            await sem.aacquire(timeout=WAIT)
            enter()
            await asyncio.sleep(0)
            leave()
            sem.release()

    async def tasks() -> None:
        await asyncio.gather(task_worker(), task_worker())

    ts = [start(thread_worker), start(thread_worker), start(run_async, tasks())]
    for t in ts:
        t.join(WAIT * 3)
        assert not t.is_alive()
    assert peak[0] <= 2
    assert sem.statistics().held == 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="size"):
        sync.Semaphore(-1)
    with pytest.raises(TypeError, match="size"):
        sync.Semaphore(1.5)  # type: ignore[arg-type]
    sem = sync.Semaphore(1)
    with pytest.raises(ValueError, match="n"):
        sem.acquire(-1)
    with pytest.raises(TypeError):
        sem.try_acquire(True)
    assert sem.size == 1


# -- a FIFO model ---------------------------------------------------------------------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.integers(1, 4)),
        st.tuples(st.just("release"), st.integers(1, 4)),
        st.tuples(st.just("cancel"), st.integers(0, 20)),
        st.tuples(st.just("try"), st.integers(1, 4)),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(1, 4), ops=_ops)
def test_semaphore_matches_a_fifo_model(size: int, ops: list[tuple[str, int]]) -> None:
    async def main() -> None:
        sem = sync.Semaphore(size)
        cur = 0
        queue: list[tuple[int, int]] = []  # the model: (id, n), FIFO
        granted: set[int] = set()
        tasks: dict[int, asyncio.Task[None]] = {}
        next_id = 0

        def grant() -> None:
            nonlocal cur
            while queue and size - cur >= queue[0][1]:
                i, n = queue.pop(0)
                cur += n
                granted.add(i)

        async def settle() -> None:
            for _ in range(3):
                await asyncio.sleep(0)

        for op, arg in ops:
            if op == "acquire" and arg <= size:
                i = next_id
                next_id += 1
                tasks[i] = asyncio.ensure_future(sem.aacquire(arg, timeout=WAIT))
                if size - cur >= arg and not queue:
                    cur += arg
                    granted.add(i)
                else:
                    queue.append((i, arg))
            elif op == "release":
                if arg > cur:
                    with pytest.raises(sync.SyncError):
                        sem.release(arg)
                else:
                    sem.release(arg)
                    cur -= arg
                    grant()
            elif op == "cancel" and queue:
                i, _ = queue[arg % len(queue)]
                tasks[i].cancel()
                await settle()
                queue.remove(next(q for q in queue if q[0] == i))
                grant()
            elif op == "try":
                ok = size - cur >= arg and not queue
                assert sem.try_acquire(arg) == ok
                if ok:
                    cur += arg
            await settle()
            done = {i for i, t in tasks.items() if t.done() and not t.cancelled()}
            assert done == granted
            s = sem.statistics()
            assert (s.held, s.waiting) == (cur, len(queue))
        for t in tasks.values():
            t.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)

    run_async(main())
