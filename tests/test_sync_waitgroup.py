"""sync.WaitGroup: Go's waitgroup tests (two groups, misuse, race, Go) in thread and task forms."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from conftest import WAIT, run_async
from goconc import context, runtime, sync

pytestmark = pytest.mark.goconc_leaks


def wait_until(cond: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.0005)


def test_wait_blocks_until_every_done() -> None:
    # Go's testWaitGroup: wg2.Wait must not return before all n have called Done.
    wg1, wg2 = sync.WaitGroup(), sync.WaitGroup()
    n = 8
    wg1.add(n)
    wg2.add(n)
    exited = []
    lock = threading.Lock()

    def worker() -> None:
        wg1.done()
        wg2.wait(timeout=WAIT)
        with lock:
            exited.append(1)

    ts = [threading.Thread(target=worker) for _ in range(n)]
    for t in ts:
        t.start()
    wg1.wait(timeout=WAIT)
    for _ in range(n):
        time.sleep(0.001)
        assert not exited, "WaitGroup released a waiter too soon"
        wg2.done()
    for t in ts:
        t.join(WAIT)
    assert len(exited) == n


def test_wait_on_zero_returns_at_once_in_both_forms() -> None:
    wg = sync.WaitGroup()
    wg.wait(timeout=0)
    run_async(wg.wait_async(timeout=0))


def test_negative_counter_raises_and_leaves_the_counter() -> None:
    wg = sync.WaitGroup()
    wg.add(1)
    wg.done()
    with pytest.raises(sync.SyncError, match="sync: negative WaitGroup counter"):
        wg.done()
    assert wg.statistics().count == 0
    wg.add(2)
    with pytest.raises(sync.SyncError):
        wg.add(-3)
    assert wg.statistics().count == 2


def test_add_rejects_non_ints() -> None:
    wg = sync.WaitGroup()
    with pytest.raises(TypeError):
        wg.add(1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        wg.add(True)


def test_concurrent_add_and_done_keep_an_exact_count() -> None:
    # Go's TestWaitGroupRace.
    wg = sync.WaitGroup()
    n = [0]
    lock = threading.Lock()

    def worker() -> None:
        with lock:
            n[0] += 1
        wg.done()

    for _ in range(200):
        wg.add(2)
        a, b = threading.Thread(target=worker), threading.Thread(target=worker)
        a.start()
        b.start()
        wg.wait(timeout=WAIT)
        a.join(WAIT)
        b.join(WAIT)
    assert n[0] == 400


def test_go_runs_functions_and_waits_for_them() -> None:
    # Go 1.25's TestWaitGroupGo.
    wg = sync.WaitGroup()
    done = []
    lock = threading.Lock()

    def work(i: int) -> None:
        time.sleep(0.001)
        with lock:
            done.append(i)

    for i in range(10):
        wg.go(work, i)
    wg.wait(timeout=WAIT)
    assert sorted(done) == list(range(10))


def test_go_with_coroutine_functions_from_a_task() -> None:
    async def main() -> list[int]:
        wg = sync.WaitGroup()
        out: list[int] = []

        async def work(i: int) -> None:
            await asyncio.sleep(0.001)
            out.append(i)

        for i in range(5):
            wg.go(work, i)
        await wg.wait_async(timeout=WAIT)
        return out

    assert sorted(run_async(main())) == list(range(5))


def test_go_counts_a_failing_function_as_done_and_reports_it() -> None:
    seen: list[BaseException] = []
    old = runtime.set_panic_handler(lambda g, e: seen.append(e))
    try:
        wg = sync.WaitGroup()

        def boom() -> None:
            raise ValueError("boom")

        g = wg.go(boom)
        wg.wait(timeout=WAIT)
        with pytest.raises(ValueError):
            g.join(timeout=WAIT)
        wait_until(lambda: bool(seen))
        assert isinstance(seen[0], ValueError)
    finally:
        runtime.set_panic_handler(old)


def test_go_may_be_called_from_a_function_started_by_go() -> None:
    wg = sync.WaitGroup()
    ran = []

    def child() -> None:
        ran.append("child")

    def parent() -> None:
        wg.go(child)
        ran.append("parent")

    wg.go(parent)
    wg.wait(timeout=WAIT)
    assert sorted(ran) == ["child", "parent"]


def test_go_rejects_a_non_callable() -> None:
    wg = sync.WaitGroup()
    with pytest.raises(TypeError):
        wg.go(42)  # type: ignore[arg-type]
    assert wg.statistics().count == 0


def test_reuse_after_wait_returned() -> None:
    wg = sync.WaitGroup()
    for _ in range(3):
        results: list[int] = []
        for i in range(4):
            wg.go(results.append, i)
        wg.wait(timeout=WAIT)
        assert sorted(results) == [0, 1, 2, 3]


def test_waiters_of_a_batch_are_released_even_if_the_next_batch_starts_at_once() -> None:
    wg = sync.WaitGroup()
    wg.add(1)
    released = threading.Event()

    def waiter() -> None:
        wg.wait(timeout=WAIT)
        released.set()

    t = threading.Thread(target=waiter)
    t.start()
    wait_until(lambda: wg.statistics().waiters == 1)
    wg.done()
    wg.add(1)  # a new batch before the waiter ran: it was released already
    t.join(WAIT)
    assert released.is_set()
    wg.done()


def test_threads_and_tasks_wait_on_one_group() -> None:
    wg = sync.WaitGroup()
    wg.add(1)
    released: list[str] = []

    def thread_waiter() -> None:
        wg.wait(timeout=WAIT)
        released.append("thread")

    async def task_waiter() -> None:
        await wg.wait_async(timeout=WAIT)
        released.append("task")

    t1 = threading.Thread(target=thread_waiter)
    t2 = threading.Thread(target=run_async, args=(task_waiter(),))
    t1.start()
    t2.start()
    wait_until(lambda: wg.statistics().waiters == 2)
    wg.done()
    t1.join(WAIT)
    t2.join(WAIT)
    assert sorted(released) == ["task", "thread"]
    s = wg.statistics()
    assert (s.count, s.waiters, s.waits) == (0, 0, 2)


def test_wait_timeout_context_and_cancellation() -> None:
    wg = sync.WaitGroup()
    wg.add(1)
    with pytest.raises(TimeoutError):
        wg.wait(timeout=0.01)
    ctx, cancel = context.with_cancel(context.background())
    cancel()
    with pytest.raises(context.Canceled):
        wg.wait(ctx=ctx)

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await wg.wait_async(timeout=0.01)
        t = asyncio.ensure_future(wg.wait_async())
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    run_async(main())
    assert wg.statistics().waiters == 0
    wg.done()
    wg.wait(timeout=0)


def test_process_totals_count_blocking_waits() -> None:
    before = sync.statistics().waitgroup_waits
    wg = sync.WaitGroup()
    wg.add(1)
    t = threading.Thread(target=wg.wait, kwargs={"timeout": WAIT})
    t.start()
    wait_until(lambda: wg.statistics().waiters == 1)
    wg.done()
    t.join(WAIT)
    assert sync.statistics().waitgroup_waits >= before + 1


def test_repr_shows_counter() -> None:
    wg = sync.WaitGroup()
    wg.add(3)
    assert "count=3" in repr(wg)
    wg.add(-3)
